"""Admission against a real Label Studio: a code below the bar is not pre-selected in the task."""

from __future__ import annotations

import pytest

from pipeline.agreement.admission import measure_admission
from pipeline.studio import connect, push
from tests import factory
from tests.integration.conftest import add_model, make_workspace

pytestmark = pytest.mark.integration

TURNS = 44  # 22 human positives and 22 negatives per code: above admission.min_evidence (20)


def _predictions(studio, project_id: int) -> dict[str, tuple[list[list[str]], str]]:
    """segment_id -> (the choices of each v1 prediction on the task, the text under the choices)."""
    found = {}
    for task in studio.sdk.tasks.list(project=project_id, fields="all", page_size=1000):
        t = task.model_dump()
        ticks = [
            [c for r in p["result"] for c in r["value"]["choices"]]
            for p in t["predictions"]
            if p["model_version"] == "v1"
        ]
        found[t["data"]["segment_id"]] = (ticks, t["data"]["rationale"])
    return found


def test_a_code_below_admission_is_not_pre_selected_and_a_changed_bar_refreshes_the_tasks(
    studio_server, tmp_path, codebook
):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=TURNS, model_version=None)
    # the model agrees with the humans on carrot and ticks stick everywhere (kappa 0)
    add_model(store, "v1", codebook.content_hash, codes_for=lambda i: ["carrot", "stick"] if i % 2 else ["stick"])
    factory.add_gold(
        store, {s.id: ["carrot", "stick"] if i % 2 else [] for i, s in enumerate(store.segments())}, codebook
    )
    settings = studio_server.workspace_settings(tmp_path / "ws", **{"admission.enabled": True})
    table = measure_admission(store, settings, codebook, "v1")
    assert table.admitted == ["carrot"]

    report = push(store, settings, codebook, show_progress=False)
    assert report.admission["admitted"] == ["carrot"]
    assert store.last_runs(1)[0]["summary"]["admission"]["admitted"] == ["carrot"]
    studio = connect(settings)
    pid = report.projects[0].id
    tasks = _predictions(studio, pid)
    assert len(tasks) == TURNS
    for i, seg in enumerate(store.segments()):
        ticks, shown = tasks[seg.id]
        assert ticks == [["carrot"] if i % 2 else []]  # stick is never pre-selected
        assert "not ticked (below the admission bar, check yourself): stick (0.90)" in shown

    lenient = studio_server.workspace_settings(
        tmp_path / "ws", **{"admission.enabled": True, "admission.min_kappa": -1}
    )
    assert measure_admission(store, lenient, codebook, "v1").admitted == ["carrot", "stick"]
    again = push(store, lenient, codebook, show_progress=False)
    assert again.imported == 0 and again.projects[0].predictions_updated == TURNS
    for i, seg in enumerate(store.segments()):
        ticks, shown = _predictions(studio, pid)[seg.id]
        assert ticks == [["carrot", "stick"] if i % 2 else ["stick"]]  # the earlier pre-ticks are gone
        assert "admission bar" not in shown
