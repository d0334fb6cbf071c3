"""Documents and segments: the named queries stages need beyond `Store.segments()`/`segment()`.

`Store` keeps the widely used document and segment methods (`put_document`, `segments`,
`segment`, `iter_segments`, `neighbours`); this module holds the rest.

A segment is *active* while it is part of its document's current text; a re-ingest that drops a
segment with people's work on it (annotations, gold, Label Studio tasks) keeps it as *superseded*:
out of every count and stage, its work kept and listed by `superseded_segments`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.store.db import ACTIVE, Segment, Store, dumps, iter_segments_where

_WITHOUT_PREDICTION = (
    f"{ACTIVE} AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.segment_id = segments.id AND p.model_version = ?)"
)
_IN_IDS = "id IN (SELECT value FROM json_each(?))"


def count_documents(store: Store) -> int:
    return store.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]


def count_segments(store: Store) -> int:
    """Active segments (superseded ones are counted by `count_superseded`): all of them less the superseded ones,
    two index-only counts where counting the active ones would read every segment (0.3 s at a million)."""
    return store.conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0] - count_superseded(store)


def segment_ids(store: Store) -> set[str]:
    """Every segment the workspace knows, superseded ones included (Label Studio may hold their tasks)."""
    return {r[0] for r in store.conn.execute("SELECT id FROM segments")}


def segment_texts(store: Store, ids: list[str]) -> dict[str, str]:
    """{segment id: text} for the given ids (unknown ids are left out)."""
    if not ids:
        return {}
    rows = store.conn.execute(
        "SELECT id, text FROM segments WHERE id IN (SELECT value FROM json_each(?))", (dumps(list(ids)),)
    )
    return {seg: text for seg, text in rows}


def set_document_metadata(store: Store, document_id: str, metadata: dict[str, Any]) -> None:
    store.conn.execute("UPDATE documents SET metadata = json(?) WHERE id = ?", (json.dumps(metadata), document_id))


def _without_prediction(model_version: str, ids: list[str] | None) -> tuple[str, tuple]:
    if ids is None:
        return _WITHOUT_PREDICTION, (model_version,)
    return f"{_WITHOUT_PREDICTION} AND {_IN_IDS}", (model_version, dumps(list(ids)))


def count_segments_without_prediction(store: Store, model_version: str, ids: list[str] | None = None) -> int:
    """How many segments (of `ids`, or all) `model_version` has not scored yet."""
    where, params = _without_prediction(model_version, ids)
    return store.conn.execute(f"SELECT COUNT(*) FROM segments WHERE {where}", params).fetchone()[0]


def segments_without_prediction(
    store: Store, model_version: str, ids: list[str] | None = None, chunk_size: int = 2000
) -> Iterator[list[Segment]]:
    """Segments (of `ids`, or all) not yet scored by `model_version`, in chunks of `chunk_size`.

    Keyset-paginated by id, so memory stays flat and segments scored between chunks are not
    skipped or repeated."""
    where, params = _without_prediction(model_version, ids)
    yield from iter_segments_where(store, chunk_size, where, params)


# --------------------------------------------------------------------------- superseded segments


def count_superseded(store: Store) -> int:
    # spelt as the partial index `segments_superseded` is, so that the count reads that index only
    return store.conn.execute("SELECT COUNT(*) FROM segments WHERE superseded_at IS NOT NULL").fetchone()[0]


def successors(store: Store, ids: list[str]) -> dict[str, str | None]:
    """{superseded segment id: the segment its work was carried to, or None} for those of `ids`
    that are superseded (active and unknown ids are left out)."""
    rows = store.conn.execute(
        f"SELECT id, superseded_by FROM segments WHERE NOT ({ACTIVE}) AND {_IN_IDS}", (dumps(list(ids)),)
    )
    return {seg: successor for seg, successor in rows}


def set_successor(store: Store, segment_id: str, successor: str) -> None:
    """Record that the work on superseded `segment_id` was carried to `successor`."""
    store.conn.execute(
        f"UPDATE segments SET superseded_by = ? WHERE id = ? AND NOT ({ACTIVE})", (successor, segment_id)
    )


@dataclass
class SupersededSegment:
    """A segment a re-ingest dropped from its document, kept for the work on it."""

    id: str
    document_id: str
    former_position: int | None
    speaker: str | None
    text: str
    superseded_at: str
    carried_to: str | None  # the active segment its annotations and gold were copied to, if any
    annotations: int  # every annotation row on it (skipped and deleted ones too)
    gold: int
    tasks: int


_SUPERSEDED_SQL = f"""
SELECT s.id, s.document_id, s.former_position, s.speaker, s.text, s.superseded_at, s.superseded_by,
    (SELECT COUNT(*) FROM annotations a WHERE a.segment_id = s.id),
    (SELECT COUNT(*) FROM gold g WHERE g.segment_id = s.id),
    (SELECT COUNT(*) FROM tasks t WHERE t.segment_id = s.id)
FROM segments s WHERE NOT ({ACTIVE})"""


def superseded_segments(
    store: Store, document_id: str | None = None, ids: list[str] | None = None
) -> list[SupersededSegment]:
    """Superseded segments (of one document, or of `ids`, or all) with what is kept on them, in the
    order they were superseded, then by their former position."""
    sql, params = _SUPERSEDED_SQL, []
    if document_id is not None:
        sql += " AND s.document_id = ?"
        params.append(document_id)
    if ids is not None:
        sql += " AND s.id IN (SELECT value FROM json_each(?))"
        params.append(dumps(list(ids)))
    sql += " ORDER BY s.document_id, s.superseded_at, s.former_position"
    return [SupersededSegment(*row) for row in store.conn.execute(sql, params)]
