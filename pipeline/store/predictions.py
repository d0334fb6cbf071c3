"""Predictions: per-segment, per-model-version code scores (from any labeller)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.store.db import Store, dumps, now


@dataclass
class PredictionRow:
    """One labeller's output for one segment, as stored."""

    segment_id: str
    model_version: str
    scores: dict[str, float]
    codes: list[str]
    rationale: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def write_predictions(store: Store, rows: Iterable[PredictionRow], codebook_hash: str) -> int:
    """Insert or replace predictions (caller holds the transaction). Returns the number written."""
    stamp = now()
    batch = [(r.segment_id, r.model_version, dumps(r.scores), dumps(r.codes), r.rationale, codebook_hash, stamp)
             for r in rows]
    store.conn.executemany(
        "INSERT INTO predictions(segment_id, model_version, scores, codes, rationale, codebook_hash, created_at) "
        "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(segment_id, model_version) DO UPDATE SET "
        "scores = excluded.scores, codes = excluded.codes, rationale = excluded.rationale, "
        "codebook_hash = excluded.codebook_hash, created_at = excluded.created_at",
        batch,
    )
    return len(batch)
