"""Incremental pull without a Label Studio: a fake server stands behind the listing and the two exports, so
what each pull fetches, counts and lists can be checked exactly (tests/integration/test_pull_incremental.py
does the same against the real server)."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import pytest

from pipeline.config import load_codebook
from pipeline.ingest import ingest
from pipeline.store import Store
from pipeline.store.annotations import record_tasks
from pipeline.store.pulls import forget_pull_cursors, pull_cursor
from tests.conftest import FIXTURES
from tests.factory import SERVER, add_project, make_workspace
from tests.unit.test_pull_matching import AFTER, BEFORE

pull_module = importlib.import_module("pipeline.studio.pull")  # the module, not the function of that name
ANA = "ana@example.org"
BOOK = load_codebook(FIXTURES / "codebook_small.yaml")


class FakeServer:
    """One project's tasks; every change moves the task's `updated_at`, as Label Studio does."""

    def __init__(self) -> None:
        self.tasks: dict[int, dict[str, Any]] = {}
        self.clock = 0
        self.fetched: list[int] = []
        self.url = SERVER

    def put(self, task_id: int, segment_id: str, annotations: list[tuple[int, list[str]]] = ()) -> None:
        self.clock += 1
        self.tasks[task_id] = {
            "id": task_id,
            "data": {"segment_id": segment_id},
            "annotations": [_annotation(aid, codes, self.clock) for aid, codes in annotations],
            "updated_at": f"2026-01-01 10:00:{self.clock:02d}+00:00",
        }

    def list_tasks(self, studio, project_id: int, cursor=None, exported=None, bare=None) -> dict[int, str]:  # all
        return {tid: t["updated_at"] for tid, t in self.tasks.items()}

    def list_bare(self, studio, project_id: int) -> list[dict[str, Any]]:
        return [{"id": tid, "updated_at": t["updated_at"]} for tid, t in self.tasks.items() if not t["annotations"]]

    def export_all(self, studio, project_id: int) -> list[dict[str, Any]]:
        annotated = [tid for tid, t in self.tasks.items() if t["annotations"]]
        return self.export_tasks(studio, project_id, annotated)

    def export_tasks(self, studio, project_id: int, ids) -> list[dict[str, Any]]:
        self.fetched += sorted(ids)
        return [copy.deepcopy(self.tasks[i]) for i in sorted(ids) if i in self.tasks]


def _annotation(ann_id: int, codes: list[str], clock: int) -> dict[str, Any]:
    result = [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": codes}}]
    stamp = f"2026-01-01T10:00:{clock:02d}Z"
    return {"id": ann_id, "completed_by": {"email": ANA}, "result": result, "updated_at": stamp, "created_at": stamp}


@pytest.fixture
def server(monkeypatch) -> FakeServer:
    fake = FakeServer()
    monkeypatch.setattr(pull_module, "connect", lambda settings: fake)
    for name in ("list_tasks", "list_bare", "export_all", "export_tasks"):
        monkeypatch.setattr(pull_module, name, getattr(fake, name))
    return fake


def pull(store: Store, server: FakeServer, full: bool = False):
    server.fetched = []
    return pull_module.pull(store, None, BOOK, show_progress=False, full=full)  # type: ignore[arg-type]


def pushed(tmp_path, server: FakeServer, texts: list[str]) -> tuple[Store, list[str]]:
    store = make_workspace(tmp_path / "ws", BOOK, {"d": texts})
    add_project(store, 1, ANA, BOOK)
    segs = [s.id for s in store.segments()]
    with store.transaction():
        record_tasks(store, SERVER, 1, [(100 + i, seg, None) for i, seg in enumerate(segs)])
    for i, seg in enumerate(segs):
        server.put(100 + i, seg)
    return store, segs


def test_a_pull_fetches_only_the_tasks_touched_since_the_last_one(tmp_path, server) -> None:
    store, segs = pushed(tmp_path, server, ["one", "two", "three"])
    server.put(100, segs[0], [(7, ["carrot"])])
    server.put(101, segs[1], [(8, ["stick"])])
    first = pull(store, server)
    assert first.full and first.new == 2 and server.fetched == [100, 101]
    assert set(pull_cursor(store, SERVER, 1).tasks) == {100, 101, 102}

    nothing = pull(store, server)
    assert not nothing.full and server.fetched == [] and (nothing.changed, nothing.unchanged) == (0, 2)

    server.put(100, segs[0], [(7, ["carrot", "stick"])])  # an edit
    edit = pull(store, server)
    assert server.fetched == [100] and (edit.updated, edit.unchanged, edit.new) == (1, 1, 0)

    del server.tasks[101]  # deleted on the server, with its annotation
    server.put(103, segs[2])  # a second task holding segment 2
    both = pull(store, server)
    assert server.fetched == [103]
    assert [(t.task_id, t.segment_id, t.annotations) for t in both.deleted_tasks] == [(101, segs[1], 1)]
    assert both.deleted == 1 and both.unchanged == 1
    assert [(d.segment_id, d.task_ids) for d in both.duplicated_tasks] == [(segs[2], [102, 103])]

    full = pull(store, server, full=True)
    assert full.full and server.fetched == [100] and full.changed == 0 and full.deleted_tasks == []
    assert [(d.segment_id, d.task_ids) for d in full.duplicated_tasks] == [(segs[2], [102, 103])]


def test_a_full_pull_reads_the_segment_of_a_task_the_workspace_never_pushed(tmp_path, server) -> None:
    store, segs = pushed(tmp_path, server, ["one", "two"])
    server.put(200, segs[0])  # nobody annotated it: a plain export would leave it out
    report = pull(store, server)
    assert server.fetched == [200] and [(d.segment_id, d.task_ids) for d in report.duplicated_tasks] == [
        (segs[0], [100, 200])
    ]


def test_forgotten_cursors_make_the_next_pull_a_full_one(tmp_path, server) -> None:
    store, segs = pushed(tmp_path, server, ["one"])
    server.put(100, segs[0], [(7, ["carrot"])])
    pull(store, server)
    with store.transaction():
        assert forget_pull_cursors(store, SERVER) == 1
    again = pull(store, server)
    assert again.full and server.fetched == [100] and again.unchanged == 1


def test_unfetched_annotations_on_superseded_segments_are_still_listed(tmp_path, server) -> None:
    src = tmp_path / "int.txt"
    src.write_text(BEFORE, encoding="utf-8")
    store = Store(tmp_path / "ws")
    with store.transaction():
        store.record_codebook(BOOK)
    ingest(store, [src], show_progress=False)
    add_project(store, 1, ANA, BOOK)
    old = [s.id for s in store.segments()]
    with store.transaction():
        record_tasks(store, SERVER, 1, [(100 + i, seg, None) for i, seg in enumerate(old)])
    server.put(100, old[0])
    server.put(101, old[1], [(7, ["carrot"])])
    server.put(102, old[2], [(8, ["stick"])])
    pull(store, server)
    src.write_text(AFTER, encoding="utf-8")
    ingest(store, [src], replace=True, show_progress=False)
    new = [s.id for s in store.segments()]
    server.put(101, old[1], [(7, ["carrot", "stick"])])  # edited on the old task after the re-ingest
    report = pull(store, server)
    assert server.fetched == [101] and report.updated == 1
    listed = {(a.segment_id, a.carried_to, a.changed) for a in report.superseded}
    assert listed == {(old[1], new[1], True), (old[2], None, False)}
