"""Findings: the PPI++ mean against ppi-python and on simulated data with known truth, and `culturecode findings`
on a small workspace (metadata from a file, the audit stream, a non-random stream never used)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_codebook
from pipeline.findings.estimators import difference, human_mean, model_mean, ppi_by_formula, ppi_mean
from tests.factory import add_annotation, add_project, add_scores, add_tasks, make_workspace
from tests.unit.test_agreement_workspace import SMALL_CODEBOOK

runner = CliRunner()


def _simulate(rng: np.random.Generator, size: int = 2000, prevalence: float = 0.3, sample: float = 0.05):
    truth = (rng.random(size) < prevalence).astype(float)
    scores = np.clip(0.15 + 0.55 * truth + rng.normal(0, 0.2, size), 0, 1)  # informative, biased upwards
    picked = rng.random(size) < sample
    return truth, scores, picked


def test_ppi_equals_ppi_python_uniform_and_weighted() -> None:
    from ppi_py import classical_mean_ci, ppi_mean_ci, ppi_mean_pointestimate

    rng = np.random.default_rng(3)
    truth, scores, picked = _simulate(rng)
    weights = np.where(rng.random(int(picked.sum())) < 0.5, 1.0, 4.0)
    for w in (None, weights):
        ours = ppi_mean(truth[picked], scores[picked], scores, w)
        low, high = ppi_mean_ci(truth[picked], scores[picked], scores, alpha=0.05, w=w)
        point = ppi_mean_pointestimate(truth[picked], scores[picked], scores, w=w)
        assert ours.ci_low == pytest.approx(float(low[0]), abs=1e-6)
        assert ours.ci_high == pytest.approx(float(high[0]), abs=1e-6)
        assert ours.estimate == pytest.approx(float(np.ravel(point)[0]), abs=1e-6)
        written_out = ppi_by_formula(truth[picked], scores[picked], scores, w)  # the formulas, in numpy
        assert (written_out.estimate, written_out.ci_low, written_out.ci_high) == pytest.approx(
            (ours.estimate, ours.ci_low, ours.ci_high), abs=1e-6
        )
        human = human_mean(truth[picked], w)
        c_low, c_high = classical_mean_ci(truth[picked], w=w, alpha=0.05)
        assert (human.ci_low, human.ci_high) == pytest.approx((c_low, c_high), abs=1e-6)
        assert ours.n_effective is not None and ours.n_effective > ours.n  # informative scores buy labels


def test_coverage_on_simulated_projects_with_known_truth() -> None:
    rng = np.random.default_rng(11)
    covered = {"ppi": 0, "human": 0, "diff": 0}
    widths = {"ppi": 0.0, "human": 0.0}
    model_bias = []
    runs = 200
    for _ in range(runs):
        truth, scores, picked = _simulate(rng)
        target = truth.mean()  # the prevalence in this project's segments
        ppi, human = ppi_mean(truth[picked], scores[picked], scores), human_mean(truth[picked])
        covered["ppi"] += ppi.ci_low <= target <= ppi.ci_high
        covered["human"] += human.ci_low <= target <= human.ci_high
        widths["ppi"] += ppi.ci_high - ppi.ci_low
        widths["human"] += human.ci_high - human.ci_low
        model_bias.append(model_mean(scores >= 0.35).estimate - target)  # its threshold
        t2, s2, p2 = _simulate(rng, prevalence=0.1)
        other = ppi_mean(t2[p2], s2[p2], s2)
        diff = difference(ppi, other)
        covered["diff"] += diff.ci_low <= target - t2.mean() <= diff.ci_high
    assert covered["ppi"] / runs >= 0.90
    assert covered["human"] / runs >= 0.90
    assert covered["diff"] / runs >= 0.90
    assert widths["ppi"] < widths["human"]  # the model's scores narrow the interval
    assert np.mean(model_bias) > 0.05  # the model alone is off: 16% false positives


def test_weighted_by_inclusion_probability_on_a_stratified_sample() -> None:
    """Group B sampled four times as often as A, with a higher prevalence: unweighted estimates are biased,
    the weighted ones cover the truth."""
    rng = np.random.default_rng(5)
    covered, unweighted_bias = 0, []
    runs = 200
    for _ in range(runs):
        group_b = rng.random(3000) < 0.5
        truth = (rng.random(3000) < np.where(group_b, 0.5, 0.1)).astype(float)
        scores = np.clip(0.2 + 0.5 * truth + rng.normal(0, 0.2, 3000), 0, 1)
        p = np.where(group_b, 0.2, 0.05)
        picked = rng.random(3000) < p
        ppi = ppi_mean(truth[picked], scores[picked], scores, 1 / p[picked])
        covered += ppi.ci_low <= truth.mean() <= ppi.ci_high
        unweighted_bias.append(ppi_mean(truth[picked], scores[picked], scores).estimate - truth.mean())
    assert covered / runs >= 0.88
    assert np.mean(unweighted_bias) > 0.03


# ----------------------------------------------------------------------------- a workspace


def _workspace(tmp_path: Path):
    """200 turns in 2 documents, Officer and Interviewer alternating; Officers say 'carrot' more. A 25% audit
    stream coded by an annotator with the truth; a model-ordered stream coded too (never used)."""
    book = load_codebook(SMALL_CODEBOOK)
    rng = np.random.default_rng(1)
    docs = {f"doc{d}": [f"turn {d}-{i}" for i in range(100)] for d in range(2)}
    store = make_workspace(tmp_path / "ws", book, docs)
    truth, scores = {}, {}
    for d in range(2):
        for i in range(100):
            seg = f"doc{d}-{i}"
            officer = i % 2 == 1
            truth[seg] = bool(rng.random() < (0.5 if officer else 0.15))
            carrot = float(np.clip(0.2 + 0.6 * truth[seg] + rng.normal(0, 0.15), 0, 1))
            scores[seg] = {"carrot": carrot, "stick": float(rng.random() * 0.3)}
    add_scores(store, "v1", book, scores)
    add_project(store, 1, "ana@example.org", book)
    ids = sorted(truth)
    audit = {s: ("audit", 0.25) for k, s in enumerate(ids) if k % 4 == 0}
    ordered = {s: ("margin", None) for k, s in enumerate(ids) if k % 4 == 1}
    tasks = add_tasks(store, 1, {**audit, **ordered})
    for seg, tid in tasks.items():
        add_annotation(store, tid, 1, seg, "ana@example.org", ["carrot"] if truth[seg] else [], book, task_id=tid)
    return store, audit


def _cli(*args: str):
    extra = ["--codebook", str(SMALL_CODEBOOK)] if args[0] == "findings" else []
    return runner.invoke(app, [*args, *extra])


def test_meta_set_from_a_file_shown_by_segments_and_exported(tmp_path: Path) -> None:
    store, _ = _workspace(tmp_path)
    ws = str(store.workspace)
    store.close()
    people = tmp_path / "people.csv"
    people.write_text("speaker,role,site\nOfficer,police,north\nInterviewer,researcher,north\n", encoding="utf-8")
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"document": "doc1", "site": "south", "wave": 2}\n', encoding="utf-8")
    assert _cli("meta", "set", "--file", str(people), "-w", ws).exit_code == 0
    result = _cli("meta", "set", "--file", str(docs), "-w", ws, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["documents"] == 1
    shown = json.loads(_cli("segments", "-w", ws, "--json", "--doc", "doc1").stdout)
    assert shown[1]["fields"] == {"role": "police", "site": "north", "wave": "2"}  # speaker over document
    shown = json.loads(_cli("segments", "-w", ws, "--json", "--doc", "doc0").stdout)
    assert shown[0]["fields"] == {"role": "researcher", "site": "north"}
    # changed without a re-ingest
    people.write_text("speaker,role\nOfficer,probation\n", encoding="utf-8")
    assert _cli("meta", "set", "--file", str(people), "-w", ws).exit_code == 0
    shown = json.loads(_cli("segments", "-w", ws, "--json", "--doc", "doc0").stdout)
    assert shown[1]["fields"]["role"] == "probation"
    from pipeline.config import load_settings
    from pipeline.gold.export import export
    from pipeline.store import Store
    from tests.factory import add_gold

    with Store(ws) as s:
        add_gold(s, {"doc0-1": ["carrot"], "doc0-2": []}, load_codebook(SMALL_CODEBOOK))
        settings = load_settings(overrides={"codebook": str(SMALL_CODEBOOK)})
        export(s, settings, load_codebook(SMALL_CODEBOOK), ["jsonl", "hf"], tmp_path / "out")
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "gold.jsonl").read_text().splitlines())}
    assert rows["doc0-1"]["role"] == "probation" and rows["doc0-2"]["role"] == "researcher"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("speaker,role\nNobody,police\n", "people.csv:2: unknown speaker 'Nobody'"),
        ("speaker,text\nOfficer,x\n", "people.csv:2: field 'text' clashes with a built-in column"),
        ("speaker,role\nOfficer,police\nInterviewer,\n", "people.csv:3: empty value for field 'role'"),
        ("document,role\ndoc9,police\n", "people.csv:2: unknown document 'doc9'"),
        ("name,role\nOfficer,police\n", "people.csv:1: the header names no 'speaker' or 'document' column"),
    ],
)
def test_meta_set_refuses_bad_rows_naming_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    store, _ = _workspace(tmp_path)
    ws = str(store.workspace)
    store.close()
    people = tmp_path / "people.csv"
    people.write_text(content, encoding="utf-8")
    result = _cli("meta", "set", "--file", str(people), "-w", ws)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "fields" not in json.loads(_cli("meta", "show", "-w", ws, "--json").stdout or "[]")  # nothing written


def test_findings_by_role_uses_the_audit_stream_only(tmp_path: Path) -> None:
    store, audit = _workspace(tmp_path)
    ws = str(store.workspace)
    store.close()
    people = tmp_path / "people.csv"
    people.write_text("speaker,role\nOfficer,police\nInterviewer,researcher\n", encoding="utf-8")
    assert _cli("meta", "set", "--file", str(people), "-w", ws).exit_code == 0
    result = _cli("findings", "-w", ws, "--by", "role", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["streams"] == {"audit": len(audit)} and data["labels"] == len(audit) == 50
    assert data["segments"] == 200
    carrot = data["codes"]["carrot"]
    assert carrot["human"]["n"] == carrot["ppi"]["n"] == 50
    assert carrot["model"]["ci_low"] is None
    assert carrot["ppi"]["ci_low"] < carrot["ppi"]["estimate"] < carrot["ppi"]["ci_high"]
    assert set(data["groups"]) == {"police", "researcher"}
    sizes = data["group_sizes"]
    assert sizes["police"]["segments"] == sizes["researcher"]["segments"] == 100
    assert sizes["police"]["labels"] + sizes["researcher"]["labels"] == 50
    (diff,) = [d for d in data["differences"] if d["code"] == "carrot"]
    assert diff["groups"] == ["police", "researcher"] and diff["ppi"]["ci_low"] > 0  # officers say it more
    table = _cli("findings", "-w", ws, "--by", "role")
    assert table.exit_code == 0 and "prediction-powered" in table.stdout and "audit 50" in table.stdout


def test_findings_refuses_without_random_labels_and_small_groups_get_no_interval(tmp_path: Path) -> None:
    book = load_codebook(SMALL_CODEBOOK)
    store = make_workspace(tmp_path / "ws", book, {"doc": [f"t{i}" for i in range(40)]})
    add_scores(store, "v1", book, {f"doc-{i}": {"carrot": 0.7, "stick": 0.1} for i in range(40)})
    add_project(store, 1, "ana@example.org", book)
    tasks = add_tasks(store, 1, {f"doc-{i}": ("margin", None) for i in range(30)})
    for seg, tid in tasks.items():
        add_annotation(store, tid, 1, seg, "ana@example.org", ["carrot"], book, task_id=tid)
    ws = str(store.workspace)
    result = _cli("findings", "-w", ws)
    assert result.exit_code == 2 and "no random human labels yet: push with --audit-fraction" in result.stderr
    tasks = add_tasks(store, 2, {f"doc-{i}": ("audit", 0.5) for i in range(0, 40, 2)}, first_task=100)
    add_project(store, 2, "bo@example.org", book)
    for seg, tid in tasks.items():
        add_annotation(store, tid, 2, seg, "bo@example.org", ["carrot"] if tid % 3 else [], book, task_id=tid)
    store.close()
    people = tmp_path / "people.csv"
    people.write_text("speaker,role\nOfficer,police\n", encoding="utf-8")
    assert _cli("meta", "set", "--file", str(people), "-w", ws).exit_code == 0
    data = json.loads(_cli("findings", "-w", ws, "--by", "role", "--json").stdout)
    assert data["labels"] == 20 and data["streams"] == {"audit": 20}
    overall = data["codes"]["carrot"]  # constant scores: the human-only figure (lambda 0), never NaN
    assert overall["ppi"]["estimate"] == pytest.approx(overall["human"]["estimate"])
    assert overall["ppi"]["ci_high"] == pytest.approx(overall["human"]["ci_high"])
    # even positions are the Interviewer's: every audit label is in "(none)", the police group has none
    assert data["groups"]["police"]["carrot"] == "too few audit labels (n=0; need >= 10)"
    assert _cli("findings", "-w", ws, "--by", "wave").exit_code == 2


def test_error_bias_audit_flags_a_model_that_errs_more_for_one_group(tmp_path: Path) -> None:
    """The model ticks 'carrot' on most of the police's negatives and few of the researchers': the false positive
    rate gap is flagged; the prediction-powered figure still covers the police's audit prevalence."""
    book = load_codebook(SMALL_CODEBOOK)
    rng = np.random.default_rng(2)
    store = make_workspace(tmp_path / "ws", book, {"doc": [f"t{i}" for i in range(400)]})
    truth = {f"doc-{i}": bool(rng.random() < 0.3) for i in range(400)}
    scores = {}
    for i, seg in enumerate(sorted(truth, key=lambda s: int(s.split("-")[1]))):
        police = i % 2 == 1  # the factory's speakers: Officer at odd positions
        false_positive = police and rng.random() < 0.6
        scores[seg] = {"carrot": 0.9 if truth[seg] or false_positive else 0.1, "stick": 0.1}
    add_scores(store, "v1", book, scores)
    add_project(store, 1, "ana@example.org", book)
    tasks = add_tasks(store, 1, {s: ("audit", 0.5) for s in truth})
    for seg, tid in tasks.items():
        add_annotation(store, tid, 1, seg, "ana@example.org", ["carrot"] if truth[seg] else [], book, task_id=tid)
    ws = str(store.workspace)
    store.close()
    people = tmp_path / "people.csv"
    people.write_text("speaker,role\nOfficer,police\nInterviewer,researcher\n", encoding="utf-8")
    assert _cli("meta", "set", "--file", str(people), "-w", ws).exit_code == 0
    data = json.loads(_cli("findings", "-w", ws, "--by", "role", "--codes", "carrot", "--json").stdout)
    police = data["errors"]["police"]["carrot"]["false_positive_rate"]
    assert 0.4 < police["estimate"] < 0.8 and police["ci_low"] > 0.3
    assert data["errors"]["researcher"]["carrot"]["false_positive_rate"]["estimate"] == 0
    (gap,) = [d for d in data["error_differences"] if d["rate"] == "false_positive_rate"]
    assert gap["excludes_zero"] and gap["difference"]["ci_low"] > 0
    table = _cli("findings", "-w", ws, "--by", "role", "--codes", "carrot")
    assert "Error bias" in table.stdout and "false positive rate differs" in table.stdout
