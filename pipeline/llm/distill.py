"""Cold start without human gold: LLM labels become silver training data for the classifier
(`distill`), and LLM labels are scored against human gold once it exists (`evaluate_llm`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.store import Store


def llm_version(store: Store, version: str | None = None) -> str:
    """The named LLM model version, else the current one (kind='llm')."""
    if version:
        row = store.conn.execute("SELECT version FROM models WHERE version = ? AND kind = 'llm'", (version,)).fetchone()
    else:
        row = store.conn.execute("SELECT version FROM models WHERE kind = 'llm' AND is_current = 1 "
                                 "ORDER BY created_at DESC LIMIT 1").fetchone()
    if row is None:
        what = f"LLM labels '{version}'" if version else "LLM labels"
        raise CultureCodeError(f"no {what} in {store.workspace}: run `culturecode llm label` "
                               f"(or `culturecode prelabel --with llm`) first")
    return row[0]


def silver_rows(store: Store, codebook: Codebook, version: str, min_confidence: float) -> tuple[list[dict], int]:
    """LLM-labelled segments whose every chosen code reaches `min_confidence`; and how many were left out."""
    rows = store.conn.execute(
        "SELECT p.segment_id, p.codes, p.scores, s.text, s.document_id FROM predictions p "
        "JOIN segments s ON s.id = p.segment_id WHERE p.model_version = ? AND p.codebook_hash = ? "
        "ORDER BY s.document_id, s.position", (version, codebook.content_hash)).fetchall()
    kept, dropped = [], 0
    for row in rows:
        codes, scores = json.loads(row["codes"]), json.loads(row["scores"])
        if any(scores.get(c, 0.0) < min_confidence for c in codes):
            dropped += 1
            continue
        kept.append({"id": row["segment_id"], "text": row["text"], "codes": codes, "document": row["document_id"]})
    return kept, dropped


def distill(store: Store, settings: Settings, codebook: Codebook, version: str | None = None,
            min_confidence: float | None = None, method: str | None = None, promote: bool = True,
            show_progress: bool = True) -> dict:
    """Train the classifier on confidence-filtered LLM labels only (no human gold needed)."""
    from pipeline.classifier import train

    version = llm_version(store, version)
    threshold = settings.llm.min_confidence if min_confidence is None else min_confidence
    rows, dropped = silver_rows(store, codebook, version, threshold)
    if not rows:
        raise CultureCodeError(f"no LLM label of {version} reaches confidence {threshold}; lower "
                               f"--min-confidence or label more segments")
    path = Path(store.workspace) / "exports" / f"silver-{version}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    report = train(store, settings, codebook, gold=path, method=method, promote=promote,
                   show_progress=show_progress)
    store.conn.execute("UPDATE models SET metrics = json_set(metrics, '$.distilled_from', ?) WHERE version = ?",
                       (version, report.version))
    return {"silver_from": version, "silver_file": str(path), "segments": len(rows), "left_out": dropped,
            "min_confidence": threshold, "train": report.as_dict()}


def evaluate_llm(store: Store, codebook: Codebook, version: str | None = None) -> dict:
    """Per-code F1 and Cohen's kappa of LLM labels against the workspace gold table."""
    from pipeline.classifier.metrics import code_metrics

    version = llm_version(store, version)
    rows = store.conn.execute(
        "SELECT g.codes AS gold, p.codes AS llm FROM gold g JOIN predictions p ON p.segment_id = g.segment_id "
        "WHERE p.model_version = ?", (version,)).fetchall()
    if not rows:
        raise CultureCodeError(f"no segment has both gold and {version} labels; adjudicate gold or label "
                               f"the gold segments with the LLM")
    index = {c: i for i, c in enumerate(codebook.code_ids)}
    truth = np.zeros((len(rows), len(index)), dtype=int)
    pred = np.zeros_like(truth)
    for r, row in enumerate(rows):
        for c in json.loads(row["gold"]):
            truth[r, index[c]] = 1
        for c in json.loads(row["llm"]):
            pred[r, index[c]] = 1
    return {"model_version": version, **code_metrics(truth, pred, codebook.code_ids)}
