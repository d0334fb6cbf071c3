"""The live loop against a real Label Studio that restarts while the model server runs, and an annotation deleted
after a retrain trained on it (issue 14's fault tests): Label Studio's webhooks still reach the server after the
restart, the next retrain leaves the deleted annotation out (it stays in the workspace's ledger, flagged), and the
task it was on, unannotated again, ends with one prediction of the current model like every other open task."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from pipeline.classifier import current_version
from pipeline.loop.service import start_loop
from pipeline.studio import connect, server
from tests.integration.conftest import rows
from tests.integration.served import annotate, served_project, wait_for_loop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVERY = 4


def _annotation_ids(http: httpx.Client, task_id: int) -> list[int]:
    return [a["id"] for a in http.get(f"/api/tasks/{task_id}/annotations/").json()]


def _finished(state: dict) -> list[dict]:
    return [h for h in state["history"] if not h.get("error")]


def _wait_for_retrains(ws, count: int) -> dict:
    """The loop's state once at least `count` retrains have finished and nothing is due or running."""
    for _ in range(10):
        state = wait_for_loop(ws, every=EVERY)
        if len(_finished(state)) >= count:
            return state
    raise AssertionError(f"fewer than {count} finished retrains: {state['history']}")


def test_studio_restart_and_an_annotation_deleted_after_a_retrain(studio_server, tmp_path, codebook):
    ws = tmp_path / "ws"
    settings = studio_server.workspace_settings(
        ws,
        **{
            "classifier.method": "head",
            "classifier.export_onnx": False,
            "classifier.min_segments": 10,
            "loop.every": EVERY,
            "loop.debounce_seconds": 2,
            "loop.method": "head",
        },
    )
    served = served_project(ws, settings, codebook, seed=31, prefixes=["r"])
    store, seg_ids, labels, (person,) = served.store, served.segment_ids, served.labels, served.people
    project_id = served.projects[person.email]
    task_of = served.tasks_of(project_id)
    first_round = [s for s in seg_ids if s.startswith(("ws-doc0", "ws-doc1"))]
    second_round = [s for s in seg_ids if s.startswith(("ws-doc2", "ws-doc3"))]

    running = start_loop(settings, codebook, port=0)
    try:
        http = studio_server.login(person.email, person.password)
        for seg in first_round:
            annotate(http, task_of[seg], labels[seg])
        first = _finished(_wait_for_retrains(ws, 1))[-1]
        assert first["labels"] == len(first_round)

        assert server.stop_server(studio_server.settings)  # Label Studio was running, and is stopped
        server.start_server(studio_server.settings)

        http = studio_server.login(person.email, person.password)
        reopened = first_round[0]  # its annotation trained the first retrain
        (deleted,) = _annotation_ids(http, task_of[reopened])
        assert http.delete(f"/api/annotations/{deleted}/").status_code == 204
        for seg in second_round:
            annotate(http, task_of[seg], labels[seg])
        state = _wait_for_retrains(ws, 2)
    finally:
        running.close()

    last = _finished(state)[-1]
    assert sum(h["annotations"] for h in state["history"]) >= len(first_round) + len(second_round) + 1
    assert last["labels"] == len(first_round) - 1 + len(second_round)  # the deleted annotation left out
    (kept,) = rows(store, "SELECT deleted FROM annotations WHERE annotation_id = ?", (deleted,))
    assert kept["deleted"] == 1  # the ledger keeps it, flagged

    current = current_version(store)
    tasks = [t.model_dump() for t in connect(settings).sdk.tasks.list(project=project_id, fields="all", page_size=1000)]
    assert sum(len(t["annotations"] or []) for t in tasks) == len(first_round) - 1 + len(second_round)
    open_tasks = [t for t in tasks if not t["annotations"]]
    assert task_of[reopened] in {t["id"] for t in open_tasks}
    for task in tasks:
        versions = Counter(p["model_version"] for p in task["predictions"] or [])
        assert all(n == 1 for n in versions.values()), (task["id"], versions)  # no duplicate prediction
    assert all(current in {p["model_version"] for p in t["predictions"] or []} for t in open_tasks), current
    store.close()
