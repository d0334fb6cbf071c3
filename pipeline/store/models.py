"""Models: every trained classifier and every LLM configuration that labelled, and which is current."""

from __future__ import annotations

from pipeline.store.db import Store


def current_model(store: Store, kind: str | None = None) -> str | None:
    """The current version of `kind`; by default the classifier's, else (a cold start) the LLM's."""
    where, params = ("AND kind = ?", (kind,)) if kind else ("", ())
    row = store.conn.execute(
        f"SELECT version FROM models WHERE is_current = 1 {where} "
        "ORDER BY kind = 'classifier' DESC, created_at DESC LIMIT 1",
        params,
    ).fetchone()
    return row[0] if row else None
