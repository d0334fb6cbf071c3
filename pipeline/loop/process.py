"""`culturecode serve` in the background, started by `culturecode studio start` when `loop.start_with_studio` is on
and stopped by `culturecode studio stop`. Its pid and log live in the workspace (`serve.pid`, `serve.log`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import CultureCodeError
from pipeline.loop.connect import backend_url
from pipeline.loop.status import server_up

PID_FILE = "serve.pid"
LOG_FILE = "serve.log"


@dataclass
class BackgroundServer:
    url: str
    pid: int | None
    started: bool  # False: one was already answering
    log: str

    def as_dict(self) -> dict:
        return asdict(self)


def start_background_server(
    settings: Settings, config: Path | None = None, timeout: float = 120.0, connect: bool = True
) -> BackgroundServer:
    """Start `culturecode serve` for the workspace as its own process (it outlives this command) and wait until it
    answers /health; one already answering is reused. A server that exits while starting is reported with the last
    line of its log."""
    workspace = Path(settings.workspace).resolve()  # the same path in the command line whatever the cwd
    url, log = backend_url(settings), workspace / LOG_FILE
    if server_up(url):
        return BackgroundServer(url, _recorded_pid(workspace), False, str(log))
    command = [sys.executable, "-m", "pipeline.cli", "serve", "--workspace", str(workspace)]
    command += ["--codebook", str(settings.codebook_path()), "--host", settings.loop.host]
    command += ["--port", str(settings.loop.port), "--every", str(settings.loop.every)]
    command += ["--config", str(config)] if config else []
    command += ["--url", settings.studio.url] if settings.studio.url else []
    command += [] if connect else ["--no-connect"]
    with open(log, "ab") as sink:
        process = subprocess.Popen(  # noqa: S603 (our own command line)
            command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (workspace / PID_FILE).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_up(url):
            return BackgroundServer(url, process.pid, True, str(log))
        if process.poll() is not None:
            (workspace / PID_FILE).unlink(missing_ok=True)
            raise CultureCodeError(f"the model server exited while starting ({_last_line(log)}); see {log}")
        time.sleep(0.5)
    raise CultureCodeError(f"the model server did not answer at {url} within {timeout:.0f} s; see {log}")


def stop_background_server(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop the model server `studio start` started (SIGTERM: it finishes its request and keeps its count).
    False when none was running."""
    workspace = Path(settings.workspace).resolve()  # the same path in the command line whatever the cwd
    pid = _recorded_pid(workspace)
    (workspace / PID_FILE).unlink(missing_ok=True)
    if pid is None or not _is_our_server(pid, workspace):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_our_server(pid, workspace):
        time.sleep(0.2)
    return True


def _recorded_pid(workspace: Path) -> int | None:
    try:
        return int((workspace / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_server(pid: int, workspace: Path) -> bool:
    """Whether `pid` still is this workspace's `culturecode serve` (a recycled pid is never signalled), as
    `pipeline.studio.server` checks its Label Studio."""
    import psutil

    try:
        proc = psutil.Process(pid)
        command = proc.cmdline()
        return proc.status() != psutil.STATUS_ZOMBIE and "serve" in command and str(workspace) in command
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:200] if lines else "no output"
