"""`push` orders each project's Data Manager tabs for the label stream (`studio.sampling`), against the real
Label Studio; a tab ordered by hand is kept and reported. The browser side: tests/e2e/test_label_stream_browser.py."""

from __future__ import annotations

import random

import pytest

from pipeline.studio import connect, push
from pipeline.studio.stream import BY_STREAM, ORDER_FIELD
from tests import factory
from tests.integration.conftest import make_workspace, rows

pytestmark = pytest.mark.integration


def _tabs(studio, project_id: int) -> dict[int, list[str]]:
    return {int(v.id): list((v.data or {}).get("ordering") or []) for v in studio.sdk.views.list(project=project_id)}


def test_push_orders_every_tab_by_the_stream_key_but_keeps_a_hand_ordered_one(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=3)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    studio = connect(settings)
    project = push(store, settings, codebook, show_progress=False).projects[0]
    (first,) = _tabs(studio, project.id).items()
    assert first[1] == BY_STREAM
    assert studio.sdk.projects.get(project.id).sampling == "Uncertainty sampling"

    mine = studio.sdk.views.create(project=project.id, data={"title": "mine", "ordering": ["-tasks:id"]})
    plain = studio.sdk.views.create(project=project.id, data={"title": "plain", "ordering": []})
    again = push(store, settings, codebook, show_progress=False).projects[0]
    tabs = _tabs(studio, project.id)
    assert tabs[int(mine.id)] == ["-tasks:id"] and again.tabs_kept == [int(mine.id)]
    assert tabs[int(plain.id)] == BY_STREAM

    sequential = studio_server.workspace_settings(tmp_path / "ws", **{"studio.sampling": "sequential"})
    push(store, sequential, codebook, show_progress=False)
    assert _tabs(studio, project.id)[first[0]] == BY_STREAM  # sequential: the key follows import order
    assert studio.sdk.projects.get(project.id).sampling == "Sequential sampling"


def _served(studio, project_id: int) -> list[str]:
    """The project's tasks in its first tab's order (the order "Label All Tasks" serves), as segment ids."""
    view = studio.sdk.views.list(project=project_id)[0]
    tasks = studio.sdk.tasks.list(project=project_id, view=int(view.id), fields="all", page_size=1000)
    return [t.data["segment_id"] for t in tasks]


def test_blind_and_audit_tasks_sit_throughout_the_default_stream_and_keep_up_with_a_new_model(
    studio_server, tmp_path, codebook
):
    """Issue 27: with the default sampling (uncertainty) blind and audit tasks appear in the first 20 of the stream,
    one in each stretch; each task records its stream and inclusion probability; a new model version re-orders the
    unannotated tasks, the random ones staying spread."""
    store = make_workspace(tmp_path / "ws", n_docs=4, turns=40, model_version=None)
    rng = random.Random(11)
    ids = [s.id for s in store.segments()]
    factory.add_scores(store, "v1", codebook, {s: {"carrot": rng.random(), "stick": 0.03} for s in ids})
    fractions = {"studio.blind_fraction": 0.05, "studio.audit_fraction": 0.05}
    settings = studio_server.workspace_settings(tmp_path / "ws", **fractions)
    studio = connect(settings)
    project = push(store, settings, codebook, show_progress=False).projects[0]
    streams = {r["segment_id"]: dict(r) for r in rows(store, "SELECT * FROM tasks WHERE project_id = ?", (project.id,))}
    assert {r["stream"] for r in streams.values()} == {"blind", "audit", "uncertainty"}
    assert {(r["stream"], r["inclusion_probability"]) for r in streams.values() if r["stream"] == "blind"} == {
        ("blind", 0.05)
    }

    def random_positions() -> list[int]:
        served = _served(studio, project.id)
        assert served == sorted(ids, key=lambda s: streams[s]["stream_order"])  # the recorded key decides
        return [n for n, s in enumerate(served) if streams[s]["stream"] in ("blind", "audit")]

    first = random_positions()
    assert first[0] < 20 and len(first) >= 4
    stretch = len(ids) / len(first)
    assert all(j * stretch - 1 <= p <= (j + 1) * stretch + 1 for j, p in enumerate(first))

    factory.add_scores(store, "v2", codebook, {s: {"carrot": rng.random(), "stick": 0.03} for s in ids})
    again = push(store, settings, codebook, show_progress=False).projects[0]
    assert again.reordered > 0
    streams = {r["segment_id"]: dict(r) for r in rows(store, "SELECT * FROM tasks WHERE project_id = ?", (project.id,))}
    assert random_positions() == first  # the random streams keep their places; the model's tasks move
    task = studio.sdk.tasks.get(streams[ids[0]]["task_id"])
    assert task.data[ORDER_FIELD] == streams[ids[0]]["stream_order"]
