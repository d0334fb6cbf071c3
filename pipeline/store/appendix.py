"""Read-only summaries for the methods appendix: who coded what and when, the codebook versions seen on
stored rows, how gold was decided. Every result is sorted, so the same workspace gives the same appendix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.store.annotations import LIVE
from pipeline.store.db import ACTIVE, Store

_WHEN = "COALESCE(a.updated_at, a.created_at, a.pulled_at)"
# tables whose rows record the codebook hash they were made with
_HASHED = ("annotations", "predictions", "gold", "models", "studio_projects")


@dataclass(frozen=True)
class AnnotatorActivity:
    annotator: str
    annotations: int
    segments: int
    first: str | None
    last: str | None


def annotator_activity(store: Store) -> list[AnnotatorActivity]:
    """Per annotator (annotation projects, kept annotations on active segments): counts and date range."""
    rows = store.conn.execute(
        f"SELECT a.annotator, COUNT(*), COUNT(DISTINCT a.segment_id), MIN({_WHEN}), MAX({_WHEN}) "
        f"FROM annotations a JOIN segments s ON s.id = a.segment_id WHERE s.{ACTIVE} AND {LIVE} "
        "GROUP BY a.annotator ORDER BY a.annotator"
    )
    return [AnnotatorActivity(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def codebook_hashes_seen(store: Store) -> dict[str, dict[str, Any]]:
    """{codebook hash: {table: rows, "first": earliest time seen}} over every table that records one."""
    seen: dict[str, dict[str, Any]] = {}
    times = {"annotations": "pulled_at", "studio_projects": "created_at"}
    for table in _HASHED:
        when = times.get(table, "created_at")
        query = f"SELECT codebook_hash, COUNT(*), MIN({when}) FROM {table} GROUP BY codebook_hash"
        for digest, count, first in store.conn.execute(query):
            entry = seen.setdefault(digest, {"first": first})
            entry[table] = count
            if first and (entry["first"] is None or first < entry["first"]):
                entry["first"] = first
    return dict(sorted(seen.items(), key=lambda kv: (kv[1]["first"] or "", kv[0])))


def gold_methods(store: Store) -> dict[str, int]:
    """How many gold rows (of active segments) each adjudication method decided."""
    rows = store.conn.execute(
        f"SELECT g.method, COUNT(*) FROM gold g JOIN segments s ON s.id = g.segment_id WHERE s.{ACTIVE} "
        "GROUP BY g.method ORDER BY g.method"
    )
    return {r[0]: r[1] for r in rows}


def prediction_counts(store: Store) -> dict[str, int]:
    """Predictions per model version (active segments)."""
    rows = store.conn.execute(
        f"SELECT p.model_version, COUNT(*) FROM predictions p JOIN segments s ON s.id = p.segment_id "
        f"WHERE s.{ACTIVE} GROUP BY p.model_version ORDER BY p.model_version"
    )
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True)
class SegmentStats:
    per_document: dict[str, int]
    mean_chars: float | None
    speakers: int


def segment_stats(store: Store) -> SegmentStats:
    """Active segments per document, their mean length in characters and the number of distinct speaker labels."""
    rows = store.conn.execute(
        f"SELECT document_id, COUNT(*) FROM segments WHERE {ACTIVE} GROUP BY document_id ORDER BY document_id"
    )
    per_document = {r[0]: r[1] for r in rows}
    mean, speakers = store.conn.execute(
        f"SELECT AVG(LENGTH(text)), COUNT(DISTINCT speaker) FROM segments WHERE {ACTIVE}"
    ).fetchone()
    return SegmentStats(per_document, mean, speakers)


@dataclass(frozen=True)
class TimedAnnotation:
    annotator: str
    segment_id: str
    codes: list[str]
    prediction_version: str | None
    when: str | None


def annotation_timeline(store: Store) -> list[TimedAnnotation]:
    """Kept annotations of annotation projects on active segments with their last edit time, oldest first."""
    rows = store.conn.execute(
        f"SELECT a.annotator, a.segment_id, a.codes, a.prediction_version, {_WHEN} FROM annotations a "
        f"JOIN segments s ON s.id = a.segment_id WHERE s.{ACTIVE} AND {LIVE} ORDER BY {_WHEN}, a.annotation_id"
    )
    return [TimedAnnotation(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]
