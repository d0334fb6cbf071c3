"""`push` orders each project's Data Manager tabs for the label stream (`studio.sampling`), against the real
Label Studio; a tab ordered by hand is kept and reported. The browser side: tests/e2e/test_label_stream_browser.py."""

from __future__ import annotations

import pytest

from pipeline.studio import connect, push
from pipeline.studio.stream import BY_UNCERTAINTY
from tests.integration.conftest import make_workspace

pytestmark = pytest.mark.integration


def _tabs(studio, project_id: int) -> dict[int, list[str]]:
    return {int(v.id): list((v.data or {}).get("ordering") or []) for v in studio.sdk.views.list(project=project_id)}


def test_push_orders_every_tab_by_uncertainty_but_keeps_a_hand_ordered_one(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=3)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    studio = connect(settings)
    project = push(store, settings, codebook, show_progress=False).projects[0]
    (first,) = _tabs(studio, project.id).items()
    assert first[1] == BY_UNCERTAINTY
    assert studio.sdk.projects.get(project.id).sampling == "Uncertainty sampling"

    mine = studio.sdk.views.create(project=project.id, data={"title": "mine", "ordering": ["-tasks:id"]})
    plain = studio.sdk.views.create(project=project.id, data={"title": "plain", "ordering": []})
    again = push(store, settings, codebook, show_progress=False).projects[0]
    tabs = _tabs(studio, project.id)
    assert tabs[int(mine.id)] == ["-tasks:id"] and again.tabs_kept == [int(mine.id)]
    assert tabs[int(plain.id)] == BY_UNCERTAINTY

    sequential = studio_server.workspace_settings(tmp_path / "ws", **{"studio.sampling": "sequential"})
    push(store, sequential, codebook, show_progress=False)
    assert _tabs(studio, project.id)[first[0]] == ["tasks:id"]
    assert studio.sdk.projects.get(project.id).sampling == "Sequential sampling"
