"""Flows (pipeline/flows.py) return typed results whose `as_dict()` is what `--json` prints:
`distill` on LLM silver labels, and `retrain` with Label Studio's pull and push stubbed out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.classifier import list_models
from pipeline.flows import DistillResult, RetrainResult, distill, retrain
from pipeline.store.models import get_model
from pipeline.store.predictions import PredictionRow, count_predictions, write_predictions
from tests.factory import add_documents, add_gold, add_model, make_workspace
from tests.unit.test_classifier_helpers import codebook, examples, settings

RETRAIN_KEYS = [
    "pull",
    "adjudicate",
    "new",
    "current",
    "promoted",
    "prelabel",
    "push",
    "held_out_segments",
    "current_model",
    "message",
    "prior",
    "calibration",
    "trained",
    "pruned",
]


@pytest.fixture
def labelled(tmp_path):
    """48 segments over 6 documents, with their true codes."""
    rows = examples(n_docs=6, per_doc=8, seed=5)
    docs: dict[str, list[str]] = {}
    for row in rows:
        docs.setdefault(row["document"], []).append(row["text"])
    store = make_workspace(tmp_path / "ws", codebook())
    segs = add_documents(store, docs)
    truth = {s.id: r["codes"] for s, r in zip(segs, rows, strict=True)}
    yield store, truth
    store.close()


def test_distill_trains_on_confident_llm_labels(labelled):
    store, truth = labelled
    book = codebook()
    add_model(store, "llm-fake", book, truth, kind="llm")
    unsure = [seg for seg, codes in truth.items() if codes][:5]
    with store.transaction():  # five chosen codes below the confidence threshold: left out
        write_predictions(
            store,
            [PredictionRow(s, "llm-fake", {"carrot": 0.3, "stick": 0.3}, truth[s]) for s in unsure],
            book.content_hash,
        )
    result = distill(store, settings(store.workspace), book, min_confidence=0.5, show_progress=False)
    assert isinstance(result, DistillResult)
    assert (result.silver_from, result.segments, result.left_out) == ("llm-fake", 43, 5)
    data = result.as_dict()
    assert list(data) == ["silver_from", "silver_file", "segments", "left_out", "min_confidence", "train"]
    assert data["train"]["version"] == "clf-001" and json.loads(json.dumps(data))["min_confidence"] == 0.5
    silver = [json.loads(line) for line in Path(result.silver_file).read_text(encoding="utf-8").splitlines()]
    assert len(silver) == 43 and not {r["id"] for r in silver} & set(unsure)
    assert get_model(store, "clf-001")["metrics"]["distilled_from"] == "llm-fake"


def test_retrain_promotes_only_a_better_version(labelled, monkeypatch):
    store, truth = labelled
    book = codebook()
    pushed: list[dict] = []
    monkeypatch.setattr("pipeline.studio.pull", lambda *a, **k: {"new": 0})
    monkeypatch.setattr("pipeline.studio.push", lambda *a, **k: pushed.append(k) or {"segments": len(k["segment_ids"])})
    monkeypatch.setattr("pipeline.gold.adjudicate", lambda *a, **k: {"gold": len(truth)})
    add_gold(store, truth, book)
    cfg = settings(store.workspace)

    first = retrain(store, cfg, book, show_progress=False)
    assert isinstance(first, RetrainResult) and first.promoted and first.current is None
    assert first.current_model == "clf-001" and first.prelabel.scored == len(truth)
    assert first.message == "clf-001 is the first classifier and is now current."
    assert pushed[0]["model_version"] == "clf-001" and sorted(pushed[0]["segment_ids"]) == sorted(truth)
    data = first.as_dict()
    assert list(data) == RETRAIN_KEYS and data["prelabel"]["scored"] == len(truth) and data["push"] == {"segments": 48}
    assert json.loads(json.dumps(data))["new"]["model_version"] == "clf-001"

    # issue 26 #2: the same labels, example gold and settings again train nothing and store no version
    second = retrain(store, cfg, book, push=False, show_progress=False)
    assert not second.trained and not second.promoted and second.current_model == "clf-001" and second.push is None
    assert second.new == first.new and second.message.startswith("nothing new to learn from since clf-001")
    assert second.prelabel.scored == 0 and count_predictions(store, "clf-001") == len(truth)
    assert [m["version"] for m in list_models(store)] == ["clf-001"] and _model_dirs(store) == ["clf-001"]

    # a changed label trains a version; with loop.keep_unpromoted 0 an unpromoted one is removed, and said so
    seg = next(iter(truth))
    add_gold(store, {**truth, seg: [] if truth[seg] else ["carrot"]}, book)
    lean = cfg.model_copy(update={"loop": cfg.loop.model_copy(update={"keep_unpromoted": 0})})
    third = retrain(store, lean, book, push=False, show_progress=False)
    assert third.trained and third.new["model_version"] == "clf-002"
    kept = ["clf-001", "clf-002"] if third.promoted else ["clf-001"]
    assert [m["version"] for m in list_models(store)] == kept and _model_dirs(store) == kept
    assert [r["version"] for r in third.pruned.removed] == ([] if third.promoted else ["clf-002"])
    assert third.promoted or "removed 1 unpromoted version(s) nothing uses (clf-002" in third.message


def _model_dirs(store) -> list[str]:
    return sorted(p.name for p in (store.workspace / "models").iterdir() if not p.name.startswith("."))
