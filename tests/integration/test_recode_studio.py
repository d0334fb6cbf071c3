"""`recode` against a real Label Studio: after a codebook edit only the segments whose predicted codes flip reach
the review project, whose labelling config has the edited codebook's codes."""

from __future__ import annotations

import uuid

import pytest

from pipeline.gold.recode import recode
from pipeline.labellers import LabelContext, registry
from pipeline.labellers.run import run_labeller
from pipeline.studio import add_annotators, connect, push
from tests import factory
from tests.unit.test_recode import TEXTS, _book

pytestmark = pytest.mark.integration


@pytest.fixture
def include():
    registry.register("include", "tests.unit.test_recode:IncludeLabeller")
    yield "include"
    registry.unregister("include")


def test_only_flipped_segments_go_to_review(studio_server, tmp_path, small_codebook, include):
    old = _book(small_codebook, ["arrest", "recall", "search"])
    new = _book(small_codebook, ["arrest", "recall"], extra_code=True)
    store = factory.make_workspace(tmp_path / "ws", old, TEXTS)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    run_labeller(registry.create(include, LabelContext(store, settings, old)), store, old, show_progress=False)
    studio = connect(settings)
    ana, rev = (p.email for p in add_annotators(studio, settings, [f"recode-{uuid.uuid4().hex[:6]}" for _ in range(2)]))
    first = push(
        store, settings, old, annotators=[ana], model_version=f"inc-{old.content_hash[:8]}", show_progress=False
    )
    assert first.imported == 4

    report = recode(store, settings, new, include, adjudicator=rev, show_progress=False)
    (project,) = report.pushed.projects
    assert project.annotator == rev and project.imported == 2
    tasks = studio.sdk.tasks.list(project=project.id, fields="all", page_size=100)
    by_segment = {t.data["segment_id"]: t for t in tasks}
    assert sorted(by_segment) == ["doc-1", "doc-3"]
    config = studio.sdk.projects.get(project.id).label_config
    assert 'value="weather"' in config  # the review project codes with the edited codebook
    assert store.codebook_hash == new.content_hash
    store.close()
