"""The pull side without a Label Studio: matching an export to the workspace's segments, annotations
on superseded segments (issue 12, defect 6), and a changed codebook (defect 9)."""

from __future__ import annotations

import json

import pytest

from pipeline.config import load_codebook
from pipeline.errors import CultureCodeError
from pipeline.ingest import ingest
from pipeline.store import Store
from pipeline.store.annotations import live_annotations, projects, record_tasks
from pipeline.studio.pull import PullReport, check_codebook, match_annotations, record_project
from tests.conftest import FIXTURES
from tests.factory import SERVER, add_project

ANA = "ana@example.org"
BEFORE = "R: How did the visit go?\nPC Dawes: I think the sergeant was right about that.\nR: And the hostel?\n"
AFTER = "R: How did the visit go?\nPC Dawes: I think the sergeant was wrong about that.\nR: Where does he sleep?\n"


@pytest.fixture
def book():
    return load_codebook(FIXTURES / "codebook_small.yaml")


def _annotation(ann_id: int, codes: list[str], updated: str = "2026-01-01T10:00:00Z") -> dict:
    result = [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": codes}}]
    return {"id": ann_id, "completed_by": 1, "result": result, "updated_at": updated, "created_at": updated}


def _export(segs, annotations: dict[int, list[dict]]) -> list[dict]:
    """A Label Studio JSON export: task 100+i holds segment i."""
    return [
        {"id": 100 + i, "data": {"segment_id": seg.id}, "annotations": annotations.get(i, [])}
        for i, seg in enumerate(segs)
    ]


def _pull(store, book, tasks) -> PullReport:
    (project,) = projects(store, SERVER)
    report = PullReport(SERVER)
    matched = match_annotations(store, SERVER, project, tasks, book, lambda who: ANA)
    with store.transaction():
        record_project(store, report, SERVER, project["id"], matched)
    return report


@pytest.fixture
def pushed(tmp_path, book):
    """BEFORE ingested and pushed (tasks 100-102), its annotations pulled once, then edited to AFTER."""
    src = tmp_path / "int.txt"
    src.write_text(BEFORE, encoding="utf-8")
    store = Store(tmp_path / "ws")
    ingest(store, [src], show_progress=False)
    old = store.segments()
    add_project(store, 1, ANA, book)
    with store.transaction():
        record_tasks(store, SERVER, 1, [(100 + i, s.id, None) for i, s in enumerate(old)])
    first = _pull(store, book, _export(old, {1: [_annotation(7, ["carrot"])], 2: [_annotation(8, ["stick"])]}))
    assert first.new == 2 and first.superseded == []
    src.write_text(AFTER, encoding="utf-8")
    ingest(store, [src], replace=True, show_progress=False)
    return store, old


def test_annotations_on_superseded_segments_are_stored_and_listed(pushed, book):
    store, old = pushed
    new = store.segments()
    tasks = _export(
        old,
        {
            1: [_annotation(7, ["carrot", "stick"], "2026-02-01T10:00:00Z")],  # edited after the re-ingest
            2: [_annotation(8, ["stick"]), _annotation(9, ["carrot"])],  # one old, one new
        },
    )
    report = _pull(store, book, tasks)
    assert (report.new, report.updated, report.unchanged) == (1, 1, 1)
    listed = {(a.annotation_id, a.segment_id, a.carried_to, a.changed) for a in report.superseded}
    assert listed == {(7, old[1].id, new[1].id, True), (8, old[2].id, None, False), (9, old[2].id, None, True)}
    # the edit follows the annotation's copy on the edited turn, where it counts
    ratings = {a.segment_id: a.codes for a in live_annotations(store)}
    assert ratings == {new[1].id: ["carrot", "stick"]}
    again = _pull(store, book, tasks)
    assert again.changed == 0 and len(again.superseded) == 3 and not any(a.changed for a in again.superseded)


def test_deleting_an_annotation_on_the_server_deletes_its_copy(pushed, book):
    store, old = pushed
    report = _pull(store, book, _export(old, {2: [_annotation(8, ["stick"])]}))
    assert report.deleted == 1
    assert live_annotations(store) == []


def test_annotations_on_tasks_of_unknown_segments_are_listed_not_dropped_silently(pushed, book):
    store, old = pushed
    tasks = _export(old, {1: [_annotation(7, ["carrot"])], 2: [_annotation(8, ["stick"])]})
    tasks.append({"id": 555, "data": {"segment_id": "no-such-segment"}, "annotations": [_annotation(50, ["carrot"])]})
    report = _pull(store, book, tasks)
    (unknown,) = report.unknown_segment
    assert (unknown.annotation_id, unknown.task_id, unknown.segment_id) == (50, 555, "no-such-segment")
    assert json.loads(json.dumps(report.as_dict()))["unknown_segment"][0]["annotation_id"] == 50


def test_pull_refuses_a_codebook_the_projects_were_not_set_up_with(pushed, book):
    store, _ = pushed
    grown = book.model_copy(
        update={"codes": [*book.codes, book.codes[0].model_copy(update={"id": "referral", "name": "Referral"})]}
    )
    assert grown.content_hash != book.content_hash
    with pytest.raises(CultureCodeError, match="set up with codebook .*--codebook.*--update-config"):
        check_codebook(store, projects(store, SERVER), grown)
    assert check_codebook(store, projects(store, SERVER), book) == []
    # the projects moved to this codebook (push --update-config); the workspace began with another
    with store.transaction():
        store.set_meta("codebook_hash", "0ld")
    (warning,) = check_codebook(store, projects(store, SERVER), book)
    assert "first labelled with codebook 0ld" in warning
