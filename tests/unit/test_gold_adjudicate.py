"""Adjudication: majority, Dawid-Skene and the adjudicator's review decisions into the gold table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.agreement.ratings import Record, from_records
from pipeline.cli import app
from pipeline.config import load_codebook
from pipeline.gold import adjudicate
from pipeline.gold.adjudicate import CONFUSION_META, dawid_skene, majority
from pipeline.store import Store
from tests.unit.test_agreement_workspace import DECISIONS, SMALL_CODEBOOK, build_workspace, insert_annotation

runner = CliRunner()


def gold(store: Store) -> dict[str, dict]:
    return {
        seg: {"codes": json.loads(codes), "method": method, "votes": json.loads(votes)}
        for seg, codes, method, votes in store.conn.execute("SELECT segment_id, codes, method, votes FROM gold")
    }


def expected_majority() -> dict[str, list[str]]:
    out = {}
    for doc, rows in DECISIONS.items():
        for p, row in enumerate(rows):
            given = [d for d in row if d is not None]
            out[f"{doc}-{p}"] = [c for c in ("carrot", "stick") if 2 * sum(c in d for d in given) > len(given)]
    return out


@pytest.fixture
def store(tmp_path: Path):
    with build_workspace(tmp_path / "ws") as s:
        yield s


def test_majority_writes_gold_with_votes(store: Store) -> None:
    report = adjudicate(store, load_codebook(SMALL_CODEBOOK), "majority")
    rows = gold(store)
    assert {seg: r["codes"] for seg, r in rows.items()} == expected_majority()
    assert report.segments == 18 and report.per_code["carrot"] == sum(
        "carrot" in c for c in expected_majority().values()
    )
    assert rows["doc_a-1"]["votes"] == {"n_annotators": 3, "yes": {"carrot": 1, "stick": 3}}
    # doc_a-4: two annotators, one tie-free "stick" (2 of 2)
    assert rows["doc_a-4"]["votes"]["n_annotators"] == 2 and rows["doc_a-4"]["codes"] == ["stick"]
    assert {r["method"] for r in rows.values()} == {"majority"}
    book = load_codebook(SMALL_CODEBOOK)
    assert [tuple(r) for r in store.conn.execute("SELECT DISTINCT codebook_hash FROM gold")] == [(book.content_hash,)]


def test_majority_ties_are_absent_and_recorded(tmp_path: Path) -> None:
    book = load_codebook(SMALL_CODEBOOK)
    decisions = {**DECISIONS, "doc_c": list(DECISIONS["doc_c"])}
    decisions["doc_c"][1] = (["carrot"], None, [])  # bo did not code doc_c-1
    with build_workspace(tmp_path / "ws", decisions=decisions) as store:
        report = adjudicate(store, book, "majority")
        row = gold(store)["doc_c-1"]  # ana: carrot, cy: nothing
    assert row["codes"] == [] and row["votes"]["ties"] == ["carrot"]
    assert report.ties >= 1


def test_rerun_is_idempotent(store: Store) -> None:
    book = load_codebook(SMALL_CODEBOOK)
    adjudicate(store, book, "majority")
    first = gold(store)
    adjudicate(store, book, "majority")
    assert gold(store) == first and store.count("gold") == 18


def test_dawid_skene_downweights_a_careless_annotator() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(80) < 0.4
    recs = []
    for i, t in enumerate(truth):
        for a, flip in (("good1", 0.02), ("good2", 0.05), ("bad1", 0.45), ("bad2", 0.45)):
            recs.append(Record(f"i{i}", a, ["x"] if t ^ (rng.random() < flip) else []))
    r = from_records(recs, ["x", "y"])
    ds, posterior, _ = dawid_skene(r)
    truth_in_order = np.array([truth[int(item[1:])] for item in r.items])
    majority_vote, _ = majority(r)
    assert (ds[:, 0] == truth_in_order).mean() >= 0.95
    assert (ds[:, 0] == truth_in_order).mean() > (majority_vote[:, 0] == truth_in_order).mean()
    assert ((posterior[:, 0] > 0.5) == ds[:, 0]).all() and not ds[:, 1].any()


def test_dawid_skene_single_choice() -> None:
    recs = [
        Record(f"i{i}", a, [c])
        for i, row in enumerate([("x", "x", "y"), ("y", "y", "y"), ("z", "x", "z")])
        for a, c in zip("pqr", row, strict=True)
    ]
    ds, _, _ = dawid_skene(from_records(recs, ["x", "y", "z"], single_choice=True))
    assert ds.sum(axis=1).tolist() == [1, 1, 1]
    assert ds[1].tolist() == [False, True, False]


def test_dawid_skene_method_writes_posteriors(store: Store) -> None:
    report = adjudicate(store, load_codebook(SMALL_CODEBOOK), "dawid-skene")
    rows = gold(store)
    assert report.method == "dawid-skene" and {r["method"] for r in rows.values()} == {"dawid-skene"}
    assert set(rows["doc_a-0"]["votes"]["posterior"]) == {"carrot", "stick"}
    assert rows["doc_a-0"]["codes"] == ["carrot"]  # unanimous items keep their label


def test_majority_single_choice_plurality_and_ties() -> None:
    recs = [
        Record(f"i{i}", a, c)
        for i, row in enumerate([(["x"], ["x"], ["y"]), (["x"], ["y"], []), ([], [], ["z"])])
        for a, c in zip("pqr", row, strict=True)
    ]
    g, ties = majority(from_records(recs, ["x", "y", "z"], single_choice=True))
    assert g[0].tolist() == [True, False, False]
    assert g[1].tolist() == [True, False, False] and ties[1].tolist() == [True, True, False]  # codebook order
    assert not g[2].any()  # "no code" has the most votes


def test_adjudicator_takes_the_review_decision(store: Store) -> None:
    book = load_codebook(SMALL_CODEBOOK)
    with store.transaction():
        insert_annotation(store, 500, 99, "doc_b-4", "judge@example.org", ["stick"], book.content_hash)
        insert_annotation(store, 501, 99, "doc_b-0", "judge@example.org", ["carrot"], book.content_hash)
        insert_annotation(
            store,
            502,
            99,
            "doc_b-0",
            "judge@example.org",
            [],
            book.content_hash,
            updated_at="2026-03-01T00:00:00+00:00",
        )
    report = adjudicate(store, book, "adjudicator")
    rows = gold(store)
    assert rows["doc_b-4"] == {
        "codes": ["stick"],
        "method": "adjudicator",
        "votes": {"n_annotators": 3, "yes": {"carrot": 2, "stick": 2}, "adjudicator": "judge@example.org"},
    }
    assert rows["doc_b-0"]["codes"] == [] and rows["doc_b-0"]["method"] == "adjudicator"  # latest decision
    assert rows["doc_a-0"]["method"] == "majority"
    assert report.adjudicated == 2 and report.fallback_majority == 16


def test_cli_adjudicate(store: Store) -> None:
    ws = str(store.workspace)
    result = runner.invoke(app, ["adjudicate", "-w", ws, "--codebook", str(SMALL_CODEBOOK), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["segments"] == 18
    bad = runner.invoke(app, ["adjudicate", "-w", ws, "--codebook", str(SMALL_CODEBOOK), "-m", "vote"])
    assert bad.exit_code == 2 and "majority" in bad.stderr
    assert store.last_runs(1)[0]["stage"] == "adjudicate"


def _coders(flips: dict[str, float], n: int = 120, seed: int = 3) -> tuple[list[Record], np.ndarray]:
    """Records of coders who each flip the true present/absent decision with their own probability."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.35
    recs = [
        Record(f"i{i:03d}", coder, ["x"] if t ^ (rng.random() < flip) else [])
        for i, t in enumerate(truth)
        for coder, flip in flips.items()
    ]
    return recs, truth


def test_dawid_skene_estimates_each_coders_sensitivity_and_specificity() -> None:
    # three informative coders (fewer cannot tell which of two disagreeing coders is right) and one at random
    recs, truth = _coders({"reliable": 0.02, "fair": 0.15, "weak": 0.25, "random": 0.5}, n=200, seed=2)
    r = from_records(recs, ["x", "y"])
    ds, _, confusion = dawid_skene(r)
    x = confusion["x"]
    assert set(x) == {"reliable", "fair", "weak", "random"} and x["reliable"]["segments"] == 200
    assert x["reliable"]["sensitivity"] > 0.9 and x["reliable"]["specificity"] > 0.9
    youden = {coder: f["sensitivity"] + f["specificity"] - 1 for coder, f in x.items()}
    assert youden["reliable"] > youden["fair"] > youden["weak"] > youden["random"]
    assert abs(youden["random"]) < 0.2  # ticking is as likely whether the code is present or not
    # weighing each coder by that confusion, DS beats the majority vote, which counts the random coder fully
    truth_in_order = np.array([truth[int(item[1:])] for item in r.items])
    majority_vote, _ = majority(r)
    assert (ds[:, 0] == truth_in_order).mean() > (majority_vote[:, 0] == truth_in_order).mean()
    assert (ds[:, 0] == truth_in_order).mean() >= 0.95


def test_dawid_skene_adjudication_keeps_the_confusion_for_the_appendix(store: Store) -> None:
    report = adjudicate(store, load_codebook(SMALL_CODEBOOK), "dawid-skene")
    kept = json.loads(store.get_meta(CONFUSION_META))
    assert kept == json.loads(json.dumps(report.coder_confusion)) and set(kept) == {"carrot", "stick"}
    for coders in kept.values():
        for figures in coders.values():
            assert set(figures) == {"sensitivity", "specificity", "segments"}
