"""The LLM response cache: one row per (backend, model, prompt version, rendered prompt, sampling).

A rerun asks the LLM only for prompts it has not answered; failed answers are kept with their
error so that `--refresh` is the only way to ask again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.store.db import Store, dumps, now


@dataclass
class CachedAnswer:
    key: str
    backend: str
    model: str
    prompt_version: str
    segment_id: str | None
    segment_hash: str
    params: dict[str, Any]
    response: str
    attempts: list[str] = field(default_factory=list)
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


def cached_answer(store: Store, key: str) -> CachedAnswer | None:
    row = store.conn.execute("SELECT * FROM llm_cache WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    values = {k: row[k] for k in CachedAnswer.__dataclass_fields__}
    return CachedAnswer(**{**values, "params": json.loads(row["params"]), "attempts": json.loads(row["attempts"])})


def cache_answer(store: Store, answer: CachedAnswer) -> None:
    """Insert or replace one answer (caller holds the transaction)."""
    store.conn.execute(
        "INSERT OR REPLACE INTO llm_cache(key, backend, model, prompt_version, segment_id, segment_hash, "
        "params, response, attempts, error, prompt_tokens, completion_tokens, seconds, created_at) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            answer.key,
            answer.backend,
            answer.model,
            answer.prompt_version,
            answer.segment_id,
            answer.segment_hash,
            dumps(answer.params),
            answer.response,
            dumps(answer.attempts),
            answer.error,
            answer.prompt_tokens,
            answer.completion_tokens,
            answer.seconds,
            now(),
        ),
    )


def cached_keys(store: Store, keys: Iterable[str]) -> set[str]:
    """Which of `keys` have a cached answer."""
    rows = store.conn.execute(
        "SELECT key FROM llm_cache WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(list(keys)),)
    )
    return {r[0] for r in rows}
