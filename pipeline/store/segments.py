"""Documents and segments: the named queries stages need beyond `Store.segments()`/`segment()`.

`Store` keeps the widely used document and segment methods (`put_document`, `segments`,
`segment`, `iter_segments`, `neighbours`); this module holds the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipeline.store.db import Segment, Store, dumps, iter_segments_where

_WITHOUT_PREDICTION = (
    "NOT EXISTS (SELECT 1 FROM predictions p WHERE p.segment_id = segments.id AND p.model_version = ?)"
)
_IN_IDS = "id IN (SELECT value FROM json_each(?))"


def count_documents(store: Store) -> int:
    return store.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]


def count_segments(store: Store) -> int:
    return store.conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]


def segment_ids(store: Store) -> set[str]:
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
