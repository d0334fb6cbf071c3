"""The LLM's side of a cold start: which LLM labels are good enough to train on (`silver_rows`; the
`distill` flow in pipeline/flows.py trains the classifier on them), and how LLM labels score
against human gold once it exists (`evaluate_llm`)."""

from __future__ import annotations

import numpy as np

from pipeline.config import Codebook
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from pipeline.store.gold import gold_segments
from pipeline.store.models import current_model, get_model
from pipeline.store.predictions import predicted_segments, predictions_of


def llm_version(store: Store, version: str | None = None) -> str:
    """The named LLM model version, else the current one (kind='llm')."""
    if version:
        found = version if get_model(store, version, kind="llm") else None
    else:
        found = current_model(store, "llm")
    if found is None:
        what = f"LLM labels '{version}'" if version else "LLM labels"
        raise CultureCodeError(
            f"no {what} in {store.workspace}: run `culturecode llm label` (or `culturecode prelabel --with llm`) first"
        )
    return found


def silver_rows(store: Store, codebook: Codebook, version: str, min_confidence: float) -> tuple[list[dict], int]:
    """LLM-labelled segments whose every chosen code reaches `min_confidence`; and how many were left out."""
    kept, dropped = [], 0
    for p in predicted_segments(store, version, codebook.content_hash):
        if any(p.scores.get(c, 0.0) < min_confidence for c in p.codes):
            dropped += 1
            continue
        kept.append({"id": p.segment_id, "text": p.text, "codes": p.codes, "document": p.document_id})
    return kept, dropped


def evaluate_llm(store: Store, codebook: Codebook, version: str | None = None) -> dict:
    """Per-code F1 and Cohen's kappa of LLM labels against the workspace gold table."""
    from pipeline.classifier.metrics import code_metrics

    version = llm_version(store, version)
    predicted = predictions_of(store, version)
    pairs = [(g.codes, predicted[g.segment_id].codes) for g in gold_segments(store) if g.segment_id in predicted]
    if not pairs:
        raise CultureCodeError(
            f"no segment has both gold and {version} labels; adjudicate gold or label the gold segments with the LLM"
        )
    index = {c: i for i, c in enumerate(codebook.code_ids)}
    truth = np.zeros((len(pairs), len(index)), dtype=int)
    pred = np.zeros_like(truth)
    for r, (gold, llm) in enumerate(pairs):
        for c in gold:
            truth[r, index[c]] = 1
        for c in llm:
            pred[r, index[c]] = 1
    return {"model_version": version, **code_metrics(truth, pred, codebook.code_ids)}
