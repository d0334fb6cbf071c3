"""The model server survives its own kill -9 in the middle of a retrain, against the real Label Studio: restarted,
it resumes the killed retrain from the workspace, and Label Studio ends with every annotation and no duplicate
prediction (issue 14). The server runs as its own process (`loop.start_with_studio`'s background start)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipeline.classifier import current_version
from pipeline.loop.process import start_background_server, stop_background_server
from pipeline.store import Store
from pipeline.store.loop import loop_state
from pipeline.studio import connect
from tests.factory import free_port
from tests.integration.served import annotate, served_project, wait_for_loop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOOP = {
    "classifier": {"base_model": "minilm", "method": "head", "export_onnx": False, "min_segments": 10},
    "admission": {"enabled": False},
    "loop": {"every": 4, "debounce_seconds": 1, "method": "head"},
}


def _config(tmp_path: Path, studio_server, port: int) -> Path:
    """The settings file the background server reads: the loop's settings and the test server's key file."""
    studio = {"url": studio_server.url, "api_key_file": str(studio_server.key_file)}
    studio["api_key_env"] = "CULTURECODE_TEST_UNSET_KEY"
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({**LOOP, "studio": studio, "loop": {**LOOP["loop"], "port": port}}))
    return path


def _flat(nested: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _wait_until_training(ws: Path, timeout: float = 300) -> list[str]:
    """The annotations a retrain has taken, once one runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Store(ws, create=False) as store:
            taken = loop_state(store)["training"]
        if taken:
            return taken
        time.sleep(0.05)
    raise AssertionError("no retrain started")


def test_a_server_killed_mid_retrain_resumes_and_loses_nothing(studio_server, tmp_path, codebook):
    ws, port = tmp_path / "ws", free_port()
    config = _config(tmp_path, studio_server, port)
    settings = studio_server.workspace_settings(ws, **_flat(LOOP), **{"loop.port": port})
    served = served_project(ws, settings, codebook, seed=23, prefixes=["k"])
    store, seg_ids, labels, (person,) = served.store, served.segment_ids, served.labels, served.people
    project_id = served.projects[person.email]
    task_of = served.tasks_of(project_id)

    server = start_background_server(settings, config)
    try:
        http = studio_server.login(person.email, person.password)
        annotated = [s for s in seg_ids if not s.startswith("ws-doc5")]
        for seg in annotated:
            annotate(http, task_of[seg], labels[seg])
        taken = _wait_until_training(ws)
        os.kill(server.pid, signal.SIGKILL)  # mid-retrain
        restarted = start_background_server(settings, config)
        assert restarted.started and restarted.pid != server.pid
        state = wait_for_loop(ws, every=4)
    finally:
        stop_background_server(settings)
    finished = [h for h in state["history"] if not h.get("error")]
    assert finished and not state["training"], state  # the killed retrain ran again after the restart
    assert finished[0]["annotations"] >= len(taken)  # ... on the annotations the killed one had taken
    new = current_version(store)

    tasks = [t.model_dump() for t in connect(settings).sdk.tasks.list(project=project_id, fields="all", page_size=1000)]
    assert sum(len(t["annotations"] or []) for t in tasks) == len(annotated)  # nothing lost, nothing doubled
    for task in tasks:
        versions = Counter(p["model_version"] for p in task["predictions"] or [])
        assert all(n == 1 for n in versions.values()), (task["id"], versions)
    unannotated = {task_of[s] for s in seg_ids if s not in annotated}
    assert all(new in {p["model_version"] for p in t["predictions"] or []} for t in tasks if t["id"] in unannotated)
