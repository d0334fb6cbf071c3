"""Project calibration against a real Label Studio: after 30 corrections the pre-labels of the remaining tasks
change, and nobody's annotations are touched."""

from __future__ import annotations

import pytest

from pipeline.flows import pull_and_calibrate
from pipeline.store.annotations import task_ledger
from pipeline.studio import connect, push
from tests import factory
from tests.integration.conftest import make_workspace

pytestmark = pytest.mark.integration

TURNS, CORRECTED = 44, 30


def _scores(i: int) -> dict[str, float]:
    """carrot scores 0.4 on odd turns, under the model's 0.5, so it is never pre-ticked; stick 0.9 everywhere."""
    return {"carrot": 0.4 if i % 2 else 0.1, "stick": 0.9}


def _tasks(studio, project_id: int) -> dict[str, dict]:
    """segment_id -> the task as Label Studio shows it (predictions and annotations)."""
    tasks = studio.sdk.tasks.list(project=project_id, fields="all", page_size=1000)
    return {t.model_dump()["data"]["segment_id"]: t.model_dump() for t in tasks}


def _ticked(task: dict) -> list[list[str]]:
    return [sorted(c for r in p["result"] for c in r["value"]["choices"]) for p in task["predictions"]]


def _annotations(task: dict) -> list[tuple[int, list]]:
    return sorted((a["id"], a["result"]) for a in task["annotations"])


def test_thirty_corrections_change_the_pre_labels_of_the_remaining_tasks(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=TURNS, model_version=None)
    segments = [s.id for s in store.segments()]
    factory.add_scores(store, "v1", codebook, {s: _scores(i) for i, s in enumerate(segments)})
    settings = studio_server.workspace_settings(tmp_path / "ws")
    report = push(store, settings, codebook, show_progress=False)
    pid = report.projects[0].id
    studio = connect(settings)
    before = _tasks(studio, pid)
    assert all(_ticked(before[s]) == [["stick"]] for s in segments)

    # the annotator keeps stick and adds carrot on every odd turn: 15 of the 30 contradict carrot's threshold
    task_of = {r["segment_id"]: r["task_id"] for r in task_ledger(store, studio.url, pid)}
    for i, seg in enumerate(segments[:CORRECTED]):
        choices = ["carrot", "stick"] if i % 2 else ["stick"]
        result = [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": choices}}]
        studio.sdk.annotations.create(task_of[seg], result=result, lead_time=2.0)
    annotated = {s: _annotations(t) for s, t in _tasks(studio, pid).items() if s in segments[:CORRECTED]}

    pulled = pull_and_calibrate(store, settings, codebook, show_progress=False)
    assert pulled.pull.new == CORRECTED
    calibration = pulled.calibration
    assert calibration.status == "calibrated" and calibration.labels == CORRECTED
    carrot = next(c for c in calibration.codes if c.code == "carrot")
    assert carrot.source == "project" and carrot.after <= 0.4 < carrot.before
    remaining = segments[CORRECTED:]
    assert calibration.tasks_updated == len(remaining)

    after = _tasks(studio, pid)
    for i, seg in enumerate(remaining, start=CORRECTED):
        assert _ticked(after[seg]) == [["carrot", "stick"] if i % 2 else ["stick"]]  # one prediction, re-decided
    for seg, kept in annotated.items():
        assert _annotations(after[seg]) == kept  # nobody's annotations were touched
        assert _ticked(after[seg]) == [["stick"]]  # nor the pre-labels they saw

    again = pull_and_calibrate(store, settings, codebook, show_progress=False)  # nothing new: nothing changes
    assert again.calibration.status == "unchanged" and again.calibration.tasks_updated == 0
    assert {s: _ticked(t) for s, t in _tasks(studio, pid).items()} == {s: _ticked(t) for s, t in after.items()}
