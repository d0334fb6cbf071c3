"""Runs a killed command left behind: a `runs` row stays 'running' when its process died (kill -9, power cut).

A running row's summary names its owner (process id and host) until the run ends and the summary takes its
figures. The next store that opens the workspace marks the row 'interrupted' when its owner is gone; a command
still running on this host (or on another host, for a week) is left alone.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.store.db import Store

STALE_AFTER = timedelta(days=7)  # a run whose owner cannot be checked (another host, an older culturecode)


def run_owner() -> dict[str, Any]:
    """The summary of a run while it runs: who to ask whether it still does."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _process_alive(pid: int, started: datetime) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        # a process created after the run started is another one that got the same pid
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= started.timestamp() + 1
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _still_running(summary: dict[str, Any], started_at: str, now: datetime) -> bool:
    started = datetime.fromisoformat(started_at)
    pid, host = summary.get("pid"), summary.get("host")
    if isinstance(pid, int) and host == socket.gethostname():
        return _process_alive(pid, started)
    return now - started < STALE_AFTER


def mark_interrupted(store: Store) -> list[int]:
    """Mark the running rows whose process is gone as 'interrupted'; returns their ids. A workspace that is
    busy (another command is writing) or read-only is left for the next command to tidy."""
    now = datetime.now(UTC)
    rows = store.conn.execute("SELECT id, started_at, summary FROM runs WHERE status = 'running'").fetchall()
    gone = [r["id"] for r in rows if not _still_running(_summary(r["summary"]), r["started_at"], now)]
    if not gone:
        return []
    store.conn.execute("PRAGMA busy_timeout = 200")
    try:
        store.conn.executemany(
            "UPDATE runs SET status = 'interrupted', finished_at = ? WHERE id = ? AND status = 'running'",
            [(now.isoformat(timespec="seconds"), run_id) for run_id in gone],
        )
    except sqlite3.OperationalError:  # locked by a writer, or a read-only file
        return []
    finally:
        store.conn.execute("PRAGMA busy_timeout = 30000")
    return gone


def _summary(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
