"""What changed in a Label Studio project since the last pull: the cheap listing, the diff, the fetch.

Every pull first lists the project's tasks with two fields each (`id`, `updated_at`). Label Studio moves a
task's `updated_at` whenever an annotation of it is created, edited or deleted (also when its predictions
change). Against the cursor of the last pull (`pipeline.store.pulls`) that listing says which tasks are new
or touched, and which are gone; only the touched and new ones are exported, with the export API's `ids[]`
filter (the SDK's `ids` argument sends a parameter name the server does not read). A task holding a segment
another task of the project also holds is a duplicate (imported twice, or copied in the Data Manager).

Label Studio spends about 1 ms per task on a listing, so with a cursor only the tasks updated after its
newest stamp are listed (a Data Manager filter on `updated_at`); the tasks of a short margin before it are
counted, and listed only when the count differs from the cursor's (an annotation saved while the last
listing ran can carry an earlier stamp than the newest it saw). The project's task count says whether any
task was deleted; only then is the project listed whole. A whole export (first or `--full` pull) carries
its tasks' stamps, so only the tasks nobody annotated are listed besides it, under the same count check.
Listings are read as plain JSON: the SDK's typed models cost more than the server's answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from label_studio_sdk.core.api_error import ApiError

from pipeline.store.pulls import PullCursor
from pipeline.studio.client import Studio

LIST_PAGE = 5000  # tasks per page of the listing (two fields each)
IDS_PER_EXPORT = 200  # task ids per export request (they travel in the URL)
# the tasks updated this long before the cursor's newest stamp are counted on every pull: an annotation saved
# while the last listing ran may carry an earlier stamp than that listing's newest
CHANGE_MARGIN = timedelta(seconds=5)


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
    """One spelling for a task's `updated_at` (the SDK's datetime, or the JSON's string)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.isoformat() if isinstance(value, datetime) else str(value)


def list_tasks(
    studio: Studio,
    project_id: int,
    cursor: PullCursor | None = None,
    exported: list[dict[str, Any]] | None = None,
    bare: list[dict[str, Any]] | None = None,
) -> dict[int, str] | None:
    """{task id: updated_at} of every task of the project; None when the project is gone. With the last pull's
    `cursor`, only the tasks updated since are listed; with the project's `exported` annotated tasks and the
    `bare` ones (`list_bare`, listed BEFORE the export), nothing more; either when the project's task count
    confirms the result, else the whole project."""
    listing = None
    if exported is not None and bare is not None:
        listing = _listing_with(studio, project_id, exported, bare)
    elif cursor is not None and cursor.tasks:
        listing = _listing_since(studio, project_id, cursor)
    if listing is not None:
        return listing
    tasks = _task_pages(studio, project_id)
    return None if tasks is None else _stamps(tasks)


def list_bare(studio: Studio, project_id: int) -> list[dict[str, Any]] | None:
    """The project's tasks nobody has annotated (`id`, `updated_at`); None when the project is gone."""
    rule = {"filter": "filter:tasks:total_annotations", "operator": "equal", "type": "Number", "value": 0}
    return _task_pages(studio, project_id, json.dumps({"filters": {"conjunction": "and", "items": [rule]}}))


def _listing_with(
    studio: Studio, project_id: int, exported: list[dict[str, Any]], bare: list[dict[str, Any]]
) -> dict[int, str] | None:
    """The export's stamps over the bare listing's: the bare tasks were listed before the export, so a task
    annotated meanwhile keeps the export's (newer) stamp, and one annotated after the export keeps its bare
    stamp, older than the server's, so the next pull fetches it. When the task count disagrees (tasks came
    or went during the pull), the whole project is listed, but a task keeps the stamp of what this pull read
    of it; one it read nothing of gets no stamp (the next pull fetches it)."""
    project = _get_json(studio, f"api/projects/{project_id}/", {})
    if not isinstance(project, dict):
        return None
    listing = {**_stamps(bare), **_stamps(exported)}
    if project.get("task_number") == len(listing):
        return listing
    whole = _task_pages(studio, project_id)
    return None if whole is None else {tid: listing.get(tid, "") for tid in _stamps(whole)}


def _listing_since(studio: Studio, project_id: int, cursor: PullCursor) -> dict[int, str] | None:
    """The cursor's listing updated with the tasks changed since: those stamped after its newest stamp, and
    those of the margin before it when the server counts other tasks there than the cursor knows. None when
    the project's task count disagrees (or the cursor's stamps do not parse): then the project is listed whole."""
    try:
        stamps = {tid: datetime.fromisoformat(stamp) for tid, (stamp, _) in cursor.tasks.items()}
        newest = max(stamps.values())
        recent = {tid for tid, when in stamps.items() if when > newest - CHANGE_MARGIN}
    except (ValueError, TypeError):
        return None
    changed = _task_pages(studio, project_id, _since(newest))
    in_margin = _task_pages(studio, project_id, _since(newest - CHANGE_MARGIN), count_only=True)
    if changed is not None and in_margin is not None and in_margin["total"] != len(recent | set(_stamps(changed))):
        changed = _task_pages(studio, project_id, _since(newest - CHANGE_MARGIN))
    project = _get_json(studio, f"api/projects/{project_id}/", {})
    if changed is None or not isinstance(project, dict):
        return None
    return merge_changes(cursor, _stamps(changed), project.get("task_number"))


def _since(when: datetime) -> str:
    """A Data Manager query for the tasks updated after `when` (the server reads only the `Z` spelling)."""
    value = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rule = {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": value}
    return json.dumps({"filters": {"conjunction": "and", "items": [rule]}})


def merge_changes(cursor: PullCursor, changed: dict[int, str], task_number: Any) -> dict[int, str] | None:
    """The listing the cursor and the tasks updated since it make, if the server holds exactly those tasks;
    None when it holds another number (tasks were deleted: only a whole listing says which)."""
    listing = {tid: stamp for tid, (stamp, _) in cursor.tasks.items()}
    listing.update(changed)
    return listing if task_number == len(listing) else None


def _stamps(tasks: list[dict[str, Any]]) -> dict[int, str]:
    return {int(t["id"]): _stamp(t.get("updated_at")) for t in tasks if t.get("id") is not None}


def _task_pages(studio: Studio, project_id: int, query: str | None = None, count_only: bool = False) -> Any:
    """The project's tasks (`id`, `updated_at`; those the Data Manager `query` selects), all pages, or with
    `count_only` the first page's answer (its `total`); None when the project is gone."""
    tasks: list[dict[str, Any]] = []
    params: dict[str, Any] = {"project": project_id, "fields": "task_only", "include": "id,updated_at"}
    params.update({"page_size": 1 if count_only else LIST_PAGE, **({"query": query} if query else {})})
    for page in range(1, 10_000):
        body = _get_json(studio, "api/tasks/", {**params, "page": page})
        if not isinstance(body, dict):  # 404: the project is gone (or, past page 1, no further page)
            return None if page == 1 else tasks
        if count_only:
            return {"total": body.get("total")}
        got = body.get("tasks") or []
        tasks += got
        if len(got) < LIST_PAGE or len(tasks) >= (body.get("total") or 0):
            break
    return tasks


def _get_json(studio: Studio, path: str, params: dict[str, Any]) -> Any:
    """GET through the SDK's HTTP client (base URL, key, timeout) as plain JSON; None on 404."""
    http = studio.sdk._client_wrapper.httpx_client

    def get() -> Any:
        resp = http.request(path, method="GET", params=params)
        if not 200 <= resp.status_code < 300:
            raise ApiError(status_code=resp.status_code, headers=dict(resp.headers), body=resp.text)
        return resp.json()

    try:
        return studio.call(get)
    except ApiError as exc:
        if exc.status_code == 404:
            return None
        raise


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
