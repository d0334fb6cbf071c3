"""`culturecode serve` against a real Label Studio: the server connects itself to the projects (ML backend and
webhook with the shared secret), two annotators submit annotations through the API, Label Studio's webhooks
count them, a retrain runs in the background (head method, tiny data), and the unannotated tasks get the new
model's predictions. A task Label Studio has no prediction for is answered by `/predict`."""

from __future__ import annotations

import pytest

from pipeline.classifier import current_version
from pipeline.loop.backend import SECRET_HEADER
from pipeline.loop.service import start_loop
from pipeline.studio import connect
from tests.integration.served import annotate, served_project, wait_for_loop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# the labeling config's other fields, as a task made outside culturecode (no segment_id) would carry them
OUTSIDE_TASK = {"speaker": "PC", "before": "(start of transcript)", "after": "(end of transcript)", "rationale": ""}


def _versions_on_server(settings, project_id: int) -> dict[str, list[str]]:
    tasks = [t.model_dump() for t in connect(settings).sdk.tasks.list(project=project_id, fields="all", page_size=1000)]
    return {
        t["data"]["segment_id"]: sorted(p["model_version"] for p in (t["predictions"] or []))
        for t in tasks
        if "segment_id" in (t["data"] or {})
    }


def test_served_model_retrains_from_annotations_and_refreshes_predictions(studio_server, tmp_path, codebook):
    ws = tmp_path / "ws"
    settings = studio_server.workspace_settings(
        ws,
        **{
            "classifier.method": "head",
            "classifier.export_onnx": False,
            "classifier.min_segments": 10,
            "loop.every": 4,
            "loop.debounce_seconds": 2,
            "loop.method": "head",
        },
    )
    served = served_project(ws, settings, codebook, seed=17, prefixes=["a", "b"])
    store, seg_ids, labels, first = served.store, served.segment_ids, served.labels, served.first_model
    people, projects = served.people, served.projects

    running = start_loop(settings, codebook, port=0)
    try:
        assert {c.project_id for c in running.connections} == set(projects.values())
        sdk = connect(settings).sdk
        for project_id in projects.values():
            (hook,) = [h for h in sdk.webhooks.list(project=str(project_id)) if h.url == f"{running.url}/webhook"]
            assert SECRET_HEADER in (hook.headers or {})
            assert [b.url for b in sdk.ml.list(project=project_id)] == [running.url]

        unannotated = [s for s in seg_ids if s.startswith("ws-doc5")]
        for person in people:
            http = studio_server.login(person.email, person.password)
            task_of = served.tasks_of(projects[person.email])
            for seg in (s for s in seg_ids if s not in unannotated):
                annotate(http, task_of[seg], labels[seg])

        state = wait_for_loop(ws, every=4)
        done = [h for h in state["history"] if not h.get("error")]
        assert done, state["history"]
        assert sum(h["annotations"] for h in state["history"]) >= 4  # Label Studio's webhooks were counted
        assert any(h["promoted"] for h in done), done  # the swapped first model is beaten
        new = current_version(store)
        assert new != first and new == done[-1]["current_model"]
        on_server = _versions_on_server(settings, projects[people[0].email])
        assert all(new in on_server[s] for s in unannotated)

        # a task Label Studio holds no prediction for: opening it asks the model server's /predict
        imported = sdk.projects.import_tasks(
            projects[people[0].email],
            request=[{"data": {**OUTSIDE_TASK, "text": "we arrested him on the estate"}}],
            return_task_ids=True,
        )
        (made,) = imported.task_ids or []
        task = studio_server.login(people[0].email, people[0].password).get(f"/api/tasks/{made}").json()
        assert [p["model_version"] for p in task["predictions"]] == [new], task
    finally:
        running.close()
        store.close()
