"""Models: every trained classifier and every LLM configuration that labelled, and which is current.

At most one model per kind is current; `current_model` is the only place that rule is read.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pipeline.store.db import Store, dumps, now


def current_model(store: Store, kind: str | None = None) -> str | None:
    """The current version of `kind`; by default the classifier's, else (a cold start) the LLM's."""
    where, params = ("AND kind = ?", (kind,)) if kind else ("", ())
    row = store.conn.execute(
        f"SELECT version FROM models WHERE is_current = 1 {where} "
        "ORDER BY kind = 'classifier' DESC, created_at DESC LIMIT 1",
        params,
    ).fetchone()
    return row[0] if row else None


def _decoded(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "is_current": bool(row["is_current"]), "metrics": json.loads(row["metrics"])}


def register_model(
    store: Store,
    version: str,
    kind: str,
    path: str | None,
    codebook_hash: str,
    metrics: dict[str, Any],
    promote: bool = False,
    created_at: str | None = None,
) -> None:
    """Add a model row (a version seen before keeps its row and takes the new metrics); `promote`
    makes it the current one of its kind. The caller holds the transaction."""
    store.conn.execute(
        "INSERT INTO models(version, kind, path, codebook_hash, is_current, metrics, created_at) "
        "VALUES(?, ?, ?, ?, 0, ?, ?) ON CONFLICT(version) DO UPDATE SET metrics = excluded.metrics",
        (version, kind, path, codebook_hash, dumps(metrics), created_at or now()),
    )
    if promote:
        promote_model(store, version, kind)


def promote_model(store: Store, version: str, kind: str) -> None:
    """Make `version` the current model of `kind` (and no other of that kind)."""
    store.conn.execute("UPDATE models SET is_current = 0 WHERE kind = ?", (kind,))
    store.conn.execute("UPDATE models SET is_current = 1 WHERE version = ?", (version,))


def model_versions(store: Store, kind: str) -> list[str]:
    return [r[0] for r in store.conn.execute("SELECT version FROM models WHERE kind = ?", (kind,))]


def list_models(store: Store, kind: str) -> list[dict[str, Any]]:
    """Every model of `kind`, oldest first, with `metrics` decoded and `is_current` a bool."""
    rows = store.conn.execute("SELECT * FROM models WHERE kind = ? ORDER BY created_at, version", (kind,))
    return [_decoded(r) for r in rows]


def get_model(store: Store, version: str, kind: str | None = None) -> dict[str, Any] | None:
    """The model row of `version` (of `kind`, when given), decoded as in `list_models`; None if absent."""
    if kind is None:
        row = store.conn.execute("SELECT * FROM models WHERE version = ?", (version,)).fetchone()
    else:
        row = store.conn.execute("SELECT * FROM models WHERE version = ? AND kind = ?", (version, kind)).fetchone()
    return _decoded(row) if row else None


def set_model_metric(store: Store, version: str, key: str, value: Any) -> None:
    """Set one entry of a model's `metrics` (e.g. where a distilled classifier's labels came from)."""
    store.conn.execute(
        "UPDATE models SET metrics = json_set(metrics, '$.' || ?, json(?)) WHERE version = ?",
        (key, dumps(value), version),
    )


def count_models(store: Store) -> int:
    return store.conn.execute("SELECT COUNT(*) FROM models").fetchone()[0]
