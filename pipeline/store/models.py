"""Models: every trained classifier and every LLM configuration that labelled, and which is current.

At most one model per kind is current; `current_model` is the only place that rule is read. A model's
directory is stored relative to the workspace when it lies inside it (`models/clf-001`), so a workspace that is
moved or copied keeps its models; rows written before that (a path relative to the directory the command ran
in, or an absolute one) are still read, and a version found in the workspace's own models/ wins over them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
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


def _decoded(store: Store, row: sqlite3.Row) -> dict[str, Any]:
    return {
        **dict(row),
        "path": model_path(store, row["path"], row["version"]),
        "is_current": bool(row["is_current"]),
        "metrics": json.loads(row["metrics"]),
    }


def stored_path(store: Store, path: str | Path | None) -> str | None:
    """How a model directory is written into `models.path`: relative to the workspace (POSIX separators) when
    inside it, else absolute."""
    if path is None:
        return None
    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(store.workspace.resolve()).as_posix()
    except ValueError:
        return str(absolute)


def model_path(store: Store, stored: str | None, version: str) -> str | None:
    """Where a model's directory is now (see the module's docstring); where it belongs in the workspace when
    it is nowhere, for the error message."""
    if stored is None:
        return None
    path = Path(stored)
    own = [] if path.is_absolute() else [store.workspace / path]
    # then where the registry puts versions, then the row as written (absolute, or relative to an old cwd)
    candidates = [*own, store.workspace / "models" / version, path]
    for candidate in candidates:
        if candidate.is_dir():
            return str(candidate)
    return str(candidates[0])


def register_model(
    store: Store,
    version: str,
    kind: str,
    path: str | Path | None,
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
        (version, kind, stored_path(store, path), codebook_hash, dumps(metrics), created_at or now()),
    )
    if promote:
        promote_model(store, version, kind)


def promote_model(store: Store, version: str, kind: str) -> None:
    """Make `version` the current model of `kind` (and no other of that kind), and note when (`promoted_at`: a
    version once promoted is never pruned). A version that is not a model of `kind` changes nothing: ValueError."""
    found = store.conn.execute("SELECT 1 FROM models WHERE version = ? AND kind = ?", (version, kind)).fetchone()
    if found is None:
        raise ValueError(f"no {kind} version {version!r}: nothing was promoted")
    store.conn.execute("UPDATE models SET is_current = 0 WHERE kind = ?", (kind,))
    store.conn.execute(
        "UPDATE models SET is_current = 1, metrics = json_set(metrics, '$.promoted_at', ?) WHERE version = ?",
        (now(), version),
    )


def version_uses(store: Store, kind: str) -> dict[str, list[str]]:
    """Each version of `kind` that something still uses, with what: current, once promoted, named by Label Studio
    tasks (their prediction), annotated against, or with stored predictions. A version absent here is used by
    nothing the workspace records."""
    uses: dict[str, list[str]] = {}
    for row in store.conn.execute(
        "SELECT version, is_current, json_extract(metrics, '$.promoted_at') AS promoted FROM models WHERE kind = ?",
        (kind,),
    ):
        if row["is_current"]:
            uses.setdefault(row["version"], []).append("current")
        elif row["promoted"]:
            uses.setdefault(row["version"], []).append(f"promoted at {row['promoted']}")
    queries = (
        ("named by {} Label Studio task(s)", "SELECT model_version, COUNT(*) FROM tasks GROUP BY model_version"),
        (
            "{} annotation(s) made against it",
            "SELECT prediction_version, COUNT(*) FROM annotations GROUP BY prediction_version",
        ),
        ("{} stored prediction(s)", "SELECT model_version, predictions FROM prediction_counts WHERE predictions > 0"),
    )
    versions = set(model_versions(store, kind))
    for template, sql in queries:
        for version, count in store.conn.execute(sql):
            if version in versions:
                uses.setdefault(version, []).append(template.format(count))
    return uses


def forget_model(store: Store, version: str) -> str | None:
    """Drop a model that is not current, with its predictions: a dry run's trial, which nobody saw. Returns where
    its directory is (the caller removes it after the commit), None when there was no such model. The caller holds
    the transaction."""
    row = store.conn.execute("SELECT path, is_current FROM models WHERE version = ?", (version,)).fetchone()
    if row is None:
        return None
    if row["is_current"]:
        raise ValueError(f"{version} is the current model: it is never forgotten")
    store.conn.execute("DELETE FROM predictions WHERE model_version = ?", (version,))
    store.conn.execute("DELETE FROM models WHERE version = ?", (version,))
    return model_path(store, row["path"], version)


def model_versions(store: Store, kind: str) -> list[str]:
    return [r[0] for r in store.conn.execute("SELECT version FROM models WHERE kind = ?", (kind,))]


def list_models(store: Store, kind: str) -> list[dict[str, Any]]:
    """Every model of `kind`, oldest first, with `metrics` decoded and `is_current` a bool."""
    rows = store.conn.execute("SELECT * FROM models WHERE kind = ? ORDER BY created_at, version", (kind,))
    return [_decoded(store, r) for r in rows]


def get_model(store: Store, version: str, kind: str | None = None) -> dict[str, Any] | None:
    """The model row of `version` (of `kind`, when given), decoded as in `list_models`; None if absent."""
    if kind is None:
        row = store.conn.execute("SELECT * FROM models WHERE version = ?", (version,)).fetchone()
    else:
        row = store.conn.execute("SELECT * FROM models WHERE version = ? AND kind = ?", (version, kind)).fetchone()
    return _decoded(store, row) if row else None


def set_model_metric(store: Store, version: str, key: str, value: Any) -> None:
    """Set one entry of a model's `metrics` (e.g. where a distilled classifier's labels came from)."""
    store.conn.execute(
        "UPDATE models SET metrics = json_set(metrics, '$.' || ?, json(?)) WHERE version = ?",
        (key, dumps(value), version),
    )


def count_models(store: Store) -> int:
    return store.conn.execute("SELECT COUNT(*) FROM models").fetchone()[0]
