"""Two commands on one workspace: writers take turns (the second waits, then fails with one line), readers
run alongside, and a holder killed with -9 leaves no lock behind (pipeline/store/lock.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import CultureCodeError
from pipeline.store import Store
from pipeline.store.lock import READ_ONLY_COMMANDS, WorkspaceBusyError, holder, is_exclusive, workspace_lock
from pipeline.store.segments import count_segments
from tests.factory import make_workspace

ROOT = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\nfrom pipeline.store import Store\n"
    "store = Store(sys.argv[1], lock_as=sys.argv[2])\nprint('holding', flush=True)\ntime.sleep(120)\n"
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the workspace lock is an fcntl.flock")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    make_workspace(tmp_path / "ws", None, {"doc_a": ["First turn.", "Second turn."]}).close()
    return tmp_path / "ws"


@pytest.fixture
def settings_file(tmp_path: Path, ws: Path) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"workspace: {ws}\nbusy_wait: 0.5\nbackups:\n  keep: 0\n", encoding="utf-8")
    return path


@pytest.fixture
def transcript(tmp_path: Path) -> Path:
    path = tmp_path / "interview.txt"
    path.write_text("A: We went out on patrol.\nB: And then what happened?\n", encoding="utf-8")
    return path


@pytest.fixture
def holding(ws: Path):
    """A process that holds the workspace lock as `train` until killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(ws), "train"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "holding"
    yield child
    if child.poll() is None:
        child.kill()
    child.wait()


def culturecode(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_a_second_writer_waits_then_fails_with_one_line_naming_the_holder(holding, settings_file, transcript, ws):
    busy = culturecode("ingest", transcript, "-c", settings_file, "-q")
    assert busy.returncode == 2
    lines = busy.stderr.strip().splitlines()
    assert len(lines) == 1
    assert re.match(r"Error: workspace busy: train since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", lines[0])
    assert f"process {holding.pid}" in lines[0]
    with Store(ws) as store:
        assert count_segments(store) == 2  # the refused ingest wrote nothing

    holding.terminate()
    holding.wait()
    done = culturecode("ingest", transcript, "-c", settings_file, "-q")
    assert done.returncode == 0, done.stderr
    with Store(ws) as store:
        assert count_segments(store) == 4


def test_a_holder_killed_with_sigkill_frees_the_workspace(holding, settings_file, transcript):
    os.kill(holding.pid, signal.SIGKILL)
    holding.wait()
    done = culturecode("ingest", transcript, "-c", settings_file, "-q")
    assert done.returncode == 0, done.stderr


def test_readers_run_while_a_writer_holds_the_workspace(holding, settings_file):
    status = culturecode("status", "-c", settings_file, "--json")
    assert status.returncode == 0, status.stderr
    assert '"segments": 2' in status.stdout
    segments = culturecode("segments", "-c", settings_file, "--json")
    assert segments.returncode == 0 and "Second turn." in segments.stdout


def test_restore_is_a_writer_too(holding, settings_file):
    busy = culturecode("restore", "-c", settings_file)
    assert busy.returncode == 2 and "workspace busy: train since" in busy.stderr


def test_the_lock_names_its_holder_and_is_reentrant_within_a_process(ws):
    with workspace_lock(ws, "pull", wait=0):
        assert holder(ws)["command"] == "pull" and holder(ws)["pid"] == os.getpid()
        with Store(ws, lock_as="prelabel", busy_wait=0) as store:  # a flow opening the workspace again
            assert count_segments(store) == 2
        assert holder(ws)["command"] == "pull"  # the inner close did not release the outer hold
    assert holder(ws) == {}  # released: the file names nobody


def test_a_store_that_cannot_open_releases_the_lock(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "culturecode.db").write_bytes(b"not a database at all, just some bytes " * 200)
    with pytest.raises(CultureCodeError):
        Store(ws, lock_as="ingest", busy_wait=0)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom pipeline.store.lock import acquire\nacquire(sys.argv[1], 'x', 0)()",
            ws,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert child.returncode == 0, child.stderr


def test_which_commands_write():
    for command in ("ingest", "prelabel", "train", "push", "pull", "adjudicate", "restore", "retrain", "llm label"):
        assert is_exclusive(command)
    assert is_exclusive("a command added later")  # unknown commands are writers, the safe side
    for command in ("status", "segments", "models list", "studio status"):
        assert command in READ_ONLY_COMMANDS and not is_exclusive(command)
    assert not is_exclusive(None)  # library use outside the CLI


def test_busy_error_is_a_user_error(ws):
    with workspace_lock(ws, "push", wait=0):
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nfrom pipeline.store import Store\nStore(sys.argv[1], lock_as='pull', busy_wait=0)",
                ws,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    assert child.returncode == 1 and "WorkspaceBusyError: workspace busy: push since" in child.stderr
    assert issubclass(WorkspaceBusyError, CultureCodeError)  # the CLI prints it as one line, exit 2
