"""The blind subset against a real Label Studio: its tasks never carry predictions or model text, in every
annotator's project, while the other tasks do; pre-labels an earlier push left on them go unless someone
already annotated the task, which the push report counts."""

from __future__ import annotations

import uuid

import pytest

from pipeline.store.annotations import task_ledger
from pipeline.store.blind import blind_subset
from pipeline.studio import add_annotators, connect, push
from tests.integration.conftest import add_model, make_workspace

pytestmark = pytest.mark.integration

TURNS = 30
FRACTION = 0.4


def _tasks(studio, project_id: int) -> dict[str, dict]:
    """segment_id -> the task as the API returns it (with its predictions)."""
    found = {}
    for task in studio.sdk.tasks.list(project=project_id, fields="all", page_size=1000):
        t = task.model_dump()
        found[t["data"]["segment_id"]] = t
    return found


def _check_project(studio, project_id: int, segments: list[str], blind: set[str], exposed: set[str]) -> None:
    tasks = _tasks(studio, project_id)
    assert sorted(tasks) == sorted(segments)
    for seg, task in tasks.items():
        if seg in blind and seg not in exposed:
            assert task["predictions"] == [], seg  # nothing to pre-select
            assert task["data"]["rationale"] == "" and task["data"]["prediction_version"] == ""
        else:
            assert [r["value"]["choices"] for p in task["predictions"] for r in p["result"]] == [["carrot"]]
            assert "a reward is offered" in task["data"]["rationale"]


def test_blind_tasks_never_carry_predictions(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=TURNS, model_version=None)
    add_model(store, "v1", codebook.content_hash, codes_for=lambda i: ["carrot"], rationale="a reward is offered")
    plain = studio_server.workspace_settings(tmp_path / "ws")
    studio = connect(plain)
    people = add_annotators(studio, plain, [f"blind-{uuid.uuid4().hex[:6]}" for _ in range(3)])
    ana, bo, cy = (p.email for p in people)
    segments = [s.id for s in store.segments()]

    # pushed before the subset existed: every task is pre-labelled; ana then codes one future blind segment
    first = push(store, plain, codebook, annotators=[ana, bo], show_progress=False)
    projects = {p.annotator: p.id for p in first.projects}
    blind = set(blind_subset(store, FRACTION).pick(segments))
    assert 0 < len(blind) < TURNS
    coded = sorted(blind)[0]
    task_id = next(r["task_id"] for r in task_ledger(store, studio.url, projects[ana]) if r["segment_id"] == coded)
    choice = [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": ["carrot"]}}]
    studio.sdk.annotations.create(task_id, result=choice, lead_time=2.0)

    settings = studio_server.workspace_settings(tmp_path / "ws", **{"studio.blind_fraction": FRACTION})
    report = push(store, settings, codebook, annotators=[ana, bo], show_progress=False)
    assert report.blind_fraction == FRACTION and report.blind_segments == len(blind)
    by_who = {p.annotator: p for p in report.projects}
    assert (by_who[ana].blind_stripped, by_who[ana].blind_exposed) == (len(blind) - 1, 1)
    assert (by_who[bo].blind_stripped, by_who[bo].blind_exposed) == (len(blind), 0)
    _check_project(studio, projects[ana], segments, blind, exposed={coded})
    _check_project(studio, projects[bo], segments, blind, exposed=set())

    # a later push that names no fraction keeps the subset; a new annotator's project is blind from the start
    again = push(store, plain, codebook, annotators=[ana, bo, cy], show_progress=False)
    assert again.blind_fraction == FRACTION
    by_who = {p.annotator: p for p in again.projects}
    assert by_who[bo].predictions_updated == 0 and by_who[bo].blind_stripped == 0
    assert by_who[ana].blind_exposed == 1  # still said on every push
    assert by_who[cy].imported == TURNS and by_who[cy].blind == len(blind)
    _check_project(studio, by_who[cy].id, segments, blind, exposed=set())
    _check_project(studio, projects[bo], segments, blind, exposed=set())
