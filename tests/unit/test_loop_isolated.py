"""The live server's retrain runs in a child process (pipeline/loop/isolated.py), so its memory goes back to the
system when it ends (issue 26: `serve` grew about 2 GB per retrain with mpnet, none of it held by Python objects).
The retrains here are real (MiniLM, head method) with Label Studio's pull and push stubbed out in the child."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.loop.isolated import IsolatedCallFailed, run_isolated
from pipeline.loop.trigger import RetrainTrigger, retrain_job, workspace_retrain
from pipeline.store import Store
from tests.factory import add_documents, add_gold, make_workspace
from tests.unit.test_classifier_helpers import codebook, examples, settings

ROOT = Path(__file__).resolve().parents[2]


# ---- targets the child imports by name


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value * 2


def _user_error() -> None:
    raise CultureCodeError("no workspace here: run `culturecode ingest` first")


def _bug() -> None:
    raise ZeroDivisionError("a bug")


def _dies() -> None:
    os._exit(3)


def _sleeps(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(120)


def stubbed_retrain_job(settings: Settings, book: Codebook) -> dict:
    """The loop's real retrain job, with Label Studio's pull and push (and the adjudication of pulled
    annotations) stubbed out, as tests/unit/test_flows.py does; says which process ran it."""
    import pipeline.gold
    import pipeline.studio

    pipeline.studio.pull = lambda *a, **k: {"new": 0}  # type: ignore[assignment]
    pipeline.studio.push = lambda *a, **k: {"segments": 0}  # type: ignore[assignment]
    pipeline.gold.adjudicate = lambda *a, **k: {"gold": 0}  # type: ignore[assignment]
    return {**retrain_job(settings, book), "pid": os.getpid()}


# ---- the mechanism


def test_the_call_runs_in_another_process_and_its_value_comes_back():
    child, doubled = run_isolated(_pid_and, 21)
    assert doubled == 42 and child != os.getpid()


def test_a_user_error_stays_one_and_a_bug_keeps_its_type_and_traceback():
    with pytest.raises(CultureCodeError, match="no workspace here"):
        run_isolated(_user_error)
    with pytest.raises(IsolatedCallFailed, match="ZeroDivisionError: a bug") as bug:
        run_isolated(_bug)
    assert "Traceback" in str(bug.value) and "_bug" in str(bug.value)


def test_a_child_that_dies_without_an_answer_is_reported():
    with pytest.raises(IsolatedCallFailed, match="exited with code 3"):
        run_isolated(_dies)


def test_the_child_dies_with_a_parent_killed_with_sigkill(tmp_path):
    """A server killed with -9 mid-retrain leaves no retrain running behind it (it resumes on restart)."""
    pid_file = tmp_path / "child.pid"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pipeline.loop.isolated import run_isolated;"
        "from tests.unit.test_loop_isolated import _sleeps;"
        "run_isolated(_sleeps, sys.argv[2])"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(ROOT), str(pid_file)])  # noqa: S603
    try:
        for _ in range(600):  # until the child wrote its pid (a spawned interpreter starts in about a second)
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        child = psutil.Process(int(pid_file.read_text()))
        parent.kill()
        parent.wait()
        child.wait(timeout=60)  # raises psutil.TimeoutExpired if it outlived its parent
    finally:
        if parent.poll() is None:
            parent.kill()
    assert not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE


# ---- the loop's retrain


@pytest.fixture
def labelled_workspace(tmp_path):
    rows = examples(n_docs=6, per_doc=8, seed=5)
    docs: dict[str, list[str]] = {}
    for row in rows:
        docs.setdefault(row["document"], []).append(row["text"])
    book = codebook()
    store = make_workspace(tmp_path / "ws", book)
    segs = add_documents(store, docs)
    add_gold(store, {s.id: r["codes"] for s, r in zip(segs, rows, strict=True)}, book)
    store.close()
    return tmp_path / "ws"


def _loaded_models() -> list[object]:
    from torch import nn

    gc.collect()
    return [
        o for o in gc.get_objects() if issubclass(type(o), nn.Module) and hasattr(o, "config")
    ]  # transformers models


def test_three_loop_retrains_leave_the_servers_memory_where_it_was(labelled_workspace):
    """Each retrain runs in a child: the server process loads no model, and its RSS after three retrains is within
    a bound of what it was before the first (in the server's own process, one MiniLM retrain alone added ~650 MB;
    mpnet ~1.5 GB, then ~1 GB more per retrain)."""
    book = codebook()
    cfg = settings(labelled_workspace, **{"export_onnx": False})
    retrain = workspace_retrain(cfg, book, job=stubbed_retrain_job)
    records: list[dict] = []
    trigger = RetrainTrigger(
        lambda: Store(labelled_workspace, create=False), retrain, every=1, debounce=0.0, on_finish=records.append
    )
    models_before = len(_loaded_models())
    rss_before = psutil.Process().memory_info().rss
    for _ in range(3):
        trigger.retrain_now()
        assert trigger.wait_idle(600)
    rss_after = psutil.Process().memory_info().rss
    assert [r.get("error") for r in records] == [None, None, None], records
    assert all(r["pid"] != os.getpid() for r in records)
    assert records[0]["model_version"] == "clf-001" and records[0]["promoted"]
    assert len(_loaded_models()) == models_before
    assert rss_after - rss_before < 150 * 2**20, (rss_before >> 20, rss_after >> 20)
