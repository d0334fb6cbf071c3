"""Run one call in a fresh child process and hand back its result, so that whatever it allocates goes when it ends.

The live server's retrain loads an encoder, trains, exports ONNX and pre-labels: about 2 GB with mpnet that the
allocators (glibc's arenas, torch's, onnxruntime's) keep after every Python object is gone, so a server that
retrained in its own process grew by that much per retrain (issue 26). In a child, the memory is the child's and
goes back to the system when it exits; the server's stays at its baseline.

The child is a fresh interpreter (`python -m pipeline.loop.isolated`: no copy of the server's threads, locks or
torch state, and unlike multiprocessing's `spawn` it never re-runs the caller's `__main__`) and dies with the
thread that started it (Linux's parent-death signal), so a server killed with -9 mid-retrain
leaves no retrain running behind it; the restarted server resumes that retrain from the workspace as before.
A `CultureCodeError` in the child is raised again as one in the parent (the same one-line message); any other
failure as `IsolatedCallFailed` with the child's exception type, message and traceback text.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import CultureCodeError


class IsolatedCallFailed(RuntimeError):
    """The child raised something other than a CultureCodeError, or died without an answer."""


def run_isolated(target: Callable[..., Any], *args: Any) -> Any:
    """`target(*args)` in a child process (`python -m pipeline.loop.isolated`); its return value or its error,
    raised here. `target` must be importable by name (a module-level function); `args` and the value picklable.
    The child's stdout and stderr are this process's (the server's log)."""
    request = pickle.dumps({"sys_path": list(sys.path), "call": pickle.dumps((target, args)), "parent": os.getpid()})
    with tempfile.TemporaryDirectory(prefix="culturecode-call-") as tmp:
        answer_file = Path(tmp) / "answer.pickle"
        child = subprocess.Popen(  # noqa: S603 (our own module, this interpreter)
            [sys.executable, "-m", "pipeline.loop.isolated", str(answer_file)], stdin=subprocess.PIPE, env=_env()
        )
        try:
            child.communicate(request)
        except BaseException:  # the server is stopping: the call dies with it
            child.kill()
            child.wait()
            raise
        answer = _read_answer(answer_file, child.returncode)
    status, text, value = answer
    if status == "ok":
        return value
    if status == "user":
        raise CultureCodeError(text)
    raise IsolatedCallFailed(text)


def _env() -> dict[str, str]:
    """This environment, with the folder this `pipeline` package is in first on PYTHONPATH (however it was found)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _read_answer(path: Path, returncode: int) -> tuple[str, str, Any]:
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 (written by our own child for us)
    except (OSError, EOFError, pickle.UnpicklingError):
        return ("error", f"the child process exited with code {returncode} and no answer", None)


def _child(answer_file: Path) -> None:
    request = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 (from the parent, through a pipe)
    _die_with_parent(request["parent"])
    sys.path[:] = request["sys_path"]
    try:
        target, args = pickle.loads(request["call"])  # noqa: S301
        answer: tuple[str, str, Any] = ("ok", "", target(*args))
    except CultureCodeError as exc:
        answer = ("user", str(exc), None)
    except BaseException as exc:  # noqa: BLE001 (reported to the parent, which records it)
        text = "".join(traceback.format_exception(exc)).rstrip()
        answer = ("error", f"{type(exc).__name__}: {exc}\n--- in the child process:\n{text}", None)
    try:
        data = pickle.dumps(answer)
    except Exception as exc:  # an unpicklable return value
        data = pickle.dumps(("error", f"cannot send the result back: {type(exc).__name__}: {exc}", None))
    partial = answer_file.with_suffix(".partial")
    partial.write_bytes(data)
    partial.rename(answer_file)  # whole or absent


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when the thread that started it ends (a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
