"""What a workspace holds: counts per stage and per code, and the last runs."""

from __future__ import annotations

from typing import Any

from pipeline.config import Codebook
from pipeline.store import Store


def _per_code(store: Store, table: str, where: str = "", params: tuple = ()) -> dict[str, int]:
    sql = (f"SELECT j.value AS code, COUNT(*) FROM {table} t, json_each(t.codes) j"
           + (f" WHERE {where}" if where else "") + " GROUP BY j.value")
    return {row[0]: row[1] for row in store.conn.execute(sql, params)}


def current_model(store: Store, kind: str | None = None) -> str | None:
    """The current version of `kind`; by default the classifier's, else (a cold start) the LLM's."""
    where, params = ("AND kind = ?", (kind,)) if kind else ("", ())
    row = store.conn.execute(f"SELECT version FROM models WHERE is_current = 1 {where} "
                             "ORDER BY kind = 'classifier' DESC, created_at DESC LIMIT 1", params).fetchone()
    return row[0] if row else None


def workspace_status(store: Store, codebook: Codebook | None = None) -> dict[str, Any]:
    model = current_model(store)
    live = "deleted = 0 AND was_cancelled = 0"
    counts = {
        "documents": store.count("documents"),
        "segments": store.count("segments"),
        "predicted_segments": store.count("predictions", "model_version = ?", (model,)) if model else 0,
        "tasks": store.count("tasks"),
        "annotations": store.count("annotations", live),
        "skipped": store.count("annotations", "deleted = 0 AND was_cancelled = 1"),
        "annotated_segments": store.conn.execute(
            f"SELECT COUNT(DISTINCT segment_id) FROM annotations WHERE {live}").fetchone()[0],
        "annotators": store.conn.execute(
            f"SELECT COUNT(DISTINCT annotator) FROM annotations WHERE {live}").fetchone()[0],
        "gold": store.count("gold"),
        "models": store.count("models"),
    }
    predicted = _per_code(store, "predictions", "t.model_version = ?", (model,)) if model else {}
    annotated = _per_code(store, "annotations", "t.deleted = 0 AND t.was_cancelled = 0")
    gold = _per_code(store, "gold")
    code_ids = codebook.code_ids if codebook else sorted(set(predicted) | set(annotated) | set(gold))
    per_code = {c: {"predicted": predicted.get(c, 0), "annotated": annotated.get(c, 0), "gold": gold.get(c, 0)}
                for c in code_ids}
    return {
        "workspace": str(store.workspace),
        "schema_version": store.schema_version,
        "codebook_hash": store.codebook_hash,
        "current_model": model,
        "counts": counts,
        "per_code": per_code,
        "last_runs": [{k: r[k] for k in ("id", "stage", "status", "started_at", "finished_at", "summary")}
                      for r in store.last_runs(5)],
    }
