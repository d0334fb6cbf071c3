"""One writing command per workspace at a time: an OS lock on `<workspace>/.lock`.

Commands that change the workspace (ingest, prelabel, train, push, pull, adjudicate, restore, ...) hold an
exclusive `flock` on the file while their store is open; the file names the holder (command, start time,
process) for the message the next one prints. A second writer waits `busy_wait` seconds (a setting), then
fails with one line: "workspace busy: <command> since <time>". Commands that only read (status, segments,
reports) take no lock: SQLite's WAL lets them read while a writer writes. The kernel drops a `flock` when its
process ends, however it ends (kill -9 included), so a dead holder never keeps the workspace locked.

The lock is re-entrant within one process (a flow that opens the workspace again keeps the one lock). Where
`fcntl` does not exist (Windows) there is no lock; the database's own transactions still keep it whole.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import CultureCodeError

LOCK_NAME = ".lock"
POLL_SECONDS = 0.1

# commands that never change the workspace's data (a report file or a row in the run log at most): they run
# alongside a writer. Any other command, a new one included, is an exclusive writer.
READ_ONLY_COMMANDS = frozenset(
    {
        "status",
        "segments",
        "models list",
        "models show",
        "studio status",
        "llm plan",
        "llm evaluate",
        "evaluate",
        "agreement",
        "appendix",
        "disagreements",
        "export",
        "config show",
        "config check",
        "loop status",
        "next",
        "meta show",
        "findings",
    }
)

_held: dict[Path, list[Any]] = {}  # lock file -> [open file descriptor, depth] for the locks this process holds


class WorkspaceBusyError(CultureCodeError):
    """Another command holds the workspace lock after the wait."""


def is_exclusive(command: str | None) -> bool:
    """Whether `command` ('push', 'models promote', ...) must hold the workspace lock; None: not a CLI command."""
    return command is not None and command not in READ_ONLY_COMMANDS


@contextmanager
def workspace_lock(workspace: str | Path, command: str, wait: float = 10.0) -> Iterator[None]:
    """Hold the workspace's lock as `command` (waiting up to `wait` seconds for another holder)."""
    release = acquire(workspace, command, wait)
    try:
        yield
    finally:
        release()


def acquire(workspace: str | Path, command: str, wait: float = 10.0) -> Callable[[], None]:
    """Take the lock (the workspace folder must exist); returns the function that releases it."""
    path = (Path(workspace) / LOCK_NAME).resolve()
    if path in _held:
        _held[path][1] += 1
        return lambda: _release(path)
    try:
        import fcntl
    except ImportError:  # no flock on this platform: nothing to hold
        return lambda: None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _wait_for(fd, fcntl, path, wait)
    except BaseException:
        os.close(fd)
        raise
    _write_holder(fd, command)
    _held[path] = [fd, 1]
    return lambda: _release(path)


def _wait_for(fd: int, fcntl: Any, path: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise WorkspaceBusyError(busy_message(path, wait)) from None
            time.sleep(POLL_SECONDS)


def _write_holder(fd: int, command: str) -> None:
    holder = {
        "command": command,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)


def _release(path: Path) -> None:
    entry = _held.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[path]
    fd = entry[0]
    try:
        os.ftruncate(fd, 0)  # the next reader of the file must not name a finished command
    finally:
        os.close(fd)  # closing the last descriptor drops the flock


def holder(workspace_or_lock_file: str | Path) -> dict[str, Any]:
    """What the lock file says about its holder ({} when it says nothing readable)."""
    path = Path(workspace_or_lock_file)
    if path.is_dir():
        path = path / LOCK_NAME
    try:
        value = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def busy_message(path: Path, wait: float) -> str:
    info = holder(path)
    since = str(info.get("since", "?")).replace("T", " ").replace("+00:00", " UTC")
    command = info.get("command") or "another culturecode command"
    process = f" (process {info['pid']})" if info.get("pid") else ""
    return (
        f"workspace busy: {command} since {since}{process}; waited {wait:g} s for {path.parent}; "
        f"rerun once it has finished, or raise busy_wait in the settings"
    )
