"""The cheap listing of an incremental pull: with a cursor only the tasks updated since it are listed, and the
project's task count decides whether the whole project must be listed (a task was deleted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.store.pulls import PullCursor
from pipeline.studio import changes

A, B = "2026-01-01T10:00:01+00:00", "2026-01-01T10:00:30+00:00"  # A is outside the margin before B
LATER = "2026-01-01T10:05:00.000001Z"
CURSOR = PullCursor({1: (A, "s1"), 2: (B, "s2")}, "2026-01-01T10:00:03")


class FakeLabelStudio:
    """Answers the two GETs of a listing: tasks (filtered by `updated_at` or not) and the project."""

    def __init__(self, tasks: dict[int, str]) -> None:
        self.tasks = tasks  # id -> updated_at as the server spells it
        self.filters: list[str | None] = []  # the `updated_at` bound of each task listing (None: unfiltered)
        self.listed = 0  # tasks sent (a count-only request sends one)
        self.annotated: set[int] = set()

    def get(self, studio, path: str, params: dict[str, Any]) -> Any:
        if path.startswith("api/projects/"):
            return {"task_number": len(self.tasks)}
        since = None
        if "query" in params:
            (rule,) = json.loads(params["query"])["filters"]["items"]
            if rule["filter"] == "filter:tasks:total_annotations":
                self.filters.append("unannotated")
                bare = [
                    {"id": tid, "updated_at": stamp} for tid, stamp in self.tasks.items() if tid not in self.annotated
                ]
                return {"tasks": bare, "total": len(bare)}
            since = rule["value"]
        self.filters.append(since)
        chosen = [
            {"id": tid, "updated_at": stamp}
            for tid, stamp in self.tasks.items()
            if since is None or _when(stamp) > _when(since)
        ]
        self.listed += min(len(chosen), params["page_size"])
        return {"tasks": chosen[: params["page_size"]], "total": len(chosen)}


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).astimezone(UTC)


@pytest.fixture
def server(monkeypatch) -> FakeLabelStudio:
    fake = FakeLabelStudio({1: A.replace("+00:00", "Z"), 2: B.replace("+00:00", "Z")})
    monkeypatch.setattr(changes, "_get_json", fake.get)
    return fake


def test_nothing_changed_lists_no_task_and_keeps_the_cursor_stamps(server) -> None:
    assert changes.list_tasks(None, 1, CURSOR) == {1: A, 2: B}  # type: ignore[arg-type]
    strict, margin = server.filters  # after the newest stamp; the margin before it, counted only
    assert strict is not None and strict.endswith("Z") and _when(strict) == _when(B)
    assert margin is not None and _when(margin) < _when(B) and server.listed == 1


def test_a_new_and_an_edited_task_come_from_the_filtered_listing(server) -> None:
    server.tasks[2] = LATER
    server.tasks[3] = LATER
    listing = changes.list_tasks(None, 1, CURSOR)  # type: ignore[arg-type]
    assert listing == {1: A, 2: "2026-01-01T10:05:00.000001+00:00", 3: "2026-01-01T10:05:00.000001+00:00"}
    assert len(server.filters) == 2


def test_a_late_commit_stamped_before_the_newest_is_found_by_the_margin_count(server) -> None:
    server.tasks[1] = "2026-01-01T10:00:28Z"  # saved while the last listing ran, committed after it
    listing = changes.list_tasks(None, 1, CURSOR)  # type: ignore[arg-type]
    assert listing == {1: "2026-01-01T10:00:28+00:00", 2: B}
    assert len(server.filters) == 3 and server.filters[1] == server.filters[2]  # the margin, listed


def test_a_deleted_task_makes_the_pull_list_the_whole_project(server) -> None:
    del server.tasks[1]
    server.tasks[3] = LATER  # deleted one, created one: the count alone would not tell
    listing = changes.list_tasks(None, 1, CURSOR)  # type: ignore[arg-type]
    assert listing == {2: B, 3: "2026-01-01T10:05:00.000001+00:00"}
    assert server.filters[-1] is None  # the whole listing followed


def test_without_a_cursor_the_whole_project_is_listed(server) -> None:
    assert changes.list_tasks(None, 1) == {1: A, 2: B}  # type: ignore[arg-type]
    assert server.filters == [None]


def test_after_a_whole_export_only_the_unannotated_tasks_are_listed(server) -> None:
    server.annotated = {1}
    bare = changes.list_bare(None, 1)  # type: ignore[arg-type]  # listed before the export
    exported = [{"id": 1, "updated_at": server.tasks[1], "annotations": [{"id": 9}]}]
    assert changes.list_tasks(None, 1, exported=exported, bare=bare) == {1: A, 2: B}  # type: ignore[arg-type]
    assert server.filters == ["unannotated"]


def test_a_task_annotated_after_the_export_keeps_its_older_stamp_so_the_next_pull_fetches_it(server) -> None:
    bare = changes.list_bare(None, 1)  # type: ignore[arg-type]  # tasks 1 and 2, nobody's annotated
    exported = [{"id": 1, "updated_at": server.tasks[1], "annotations": [{"id": 9}]}]
    server.tasks[2] = LATER  # annotated after the export: the server's stamp moves on
    assert changes.list_tasks(None, 1, exported=exported, bare=bare) == {1: A, 2: B}  # type: ignore[arg-type]
    assert server.filters == ["unannotated"]


def test_a_task_created_during_a_whole_pull_gets_no_stamp_so_the_next_pull_fetches_it(server) -> None:
    bare = changes.list_bare(None, 1)  # type: ignore[arg-type]
    exported = [{"id": 1, "updated_at": server.tasks[1], "annotations": [{"id": 9}]}]
    server.tasks[3] = LATER  # pushed (and maybe annotated) while the pull ran
    listing = changes.list_tasks(None, 1, exported=exported, bare=bare)  # type: ignore[arg-type]
    assert listing == {1: A, 2: B, 3: ""}
    assert server.filters == ["unannotated", None]


def test_merge_changes_needs_the_server_count_to_match() -> None:
    assert changes.merge_changes(CURSOR, {}, 2) == {1: A, 2: B}
    assert changes.merge_changes(CURSOR, {3: LATER}, 3) == {1: A, 2: B, 3: LATER}
    assert changes.merge_changes(CURSOR, {3: LATER}, 2) is None
    assert changes.merge_changes(CURSOR, {}, None) is None
