"""The embedding cache: a retrain with the head method encodes only texts it has not seen, under the same encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.classifier import encoder as encoder_module
from pipeline.classifier import load_model, prelabel, train
from pipeline.classifier.embedding_cache import EmbeddingCache, encoder_key, weights_sha256
from pipeline.classifier.registry import MANIFEST
from pipeline.store import Store
from pipeline.store.embeddings import clear_embeddings, count_embeddings
from pipeline.store.predictions import predictions_of
from tests.unit.test_classifier_helpers import add_segments, codebook, examples, settings, tiny_encoder, write_jsonl


class CountingEncode:
    """A fake encoder: a text's vector is its length and first letter code; remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(t), ord(t[0]), 1.0] for t in texts], dtype=np.float32)

    @property
    def texts(self) -> int:
        return sum(len(c) for c in self.calls)


def test_second_lookup_encodes_nothing_and_a_changed_text_is_encoded(tmp_path):
    store = Store(tmp_path / "ws")
    cache, encode = EmbeddingCache(store, "enc-a", 100), CountingEncode()
    first = cache.embed(["alpha", "beta", "alpha"], encode)
    assert encode.calls == [["alpha", "beta"]]  # a text repeated is encoded once
    again = cache.embed(["beta", "alpha"], encode)
    assert encode.texts == 2 and np.array_equal(again, first[[1, 0]])
    cache.embed(["alpha", "beta!"], encode)
    assert encode.calls[-1] == ["beta!"]
    assert (cache.hits, cache.encoded) == (3, 3)


def test_another_encoder_key_does_not_reuse_vectors(tmp_path):
    store = Store(tmp_path / "ws")
    EmbeddingCache(store, "enc-a", 100).embed(["alpha"], CountingEncode())
    other = CountingEncode()
    EmbeddingCache(store, "enc-b", 100).embed(["alpha"], other)
    assert other.calls == [["alpha"]]
    assert count_embeddings(store, "enc-a") == count_embeddings(store, "enc-b") == 1


def test_cache_stays_within_its_row_bound_dropping_least_recently_used(tmp_path):
    store = Store(tmp_path / "ws")
    cache, encode = EmbeddingCache(store, "enc", 3), CountingEncode()
    cache.embed(["a1", "b1", "c1"], encode)
    cache.embed(["d1", "e1"], encode)
    assert count_embeddings(store) == 3 and cache.evicted == 2
    cache.embed(["d1", "e1"], encode)
    assert encode.texts == 5  # the newest stayed
    with store.transaction():
        assert clear_embeddings(store) == 3


def test_encoder_key_depends_on_weights_normalisation_length_and_device():
    layer = torch.nn.Linear(3, 2)
    weights = weights_sha256(layer)
    base = encoder_key(weights, True, 128, "cpu")
    assert base == encoder_key(weights_sha256(layer), True, 128, "cpu")
    with torch.no_grad():
        layer.weight[0, 0] += 1.0
    assert weights_sha256(layer) != weights
    variants = [encoder_key(weights, False, 128, "cpu"), encoder_key(weights, True, 64, "cpu")]
    assert base not in [*variants, encoder_key(weights, True, 128, "cuda")]


# ------------------------------------------------------------------ training and pre-labelling


@pytest.fixture
def counted(monkeypatch):
    """Counts the texts the real encoder embeds (training and pre-labelling both go through `embed`)."""
    seen: list[int] = []
    real = encoder_module.embed

    def counting(model, tokenizer, texts, *args, **kwargs):
        seen.append(len(texts))
        return real(model, tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(encoder_module, "embed", counting)
    monkeypatch.setattr("pipeline.classifier.training.embed", counting)
    monkeypatch.setattr("pipeline.classifier.methods.embed", counting)
    return seen


def _train(root: Path, name: str, gold: Path, **cfg):
    store = Store(root / name)
    store.record_codebook(codebook())
    base = str(tiny_encoder(root / "encoder")) if not (root / "encoder").exists() else str(root / "encoder")
    opts = {"base_model": base, "codebook_features": True, "normalize": True, **cfg}
    report = train(store, settings(root / name, **opts), codebook(), gold=gold, show_progress=False)
    return store, report


def test_second_training_encodes_nothing_and_matches_uncached(tmp_path, counted):
    gold = write_jsonl(tmp_path / "gold.jsonl", examples())
    store, first = _train(tmp_path, "ws", gold)
    assert sum(counted) > 0 and first.fit["embedding_cache"]["encoded"] > 0
    counted.clear()
    _, second = _train(tmp_path, "ws", gold)
    assert sum(counted) == 0 and second.fit["embedding_cache"]["encoded"] == 0
    _, plain = _train(tmp_path, "plain", gold, embedding_cache_rows=0)
    assert "embedding_cache" not in plain.fit
    assert second.thresholds == plain.thresholds == first.thresholds
    assert second.test["per_code"] == plain.test["per_code"]
    heads = [
        load_model(s, codebook(), r.version).head["weight"]
        for s, r in ((store, second), (Store(tmp_path / "plain"), plain))
    ]
    assert torch.allclose(heads[0], heads[1], atol=1e-6)


def test_prelabel_reads_cached_vectors_and_scores_like_the_uncached_model(tmp_path, counted):
    rows = examples()
    gold = write_jsonl(tmp_path / "gold.jsonl", rows)
    store, report = _train(tmp_path, "ws", gold)
    fresh = examples(n_docs=2, per_doc=3, seed=9)
    ids = add_segments(store, rows[:5] + fresh)
    store.close()
    shutil.copytree(tmp_path / "ws", tmp_path / "plain")  # model paths are relative: the copy finds its own
    counted.clear()
    with Store(tmp_path / "ws") as store:
        prelabel(store, settings(tmp_path / "ws"), codebook(), show_progress=False)
        cached = predictions_of(store, report.version)
    assert sum(counted) == len(fresh)  # the 5 training texts were cached by `train`
    with Store(tmp_path / "plain") as plain_store:
        prelabel(plain_store, settings(tmp_path / "plain", embedding_cache_rows=0), codebook(), show_progress=False)
        plain = predictions_of(plain_store, report.version)
    assert set(cached) == set(plain) == set(ids)
    for seg in ids:
        assert cached[seg].scores == pytest.approx(plain[seg].scores, abs=2e-4)
        assert cached[seg].codes == plain[seg].codes
    assert json.loads((Path(report.path) / MANIFEST).read_text())["encoder_sha256"]
