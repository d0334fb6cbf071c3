"""The hybrid strategy: rarity-weighted uncertainty, then a diverse batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.learning import Candidate, Pool, next_segments, run_strategy
from pipeline.store.embeddings import encoder_key, save_vectors, text_sha256
from tests.unit.test_learning_strategies import ids, make


def pool(candidates: list[Candidate], counts: dict[str, int], labelled_vectors=None) -> Pool:
    labelled = [{"common": 0.9, "rare": 0.1}] * len(labelled_vectors or [])
    return Pool(candidates, ["common", "rare"], {}, counts, "annotations", labelled, 0, labelled_vectors or [])


def test_hybrid_is_installed_and_puts_the_never_labelled_code_first(tmp_path: Path) -> None:
    report = next_segments(make(tmp_path), "hybrid", n=2)
    first = report.picks[0]
    assert first.segment_id == "d-5" and first.code == "machismo" and first.labels_so_far == 0
    assert "machismo scored 0.70" in first.reason and "0 label(s) so far" in first.reason


def test_hybrid_surfaces_the_rare_code_where_uncertainty_chases_close_calls_on_a_common_one() -> None:
    close_calls = [Candidate(f"c{i}", {"common": 0.5, "rare": 0.02}) for i in range(30)]
    maybe_rare = [Candidate(f"r{i}", {"common": 0.1, "rare": 0.4 + i / 100}) for i in range(8)]
    the_pool = pool(close_calls + maybe_rare, {"common": 60, "rare": 0})
    assert all(p.code == "common" for p in run_strategy("uncertainty", the_pool, 8))
    picks = run_strategy("hybrid", the_pool, 8)
    rare_picks = [p for p in picks if p.segment_id.startswith("r")]
    assert picks[0] in rare_picks and len(rare_picks) >= 6  # the batch may keep one close call for variety
    assert {p.code for p in rare_picks} == {"rare"}


def test_hybrid_spreads_a_batch_over_distinct_kinds_of_segment_by_embedding() -> None:
    same = {"common": 0.5, "rare": 0.5}
    kind_a = [Candidate(f"a{i}", same, vector=[1.0, 0.0, 0.01 * i]) for i in range(6)]
    kind_b = [Candidate(f"b{i}", same, vector=[0.0, 1.0, 0.01 * i]) for i in range(6)]
    picks = run_strategy("hybrid", pool(kind_a + kind_b, {"common": 5, "rare": 5}), 2)
    assert {p.segment_id[0] for p in picks} == {"a", "b"}
    assert "embedding space" in picks[0].reason
    # a kind already labelled comes after the one nobody has seen
    first = run_strategy("hybrid", pool(kind_a + kind_b, {"common": 5, "rare": 5}, [[1.0, 0.0, 0.0]]), 2)
    assert first[0].segment_id.startswith("b")


def test_hybrid_without_embeddings_uses_score_space_and_empty_pools_give_nothing() -> None:
    candidates = [Candidate(f"s{i}", {"common": i / 10, "rare": 0.5}) for i in range(10)]
    picks = run_strategy("hybrid", pool(candidates, {"common": 1, "rare": 1}), 3)
    assert len(picks) == 3 and len(set(ids(picks))) == 3 and "score space" in picks[0].reason
    assert run_strategy("hybrid", pool([], {}), 3) == []


def test_next_gives_hybrid_the_cached_embeddings_of_the_model_encoder(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    manifest = {"codes": ["carrot", "stick", "machismo"], "thresholds": [0.5, 0.5, 0.5], "encoder_sha256": "w"}
    (model_dir / "classifier.json").write_text(json.dumps({**manifest, "normalize": True, "max_length": 128}))
    store = make(tmp_path, path=model_dir)
    assert "score space" in next_segments(store, "hybrid", n=2).picks[0].reason  # nothing cached yet
    texts = [f"Turn d-{i}: the officer talks about the shift." for i in range(8)]
    vectors = np.eye(8, dtype=np.float32)
    with store.transaction():
        save_vectors(
            store,
            encoder_key("w", True, 128, "cpu"),
            [(text_sha256(t), v.tobytes()) for t, v in zip(texts, vectors, strict=True)],
        )
    report = next_segments(store, "hybrid", n=2)
    assert all("embedding space" in p.reason for p in report.picks) and "d-5" in ids(report.picks)
