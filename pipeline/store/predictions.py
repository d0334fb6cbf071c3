"""Predictions: per-segment, per-model-version code scores (from any labeller)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
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
    batch = [
        (r.segment_id, r.model_version, dumps(r.scores), dumps(r.codes), r.rationale, codebook_hash, stamp)
        for r in rows
    ]
    store.conn.executemany(
        "INSERT INTO predictions(segment_id, model_version, scores, codes, rationale, codebook_hash, created_at) "
        "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(segment_id, model_version) DO UPDATE SET "
        "scores = excluded.scores, codes = excluded.codes, rationale = excluded.rationale, "
        "codebook_hash = excluded.codebook_hash, created_at = excluded.created_at",
        batch,
    )
    return len(batch)


def delete_predictions(store: Store, model_version: str | None = None, segment_ids: Iterable[str] | None = None) -> int:
    """Drop the predictions of `model_version` (of every version when None) on `segment_ids` (on every
    segment when None). Returns the number dropped."""
    sql, params = "DELETE FROM predictions WHERE 1", []
    if model_version is not None:
        sql += " AND model_version = ?"
        params.append(model_version)
    if segment_ids is not None:
        sql += " AND segment_id IN (SELECT value FROM json_each(?))"
        params.append(dumps(list(segment_ids)))
    return store.conn.execute(sql, params).rowcount


def _row(r) -> PredictionRow:
    return PredictionRow(
        r["segment_id"], r["model_version"], json.loads(r["scores"]), json.loads(r["codes"]), r["rationale"]
    )


def predictions_of(store: Store, model_version: str) -> dict[str, PredictionRow]:
    """{segment id: prediction} of one model version."""
    rows = store.conn.execute(
        "SELECT segment_id, model_version, scores, codes, rationale FROM predictions WHERE model_version = ?",
        (model_version,),
    )
    return {r["segment_id"]: _row(r) for r in rows}


def predictions_for(store: Store, model_version: str, segment_ids: Iterable[str]) -> dict[str, PredictionRow]:
    """{segment id: prediction} of one model version for the given segments only (the model server's lookups)."""
    rows = store.conn.execute(
        "SELECT segment_id, model_version, scores, codes, rationale FROM predictions "
        "WHERE model_version = ? AND segment_id IN (SELECT value FROM json_each(?))",
        (model_version, dumps(list(segment_ids))),
    )
    return {r["segment_id"]: _row(r) for r in rows}


def all_prediction_codes(store: Store) -> Iterator[tuple[str, str, list[str]]]:
    """(segment id, model version, codes) of every stored prediction."""
    for seg, version, codes in store.conn.execute("SELECT segment_id, model_version, codes FROM predictions"):
        yield seg, version, json.loads(codes)


def count_predictions(store: Store, model_version: str | None = None) -> int:
    """Predictions of `model_version` (of every version when None), read from the tally (migration 4)."""
    if model_version is None:
        return store.conn.execute("SELECT COALESCE(SUM(predictions), 0) FROM prediction_counts").fetchone()[0]
    row = store.conn.execute(
        "SELECT predictions FROM prediction_counts WHERE model_version = ?", (model_version,)
    ).fetchone()
    return row[0] if row else 0


def predicted_per_code(store: Store, model_version: str) -> dict[str, int]:
    """{code: segments `model_version` gave it}, read from the tally (migration 4)."""
    rows = store.conn.execute(
        "SELECT code, segments FROM prediction_codes WHERE model_version = ? AND segments > 0", (model_version,)
    )
    return {code: n for code, n in rows}


def recount_predictions(store: Store) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """({version: predictions}, {(version, code): predictions choosing it}) counted from the rows themselves, the
    figures the tallies must hold (for checks; `status` reads the tallies)."""
    per_version = {
        v: n for v, n in store.conn.execute("SELECT model_version, COUNT(*) FROM predictions GROUP BY model_version")
    }
    per_code = {
        (v, c): n
        for v, c, n in store.conn.execute(
            "SELECT p.model_version, j.value, COUNT(*) FROM predictions p, json_each(p.codes) j "
            "GROUP BY p.model_version, j.value"
        )
    }
    return per_version, per_code


def prediction_tallies(store: Store) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """The tallies as stored, shaped like `recount_predictions`."""
    per_version = {v: n for v, n in store.conn.execute("SELECT model_version, predictions FROM prediction_counts")}
    rows = store.conn.execute("SELECT model_version, code, segments FROM prediction_codes")
    return per_version, {(v, c): n for v, c, n in rows}


@dataclass
class PredictedSegment:
    """A prediction read back with its segment."""

    segment_id: str
    codes: list[str]
    scores: dict[str, float]
    rationale: str | None
    text: str
    document_id: str
    speaker: str | None


def predicted_segments(
    store: Store, model_version: str, codebook_hash: str | None = None, limit: int | None = None
) -> list[PredictedSegment]:
    """`model_version`'s predictions (made with `codebook_hash`, when given) with their segments, in
    document order; at most `limit` of them."""
    sql = (
        "SELECT p.segment_id, p.codes, p.scores, p.rationale, s.text, s.document_id, s.speaker "
        "FROM predictions p JOIN segments s ON s.id = p.segment_id WHERE p.model_version = ?"
    )
    params: list[object] = [model_version]
    if codebook_hash is not None:
        sql += " AND p.codebook_hash = ?"
        params.append(codebook_hash)
    sql += " ORDER BY s.document_id, s.position LIMIT ?"
    params.append(-1 if limit is None else limit)
    return [PredictedSegment(r[0], json.loads(r[1]), json.loads(r[2]), *r[3:]) for r in store.conn.execute(sql, params)]
