"""The live loop's state (`culturecode serve`): one JSON document in the `meta` table, so a restarted
server resumes where the killed one stopped.

- `pending`: the annotations created, edited or deleted since the last retrain began (by Label Studio id, so a
  webhook delivered twice, or an annotation edited three times, counts once);
- `training`: the ones the running retrain took; a server killed mid-retrain gives them back (`resume_loop`);
- `retrains`, `history`: what each retrain did (the newest `HISTORY` kept).

Every change is one read-modify-write inside a transaction (BEGIN IMMEDIATE), safe across threads and processes.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.store.db import Store, dumps, now

KEY = "loop.state"
HISTORY = 50


def _empty() -> dict[str, Any]:
    return {"pending": [], "training": [], "retrains": 0, "history": [], "last_event_at": None}


def loop_state(store: Store) -> dict[str, Any]:
    """The loop's state as stored (an empty state when the server never ran)."""
    raw = store.get_meta(KEY)
    state = _empty()
    if raw:
        state.update(json.loads(raw))
    return state


def _save(store: Store, state: dict[str, Any]) -> None:
    store.set_meta(KEY, dumps(state))


def note_annotation_events(store: Store, keys: list[str]) -> int:
    """Count annotations Label Studio reported changed; returns how many are pending now."""
    with store.transaction():
        state = loop_state(store)
        known = set(state["pending"])
        fresh = [k for k in dict.fromkeys(keys) if k not in known]
        state["pending"] = [*state["pending"], *fresh]
        if keys:
            state["last_event_at"] = now()
        _save(store, state)
    return len(state["pending"])


def take_pending(store: Store) -> list[str]:
    """A retrain begins: the pending annotations become the ones it trains on (a restarted server finds them)."""
    with store.transaction():
        state = loop_state(store)
        taken = [*state["training"], *state["pending"]]
        state["training"], state["pending"] = taken, []
        _save(store, state)
    return taken


def finish_retrain(store: Store, record: dict[str, Any]) -> None:
    """A retrain ended (`record`: what it did, or its error); its annotations are no longer pending."""
    with store.transaction():
        state = loop_state(store)
        state["training"] = []
        state["retrains"] += 1
        state["history"] = [*state["history"], {**record, "finished_at": now()}][-HISTORY:]
        _save(store, state)


def resume_loop(store: Store) -> int:
    """At server start: annotations a killed retrain had taken are pending again; returns the pending count."""
    with store.transaction():
        state = loop_state(store)
        if state["training"]:
            state["pending"] = list(dict.fromkeys([*state["training"], *state["pending"]]))
            state["training"] = []
            _save(store, state)
    return len(state["pending"])
