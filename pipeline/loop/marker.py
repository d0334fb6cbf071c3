"""Which `culturecode serve` runs on a workspace: every running server holds a shared `flock` on
<workspace>/.serve.lock for its lifetime (the kernel drops it with the process, kill -9 included), and the file
says where it listens (`{"pid", "url", "every"}`, one JSON line, the last server started). `restore` refuses while
one runs (it would go on serving the database moved aside); `loop status` asks the running server, not the port
the settings name (issue 26 #8, #9)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SERVE_LOCK = ".serve.lock"
MAX_RECORD = 4096


class ServingMarker:
    """This process's hold on <workspace>/.serve.lock: `record` writes where it listens, `release` lets go (once)."""

    def __init__(self, workspace: Path):
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # no flock on this platform: no marker
            return
        fd = os.open(workspace / SERVE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._fd = fd
        self.record({"pid": os.getpid()})

    def record(self, facts: dict[str, Any]) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (json.dumps({"pid": os.getpid(), **facts}) + "\n").encode(), 0)

    def release(self) -> None:  # once: a second close could close a descriptor reused since
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def running_server(workspace: Path) -> dict[str, Any] | None:
    """What the running `culturecode serve` of `workspace` recorded ({"pid": 0} when it cannot be read), None when
    no server holds the workspace."""
    try:
        import fcntl
    except ImportError:
        return None
    path = workspace / SERVE_LOCK
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                found = json.loads(os.pread(fd, MAX_RECORD, 0) or b"{}")
            except ValueError:
                found = {}
            return found if isinstance(found, dict) and isinstance(found.get("pid"), int) else {"pid": 0}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
