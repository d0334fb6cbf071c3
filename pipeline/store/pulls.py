"""Where the last pull of each Label Studio project stopped: its cursor, kept in the `meta` table.

A cursor maps every task the project held at the last pull to (its `updated_at` then, the segment it
holds). Label Studio stamps a task's `updated_at` whenever one of its annotations is created, edited or
deleted, so the next pull fetches only the tasks whose stamp moved or that are new, and finds the tasks
deleted since (those missing from the server's list).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pipeline.store.db import Store, dumps, now

PREFIX = "pull_cursor "


@dataclass
class PullCursor:
    tasks: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # task id -> (updated_at, segment id)
    pulled_at: str = ""


def _key(url: str, project_id: int) -> str:
    return f"{PREFIX}{url} {project_id}"


def pull_cursor(store: Store, url: str, project_id: int) -> PullCursor | None:
    """The project's cursor; None before its first pull (or when the stored one is unreadable)."""
    raw = store.get_meta(_key(url, project_id))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        tasks = {int(tid): (str(stamp), seg) for tid, (stamp, seg) in data["tasks"].items()}
    except (ValueError, KeyError, TypeError):
        return None  # a damaged cursor costs one full pull, never wrong data
    return PullCursor(tasks, data.get("pulled_at", ""))


def save_pull_cursor(store: Store, url: str, project_id: int, tasks: dict[int, tuple[str, str | None]]) -> None:
    """Remember the project's tasks as this pull saw them (caller holds the transaction)."""
    payload = {"tasks": {str(tid): [stamp, seg] for tid, (stamp, seg) in tasks.items()}, "pulled_at": now()}
    store.set_meta(_key(url, project_id), dumps(payload))


def forget_pull_cursors(store: Store, url: str | None = None) -> int:
    """Drop the cursors (of the server at `url`, or all): the next pull is a full one. Returns how many."""
    pattern = f"{PREFIX}{url} %" if url else f"{PREFIX}%"
    return store.conn.execute("DELETE FROM meta WHERE key LIKE ?", (pattern,)).rowcount
