"""The strategies that seek the rare codes' positives (issue 29): typical, anchor, auto."""

from __future__ import annotations

import json
import random as _random
from pathlib import Path

import numpy as np

from pipeline.classifier.codebook_vectors import codebook_texts
from pipeline.learning import Candidate, Pool, available, run_strategy
from pipeline.learning.seeking import ANCHOR_BELOW, COLD_START
from pipeline.store.embeddings import encoder_key, save_vectors, text_sha256
from tests import factory
from tests.unit.test_learning_strategies import BOOK, make

CODES = ["common", "other", "rare"]
DIM = 16


def planted_pool(seed: int = 0, rare_share: float = 0.02, n: int = 600):
    """Segments around three directions in embedding space, one per code; `rare` on `rare_share` of them.
    The model's scores are noisy and know nothing of `rare` yet (it scores every segment about the same)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(DIM)[:3]
    truth: dict[str, set[str]] = {}
    candidates = []
    for i in range(n):
        kind = 2 if i < n * rare_share else i % 2
        vector = centres[kind] + 0.9 * rng.normal(size=DIM) / np.sqrt(DIM)
        sid = f"s{i}"
        truth[sid] = {CODES[kind]}
        scores = {"common": float(rng.random()), "other": float(rng.random()), "rare": float(0.1 * rng.random())}
        candidates.append(Candidate(sid, scores, document_id=f"doc{i % 30}", vector=vector))
    _random.Random(seed).shuffle(candidates)
    return candidates, truth, {code: centres[k] for k, code in enumerate(CODES)}


def make_pool(candidates, truth, code_vectors, labelled_ids=(), seed=0) -> Pool:
    by_id = {c.segment_id: c for c in candidates}
    labelled = [by_id[s] for s in labelled_ids]
    counts = {code: sum(code in truth[s] for s in labelled_ids) for code in CODES}
    return Pool(
        [c for c in candidates if c.segment_id not in set(labelled_ids)],
        CODES,
        {},
        counts,
        "annotations",
        [c.scores for c in labelled],
        seed,
        [c.vector for c in labelled],
        [truth[s] for s in labelled_ids],
        code_vectors,
    )


def picks_to_find(strategy: str, positives: int, seed: int) -> int:
    """Labels `strategy` needs, 10 at a time after a random first 10, to meet `positives` positives of `rare`."""
    candidates, truth, vectors = planted_pool(seed)
    labelled = [c.segment_id for c in _random.Random(seed).sample(candidates, 10)]
    while sum("rare" in truth[s] for s in labelled) < positives and len(labelled) < len(candidates):
        pool = make_pool(candidates, truth, vectors, labelled, seed)
        labelled += [p.segment_id for p in run_strategy(strategy, pool, 10)]
    return len(labelled)


def test_the_three_are_installed() -> None:
    assert {"typical", "anchor", "auto"} <= set(available())


def test_anchor_finds_a_planted_rare_codes_positives_in_fewer_picks_than_random() -> None:
    for seed in range(3):
        assert picks_to_find("anchor", 5, seed) * 2 <= picks_to_find("random", 5, seed)


def test_anchor_works_from_the_codebook_text_alone_before_any_positive() -> None:
    candidates, truth, vectors = planted_pool()
    picks = [p for p in run_strategy("anchor", make_pool(candidates, truth, vectors), 15) if p.code == "rare"]
    assert len(picks) == 5 and all("rare" in truth[p.segment_id] for p in picks)  # the codes take turns
    assert "rare is rare (0 positive(s) so far" in picks[0].reason and "near its 1 anchor(s)" in picks[0].reason


def test_anchor_leaves_codes_with_enough_positives_to_the_closest_calls() -> None:
    candidates, truth, vectors = planted_pool()
    pool = make_pool(candidates, truth, vectors)
    pool.label_counts = dict.fromkeys(CODES, ANCHOR_BELOW)
    assert [p.segment_id for p in run_strategy("anchor", pool, 5)] == [
        p.segment_id for p in run_strategy("hybrid", pool, 5)
    ]


def test_typical_spreads_a_cold_start_over_the_codes_and_documents() -> None:
    candidates, truth, vectors = planted_pool()
    picks = run_strategy("typical", make_pool(candidates, truth, vectors), 9)
    assert [p.code for p in picks[:3]] == ["common", "other", "rare"]  # turns, all with no labels (ties by name)
    assert {p.code for p in picks} == set(CODES) and sum(p.code in truth[p.segment_id] for p in picks) >= 7
    assert len({p.document_id for p in picks}) == 9
    assert "typical of rare (similarity" in picks[2].reason


def test_typical_without_embeddings_falls_back_to_the_scores() -> None:
    candidates = [Candidate(f"s{i}", {"a": i / 10, "b": 1 - i / 10}, document_id=f"d{i}") for i in range(10)]
    picks = run_strategy("typical", Pool(candidates, ["a", "b"]), 2)
    assert {p.code for p in picks} == {"a", "b"} and "score" in picks[0].reason


def test_auto_switches_from_typical_to_margin_with_anchor_by_label_count() -> None:
    candidates, truth, vectors = planted_pool()
    cold = run_strategy("auto", make_pool(candidates, truth, vectors), 10)
    assert all(p.reason.startswith("auto: cold start") and "typical of" in p.reason for p in cold)
    ids = [c.segment_id for c in candidates if "rare" not in truth[c.segment_id]][:COLD_START]
    warm = run_strategy("auto", make_pool(candidates, truth, vectors, ids), 10)
    kinds = [p.reason.split(":")[1].strip() for p in warm]
    assert (
        kinds.count("anchor for a rare code") == 5
        and kinds.count("margin with diversity (40 segment(s) labelled)") == 5
    )
    assert len({p.segment_id for p in warm}) == 10


def test_auto_drops_anchor_once_every_code_has_enough_positives() -> None:
    candidates, truth, vectors = planted_pool()
    ids = [c.segment_id for c in candidates][:COLD_START]
    pool = make_pool(candidates, truth, vectors, ids)
    pool.label_counts = dict.fromkeys(CODES, ANCHOR_BELOW)
    assert all("margin with diversity" in p.reason for p in run_strategy("auto", pool, 10))


def anchor_reasons(cli, workspace: Path) -> dict[str, str]:
    result = cli("next", "--workspace", workspace, "--strategy", "anchor", "--limit", "3", "--json")
    assert result.exit_code == 0, result.output
    return {p["code"]: p["reason"] for p in json.loads(result.stdout)["picks"]}


def test_next_anchor_reads_the_labelled_positives_from_the_workspace(tmp_path: Path, cli) -> None:
    make(tmp_path).close()  # annotated: carrot on d-0 and d-2, stick on d-1 and d-2; machismo never
    reasons = anchor_reasons(cli, tmp_path / "ws")
    assert "carrot is rare (2 positive(s) so far" in reasons["carrot"]
    assert "near its 2 anchor(s)" in reasons["carrot"] and "score space" in reasons["carrot"]
    assert "no anchors yet" in reasons["machismo"]


def test_next_anchor_takes_the_gold_and_the_cached_codebook_vectors_of_a_head_model(tmp_path: Path, cli) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    manifest = {"codes": ["carrot", "stick", "machismo"], "thresholds": [0.5] * 3, "encoder_sha256": "w"}
    (model_dir / "classifier.json").write_text(json.dumps({**manifest, "normalize": True, "max_length": 128}))
    store = make(tmp_path, path=model_dir)
    factory.add_gold(store, {"d-1": ["stick", "carrot"]}, BOOK)  # adjudicated: the gold wins over the annotation
    texts = [f"Turn d-{i}: the officer talks about the shift." for i in range(8)]
    texts += [t for group in codebook_texts(BOOK) for t in group]
    rng = np.random.default_rng(0)
    with store.transaction():
        save_vectors(
            store,
            encoder_key("w", True, 128, "cpu"),
            [(text_sha256(t), rng.normal(size=DIM).astype(np.float32).tobytes()) for t in texts],
        )
    store.close()
    reasons = anchor_reasons(cli, tmp_path / "ws")
    # carrot: three labelled positives (d-0, d-2 and the gold's d-1) and its codebook text, in embedding space
    assert "near its 4 anchor(s)" in reasons["carrot"] and "embedding space" in reasons["carrot"]
    assert "near its 3 anchor(s)" in reasons["stick"]  # d-1 (gold) and d-2, and its codebook text
    assert "no anchors yet" in reasons["machismo"]  # no positive, and not in the codebook
