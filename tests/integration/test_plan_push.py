"""`plan --push` against a real Label Studio: only the chosen segments reach the second coder's project."""

from __future__ import annotations

import uuid

import pytest

from pipeline.agreement.planner import Target, reliability_plan
from pipeline.flows import push_reliability_sample
from pipeline.studio import add_annotators, connect, push
from tests.integration.conftest import add_model, make_workspace

pytestmark = pytest.mark.integration


def _segments_in(studio, project_id: int) -> list[str]:
    tasks = studio.sdk.tasks.list(project=project_id, fields="task_only", page_size=1000)
    return sorted(t.data["segment_id"] for t in tasks)


def test_only_the_chosen_segments_reach_the_second_coder(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=2, turns=20, model_version=None)
    add_model(store, "v1", codebook.content_hash, codes_for=lambda i: ["stick"] if i % 10 == 0 else ["carrot"])
    settings = studio_server.workspace_settings(tmp_path / "ws")
    studio = connect(settings)
    ana, bo = (p.email for p in add_annotators(studio, settings, [f"plan-{uuid.uuid4().hex[:6]}" for _ in range(2)]))
    first = push(store, settings, codebook, annotators=[ana], show_progress=False)  # the first coder codes all
    assert first.imported == 40

    plan = reliability_plan(store, codebook, Target(), min_share=0.3, coder=bo, size=8)
    chosen = plan.selection.segment_ids
    assert len(chosen) == 8 and plan.selection.oversampled["stick"] >= 3  # stick segments come first
    report = push_reliability_sample(store, settings, codebook, plan, show_progress=False)
    (project,) = report.projects
    assert project.annotator == bo and project.imported == 8
    assert _segments_in(studio, project.id) == sorted(chosen)
    assert len(_segments_in(studio, first.projects[0].id)) == 40  # the first coder's project is untouched

    more = reliability_plan(store, codebook, Target(), min_share=0.3, coder=bo, size=5)
    assert not set(more.selection.segment_ids) & set(chosen)  # what bo has already is not chosen again
    push_reliability_sample(store, settings, codebook, more, show_progress=False)
    assert _segments_in(studio, project.id) == sorted(chosen + more.selection.segment_ids)
