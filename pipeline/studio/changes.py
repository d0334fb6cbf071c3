"""What changed in a Label Studio project since the last pull: the cheap listing, the diff, the fetch.

Every pull first lists the project's tasks with two fields each (`id`, `updated_at`), which costs little
even for 10k tasks. Label Studio moves a task's `updated_at` whenever an annotation of it is created,
edited or deleted (also when its predictions change). Against the cursor of the last pull
(`pipeline.store.pulls`) that listing says which tasks are new or touched, and which are gone; only the
touched and new ones are exported, with the export API's `ids[]` filter (the SDK's `ids` argument sends a
parameter name the server does not read). A task holding a segment another task of the project also
holds is a duplicate (imported twice, or copied in the Data Manager).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from label_studio_sdk.core.api_error import ApiError

from pipeline.store.pulls import PullCursor
from pipeline.studio.client import Studio

LIST_PAGE = 5000  # tasks per page of the listing (two fields each)
IDS_PER_EXPORT = 200  # task ids per export request (they travel in the URL)


@dataclass
class DeletedTask:
    project_id: int
    task_id: int
    segment_id: str | None
    annotations: int = 0  # its annotations, marked deleted in the workspace by this pull


@dataclass
class DuplicatedTask:
    project_id: int
    segment_id: str
    task_ids: list[int] = field(default_factory=list)


@dataclass
class ProjectChanges:
    """One project's fetch: the exported tasks and what the listing says about the rest."""

    listing: dict[int, str]  # task id -> updated_at, every task on the server now
    tasks: list[dict[str, Any]]  # the exported tasks (all annotated ones on a full pull, else the touched ones)
    scope: set[int] | None  # the task ids whose stored annotations the export replaces (None: the whole project)
    deleted: list[int]  # task ids known at the last pull (or from the ledger) and gone now
    cursor: PullCursor | None = None  # the project's cursor as the last pull left it

    def last_segment(self, task_id: int) -> str | None:
        """The segment the task held at the last pull, if the cursor knows it."""
        return self.cursor.tasks[task_id][1] if self.cursor and task_id in self.cursor.tasks else None


def _stamp(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def list_tasks(studio: Studio, project_id: int) -> dict[int, str] | None:
    """{task id: updated_at} of every task of the project; None when the project is gone."""
    try:
        tasks: list[Any] = studio.call(
            lambda: list(
                studio.sdk.tasks.list(
                    project=project_id, fields="task_only", include="id,updated_at", page_size=LIST_PAGE
                )
            )
        )
    except ApiError as exc:
        if exc.status_code == 404:
            return None
        raise
    return {int(t.id): _stamp(t.updated_at) for t in tasks if t.id is not None}


def export_all(studio: Studio, project_id: int) -> list[dict[str, Any]] | None:
    """Every annotated task of a project with its annotations; None when the project is gone."""
    return _download(studio, project_id, download_all_tasks=False)


def export_tasks(studio: Studio, project_id: int, task_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The given tasks, annotated or not, with their annotations (deleted ones are simply absent)."""
    ids = sorted(task_ids)
    tasks: list[dict[str, Any]] = []
    for start in range(0, len(ids), IDS_PER_EXPORT):
        chunk = [str(i) for i in ids[start : start + IDS_PER_EXPORT]]
        tasks += _download(studio, project_id, download_all_tasks=True, ids=chunk) or []
    return tasks


def _download(studio: Studio, project_id: int, download_all_tasks: bool, ids: list[str] | None = None):
    options = {"additional_query_parameters": {"ids[]": ids}} if ids else None
    try:
        raw = studio.call(
            lambda: b"".join(
                studio.sdk.projects.exports.download_sync(
                    project_id,
                    export_type="JSON",
                    download_all_tasks=download_all_tasks,
                    request_options=options,  # type: ignore[arg-type]
                )
            )
        )
    except ApiError as exc:
        if exc.status_code == 404:
            return None
        raise
    return json.loads(raw)


def touched(listing: dict[int, str], cursor: PullCursor) -> set[int]:
    """Tasks new since the cursor, or whose `updated_at` moved."""
    return {tid for tid, stamp in listing.items() if tid not in cursor.tasks or cursor.tasks[tid][0] != stamp}


def segment_of(task: dict[str, Any]) -> str | None:
    return (task.get("data") or {}).get("segment_id")


def duplicates(project_id: int, segments: dict[int, str | None]) -> list[DuplicatedTask]:
    """Segments held by more than one task of the project, from {task id: segment id}."""
    holders: dict[str, list[int]] = {}
    for tid, seg in sorted(segments.items()):
        if seg:
            holders.setdefault(seg, []).append(tid)
    return [DuplicatedTask(project_id, seg, tids) for seg, tids in holders.items() if len(tids) > 1]
