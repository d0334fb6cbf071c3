"""`prelabel --engine ray`: a real local Ray (2 CPUs) scores as the in-process int8 ONNX path does, an
interrupted run resumes without duplicates, and the errors a user can cause are one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import pytest
import yaml

from pipeline.classifier import prelabel, train
from pipeline.classifier.ray_engine import (
    FAIL_AFTER_ENV,
    FAIL_MODE_ENV,
    check_reachable,
    import_ray,
    prelabel_on_ray,
    windows,
)
from pipeline.config import RaySettings
from pipeline.errors import CultureCodeError
from pipeline.store import Segment, Store
from pipeline.store.predictions import delete_predictions
from tests.unit.test_classifier_helpers import (
    CODEBOOK,
    add_segments,
    codebook,
    examples,
    settings,
    tiny_encoder,
    write_jsonl,
)

CHUNK = 7  # segments per transaction: 48 segments make 7 chunks, the last one short
RAY = {"num_cpus": 2, "cpus_per_actor": 1, "window": 15}  # two actors, three windows


def _settings(ws: Path, **ray: object):
    cfg = settings(ws, chunk_size=CHUNK)
    cfg.ray = RaySettings(**{**RAY, **ray})
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with a head model on a tiny random encoder and 48 unscored segments; its in-process ONNX scores."""
    root = tmp_path_factory.mktemp("ray")
    encoder = tiny_encoder(root / "encoder")
    cfg = settings(root / "ws", base_model=str(encoder), chunk_size=CHUNK)
    with Store(root / "ws") as store:
        store.record_codebook(codebook())
        train(store, cfg, codebook(), gold=write_jsonl(root / "gold.jsonl", examples()), show_progress=False)
        add_segments(store, examples(n_docs=6, seed=5))
        prelabel(store, cfg, codebook(), runtime="onnx", show_progress=False)  # also exports the int8 copy
        expected = _predictions(store)
        with store.transaction():
            delete_predictions(store)
    shutil.copytree(root / "ws", root / "unscored")
    return root / "unscored", expected


@pytest.fixture
def workspace(trained, tmp_path):
    source, expected = trained
    shutil.copytree(source, tmp_path / "ws")
    return tmp_path / "ws", expected


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module's library-level tests; `prelabel_on_ray` uses it and leaves it up."""
    ray = import_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _predictions(store: Store) -> dict[str, tuple[dict[str, float], list[str]]]:
    rows = store.conn.execute("SELECT segment_id, scores, codes FROM predictions").fetchall()
    assert len(rows) == len({r["segment_id"] for r in rows}), "a segment was scored twice"
    return {r["segment_id"]: (json.loads(r["scores"]), json.loads(r["codes"])) for r in rows}


def _assert_same(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for segment, (scores, codes) in expected.items():
        assert got[segment][1] == codes, segment
        assert got[segment][0] == pytest.approx(scores, abs=1e-5), segment


@pytest.mark.slow
def test_cli_engine_ray_starts_a_local_ray_and_writes_the_in_process_rows(cli, workspace, tmp_path):
    ws, expected = workspace
    ray = import_ray()
    started_before = ray.is_initialized()
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"classifier": {"chunk_size": CHUNK}, "ray": RAY}), encoding="utf-8")
    result = cli(
        "prelabel", "--engine", "ray", "--num-cpus", "2", "-q", "--json", "-c", config, "-w", ws, "--codebook", CODEBOOK
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["scored"] == len(expected) and report["runtime"].startswith("onnx on Ray")
    with Store(ws) as store:
        _assert_same(_predictions(store), expected)
        run = store.last_runs(1)[0]
    assert run["status"] == "ok" and run["args"]["engine"] == "ray"
    assert ray.is_initialized() == started_before, "the local Ray started for the run is shut down after it"


@pytest.mark.slow
def test_model_shipped_as_bytes_scores_the_same(local_ray, workspace):
    ws, expected = workspace
    with Store(ws) as store:  # an address: the actors get the model's files through the object store, not a path
        report = prelabel_on_ray(store, _settings(ws, address="auto"), codebook(), show_progress=False)
        _assert_same(_predictions(store), expected)
    assert report.scored == len(expected) and report.already_scored == 0


@pytest.mark.slow
def test_interrupted_ray_run_keeps_whole_chunks_and_a_rerun_completes(local_ray, workspace, monkeypatch):
    ws, expected = workspace
    monkeypatch.setenv(FAIL_AFTER_ENV, "3")  # the one actor fails on its fourth chunk
    with Store(ws) as store:
        with pytest.raises(CultureCodeError, match="rerun to resume"):
            prelabel_on_ray(store, _settings(ws, actors=1, window=1000), codebook(), show_progress=False)
        kept = _predictions(store)
        assert store.last_runs(1)[0]["status"] == "failed"
        monkeypatch.delenv(FAIL_AFTER_ENV)
        rerun = prelabel_on_ray(store, _settings(ws), codebook(), show_progress=False)
        _assert_same(_predictions(store), expected)
    assert len(kept) < len(expected) and len(kept) % CHUNK == 0, "only whole chunks are written"
    assert rerun.scored == len(expected) - len(kept) and rerun.already_scored == len(kept)


def test_windows_group_whole_chunks_up_to_the_size():
    chunks = [
        [Segment(id=f"s{i}-{j}", document_id="d", position=j, text="t") for j in range(n)]
        for i, n in enumerate([3, 3, 3, 2])
    ]
    grouped = list(windows(iter(chunks), 5))
    assert [[len(c) for c in w] for w in grouped] == [[3, 3], [3, 2]]
    assert list(windows(iter(chunks), 1)) == [[c] for c in chunks]


def test_missing_ray_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(CultureCodeError, match=r"pip install 'culturecode\[ray\]'"):
        import_ray()


def test_unreachable_address_is_one_line_and_exit_2(cli, workspace):
    ws, _ = workspace
    with pytest.raises(CultureCodeError, match="cannot reach the Ray cluster at ray://127.0.0.1:1"):
        check_reachable("ray://127.0.0.1:1")
    result = cli("prelabel", "--engine", "ray", "--ray-address", "127.0.0.1:1", "-q", "-w", ws, "--codebook", CODEBOOK)
    assert result.exit_code == 2 and "cannot reach the Ray cluster at 127.0.0.1:1" in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--engine", "spark"], "--engine spark: use local or ray"),
        (["--engine", "ray", "--runtime", "torch"], "runs the int8 ONNX copy"),
        (["--engine", "ray", "--with", "llm"], "classifier only"),
    ],
)
def test_engine_flag_misuse_is_one_line(cli, tmp_path, flags, message):
    result = cli("prelabel", *flags, "-q", "-w", tmp_path / "ws", "--codebook", CODEBOOK)
    assert result.exit_code == 2 and message in result.output


def _prelabel_in_a_process(ws: Path, tmp_path: Path, kill_after: int, *flags: str) -> subprocess.CompletedProcess:
    """`culturecode prelabel --engine ray` as a user runs it (its own local Ray), the one actor's process
    SIGKILLing itself after every `kill_after` chunks it scores; a run that hangs is killed and fails the test."""
    config = tmp_path / "pipeline.yaml"
    ray_cfg = {**RAY, "actors": 1, "window": 1000}  # one actor, one window: the actor's restarts are the only way on
    config.write_text(yaml.safe_dump({"classifier": {"chunk_size": CHUNK}, "ray": ray_cfg}), encoding="utf-8")
    args = ["prelabel", "--engine", "ray", "-q", *flags, "-c", config, "-w", ws, "--codebook", CODEBOOK]
    env = {**os.environ, FAIL_AFTER_ENV: str(kill_after), FAIL_MODE_ENV: "kill"}
    command = [sys.executable, "-c", "from pipeline.cli import app; app()", *map(str, args)]
    proc = subprocess.Popen(command, env=env, stdout=PIPE, stderr=PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("prelabel --engine ray hung after its worker was killed")
    assert not _left_running(proc.pid), "the run's Ray processes outlive it"
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _left_running(group: int, grace: float = 15.0) -> list[str]:
    """The processes of the run's process group (its Ray) still alive `grace` seconds after it ended."""
    deadline = time.monotonic() + grace
    while True:
        ps = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(group)], capture_output=True, text=True)
        alive = ps.stdout.splitlines()
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


@pytest.mark.slow
def test_ray_restarts_a_killed_worker_and_the_run_completes(workspace, tmp_path):
    ws, expected = workspace
    result = _prelabel_in_a_process(ws, tmp_path, 3, "--json")  # chunks 4 and 7 each kill the actor's process
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout is the report alone: Ray's notices of the deaths are not in it
    assert report["scored"] == len(expected) and report["already_scored"] == 0
    with Store(ws) as store:
        _assert_same(_predictions(store), expected)
        assert store.last_runs(1)[0]["status"] == "ok"


@pytest.mark.slow
def test_a_worker_that_keeps_dying_fails_in_one_line_and_a_rerun_completes(cli, workspace, tmp_path):
    ws, expected = workspace
    result = _prelabel_in_a_process(ws, tmp_path, 1)  # each restarted actor dies on its second chunk
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0 and "Traceback" not in output and "(raylet)" not in output, output
    assert output.splitlines()[-1].startswith("Error: scoring on Ray failed (a Ray worker process died"), output
    assert output.endswith("rerun to resume"), output
    with Store(ws) as store:
        kept = _predictions(store)
        assert store.last_runs(1)[0]["status"] == "failed"
    assert len(kept) < len(expected) and len(kept) % CHUNK == 0, "only whole chunks are written"
    config = tmp_path / "pipeline.yaml"  # the killed run's chunk size: the int8 scores depend on the chunks
    rerun = cli("prelabel", "--engine", "ray", "-q", "--json", "-c", config, "-w", ws, "--codebook", CODEBOOK)
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["already_scored"] == len(kept)
    with Store(ws) as store:
        _assert_same(_predictions(store), expected)  # one row per segment: _predictions fails on a duplicate
