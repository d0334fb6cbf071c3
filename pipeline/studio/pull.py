"""Pull the annotations of every project of the workspace into the `annotations` table.

A pull fetches only what changed since the last one (`pipeline.studio.changes`): it lists each project's
tasks with their `updated_at`, compares them with the project's cursor (`pipeline.store.pulls`) and exports
only the new and touched tasks; a project's first pull, or `full=True`, exports the project whole (Label
Studio's JSON export). Annotators are named by email through the users API, and the result is compared
with the ledger: new, edited, skipped and deleted annotations are counted, tasks deleted on the server and
tasks that duplicate another one's segment are listed, all written in one transaction with the new cursors.
A rerun with nothing changed on the server fetches no task and writes nothing but the cursors.

A task may hold a segment that a re-ingest (`ingest --replace`) superseded: its annotations are
stored on that segment and listed in the report (they count nowhere), and where the segment's work
was carried over to its edited text, new and edited ones follow it there too. Pulling with a
codebook other than the one a project was set up with is refused: the annotations would be checked
against, and recorded under, the wrong codebook.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.progress import progress_bar
from pipeline.store import Store, dumps
from pipeline.store.annotations import (
    carry_annotations,
    mark_deleted,
    project_annotations,
    task_ledger,
    upsert_annotations,
)
from pipeline.store.pulls import pull_cursor, save_pull_cursor
from pipeline.store.segments import segment_ids, successors
from pipeline.studio.changes import (
    DeletedTask,
    DuplicatedTask,
    ProjectChanges,
    duplicates,
    export_all,
    export_tasks,
    list_bare,
    list_tasks,
    segment_of,
    touched,
)
from pipeline.studio.client import Studio, connect
from pipeline.studio.labeling import codes_from_result
from pipeline.studio.projects import stored_projects

COMPARED = ("codes", "was_cancelled", "deleted", "lead_time", "updated_at", "annotator")


@dataclass
class PullReport:
    url: str
    projects: int = 0
    new: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0  # new or edited annotations that are skips (was_cancelled)
    unchanged: int = 0
    per_annotator: dict[str, int] = field(default_factory=dict)
    # every annotation on a task whose segment a re-ingest superseded (see SupersededAnnotation)
    superseded: list[SupersededAnnotation] = field(default_factory=list)
    # annotations on tasks whose segment the workspace does not know: not stored
    unknown_segment: list[SupersededAnnotation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    full: bool = True  # every project exported whole (else only the tasks new or touched since the last pull)
    fetched_tasks: int = 0  # tasks exported
    deleted_tasks: list[DeletedTask] = field(default_factory=list)  # gone from the server since the last pull
    duplicated_tasks: list[DuplicatedTask] = field(default_factory=list)  # segments held by 2+ tasks of a project

    @property
    def changed(self) -> int:
        return self.new + self.updated + self.deleted

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


@dataclass
class SupersededAnnotation:
    """An annotation on a task whose segment left its document (or the workspace) on a re-ingest."""

    project_id: int
    task_id: int
    annotation_id: int
    annotator: str
    segment_id: str | None
    carried_to: str | None = None  # the edited segment it is copied to (where it counts), if any
    changed: bool = False  # new or edited since the last pull


@dataclass
class MatchedTasks:
    """One project's export matched to the workspace's segments (see `match_annotations`)."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # annotation rows to store
    superseded: list[SupersededAnnotation] = field(default_factory=list)  # among `rows`, on superseded segments
    unknown_segment: list[SupersededAnnotation] = field(default_factory=list)  # not stored


def _user(studio: Studio, completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        return completed_by.get("email") or str(completed_by.get("id"))
    emails = studio.user_emails()
    if completed_by not in emails:
        emails = studio.user_emails(refresh=True)
    return emails.get(completed_by, f"user-{completed_by}")


def match_annotations(
    store: Store,
    url: str,
    project: Any,
    tasks: list[dict[str, Any]],
    codebook: Codebook,
    annotator_of: Callable[[Any], str],
) -> MatchedTasks:
    """The annotation rows of one project's exported `tasks`, each on the segment its task holds
    (the task's data, else the task ledger). Annotations on superseded segments are stored and
    listed; those whose segment the workspace does not know are listed only."""
    ledger = {r["task_id"]: r for r in task_ledger(store, url, project["id"])}
    segment_of = {
        t["id"]: (t.get("data") or {}).get("segment_id") or (ledger.get(t["id"]) or {}).get("segment_id") for t in tasks
    }
    wanted = [seg for seg in segment_of.values() if seg]
    known = segment_ids(store) if wanted else set()
    gone = successors(store, wanted)
    matched = MatchedTasks()
    for task in tasks:
        seg = segment_of[task["id"]]
        for ann in task.get("annotations", []):
            who = annotator_of(ann.get("completed_by"))
            if seg is None or seg not in known:
                matched.unknown_segment.append(SupersededAnnotation(project["id"], task["id"], ann["id"], who, seg))
                continue
            if seg in gone:
                matched.superseded.append(
                    SupersededAnnotation(project["id"], task["id"], ann["id"], who, seg, gone[seg])
                )
            matched.rows.append(_row(url, project, task, ann, seg, who, codebook, ledger))
    return matched


def _row(
    url: str,
    project: Any,
    task: dict[str, Any],
    ann: dict[str, Any],
    seg: str,
    who: str,
    codebook: Codebook,
    ledger: dict[int, Any],
) -> dict[str, Any]:
    where = f"annotation {ann['id']} on task {task['id']} of project {project['id']} ({project['title']})"
    codes = codebook.check_codes(codes_from_result(ann.get("result") or []), where)
    version = (ann.get("prediction") or {}).get("model_version") or (ledger.get(task["id"]) or {}).get("model_version")
    return {
        "server_url": url,
        "project_id": project["id"],
        "annotation_id": ann["id"],
        "task_id": task["id"],
        "segment_id": seg,
        "annotator": who,
        "codes": dumps(codes),
        "was_cancelled": int(bool(ann.get("was_cancelled"))),
        "deleted": 0,
        "lead_time": ann.get("lead_time"),
        "prediction_version": version,
        "codebook_hash": codebook.content_hash,
        "created_at": ann.get("created_at"),
        "updated_at": ann.get("updated_at"),
    }


def _merge(
    store: Store, report: PullReport, url: str, project_id: int, rows: list[dict[str, Any]], scope: set[int] | None
) -> set[int]:
    """Store what changed; returns the ids of the new and edited annotations. Stored annotations of the
    tasks in `scope` (of the whole project when None) that `rows` lack were deleted on the server."""
    old = project_annotations(store, url, project_id)
    if scope is not None:  # the annotations of the tasks not fetched stand as they were
        report.unchanged += sum(1 for r in old.values() if r["task_id"] not in scope and not r["deleted"])
        old = {aid: r for aid, r in old.items() if r["task_id"] in scope}
    changed = []
    for row in rows:
        before = old.pop(row["annotation_id"], None)
        if before is not None and all(before[k] == row[k] for k in COMPARED):
            report.unchanged += 1
            continue
        report.new += before is None
        report.updated += before is not None
        report.skipped += row["was_cancelled"]
        report.per_annotator[row["annotator"]] = report.per_annotator.get(row["annotator"], 0) + 1
        changed.append(row)
    upsert_annotations(store, changed)
    gone = [aid for aid, r in old.items() if not r["deleted"]]
    mark_deleted(store, url, gone)
    report.deleted += len(gone)
    return {row["annotation_id"] for row in changed}


def record_project(
    store: Store, report: PullReport, url: str, project_id: int, matched: MatchedTasks, scope: set[int] | None = None
) -> None:
    """Write one project's matched annotations (caller holds the transaction) and count them in `report`;
    `scope`: the task ids the rows stand for (None: the whole project)."""
    _follow_edits(store, matched, _merge(store, report, url, project_id, matched.rows, scope))
    report.superseded += matched.superseded
    report.unknown_segment += matched.unknown_segment


def _follow_edits(store: Store, matched: MatchedTasks, changed: set[int]) -> None:
    """New and edited annotations on superseded segments go where the segments' work was carried."""
    for note in matched.superseded:
        note.changed = note.annotation_id in changed
    seen: set[str] = set()
    todo = [n.segment_id for n in matched.superseded if n.changed and n.carried_to and n.segment_id]
    for seg in todo:
        successor = successors(store, [seg]).get(seg)
        while seg not in seen and successor:  # along the chain of edits, to the active segment
            seen.add(seg)
            carry_annotations(store, seg, successor)
            seg, successor = successor, successors(store, [successor]).get(successor)


def check_codebook(store: Store, projects: list[Any], codebook: Codebook) -> list[str]:
    """Refuse a codebook other than the one each project was set up with; warnings otherwise."""
    for project in projects:
        if project["codebook_hash"] != codebook.content_hash:
            raise CultureCodeError(
                f"project {project['id']} ({project['title']}) was set up with codebook {project['codebook_hash']}, "
                f"not '{codebook.id}' ({codebook.content_hash}); pull with the codebook it was pushed with "
                f"(--codebook), or move the projects to this one with `culturecode push --update-config`"
            )
    stored = store.codebook_hash
    if stored is not None and stored != codebook.content_hash:
        return [
            f"the workspace was first labelled with codebook {stored}; these annotations use '{codebook.id}' "
            f"({codebook.content_hash}): agreement and training read each codebook's annotations apart"
        ]
    return []


def _check_independence(report: PullReport, project: Any, rows: list[dict[str, Any]]) -> None:
    if project["annotator"] is None:
        return
    strangers = Counter(r["annotator"] for r in rows if r["annotator"] != project["annotator"])
    for who, n in strangers.items():
        report.warnings.append(
            f"{who} made {n} annotation(s) in {project['annotator']}'s project "
            f"{project['id']}: they count as {who}'s, but break the independence rule"
        )


def fetch_project(store: Store, studio: Studio, project: Any, full: bool) -> ProjectChanges | None:
    """List the project's tasks and export what the last pull has not seen (everything when `full` or on the
    project's first pull); None when the project is gone from the server."""
    cursor = pull_cursor(store, studio.url, project["id"])
    whole = full or cursor is None
    # the bare tasks are listed before the export: an annotation saved in between is then never lost
    bare = list_bare(studio, project["id"]) if whole else None
    exported = export_all(studio, project["id"]) if bare is not None else None
    if whole and exported is None:
        return None
    listing = list_tasks(studio, project["id"], cursor, exported, bare)
    if listing is None:
        return None
    ledger = {r["task_id"] for r in task_ledger(store, studio.url, project["id"])}
    if cursor is None:  # first pull: what the workspace knows of the project are its ledger and annotations
        known = set(ledger)
        known |= {
            r["task_id"] for r in project_annotations(store, studio.url, project["id"]).values() if not r["deleted"]
        }
    else:
        known = set(cursor.tasks)
    deleted = sorted(known - set(listing))
    if exported is not None or cursor is None:
        tasks = exported or []
        # tasks nobody annotated that the workspace did not push (duplicates?): their data names their segment
        seen = (
            ledger
            | {t["id"] for t in tasks}
            | {tid for tid, (_, seg) in (cursor.tasks if cursor else {}).items() if seg}
        )
        unseen = set(listing) - seen
        tasks += export_tasks(studio, project["id"], unseen) if unseen else []
        return ProjectChanges(listing, tasks, None, deleted, cursor)
    fetch = touched(listing, cursor)
    tasks = export_tasks(studio, project["id"], fetch) if fetch else []
    return ProjectChanges(listing, tasks, fetch | set(deleted), deleted, cursor)


def _finish_project(store: Store, report: PullReport, url: str, project: Any, changes: ProjectChanges) -> None:
    """After its annotations are written: list the project's deleted and duplicated tasks, save its cursor.
    A task's segment comes from the export, else the last cursor, else the task ledger."""
    ledger = {r["task_id"]: r["segment_id"] for r in task_ledger(store, url, project["id"])}
    exported = {t["id"]: segment_of(t) for t in changes.tasks}
    segments = {tid: exported.get(tid) or changes.last_segment(tid) or ledger.get(tid) for tid in changes.listing}
    stored = Counter(r["task_id"] for r in project_annotations(store, url, project["id"]).values())
    for tid in changes.deleted:
        seg = changes.last_segment(tid) or ledger.get(tid)
        report.deleted_tasks.append(DeletedTask(project["id"], tid, seg, stored[tid]))
    found = duplicates(project["id"], segments)
    for dup in found:
        report.warnings.append(
            f"project {project['id']} ({project['title']}): segment {dup.segment_id[:12]} is held by "
            f"{len(dup.task_ids)} tasks ({', '.join(map(str, dup.task_ids))}); annotations on each count, the "
            "latest per annotator wins; `culturecode push` removes the duplicates nobody annotated"
        )
    report.duplicated_tasks += found
    save_pull_cursor(store, url, project["id"], {tid: (changes.listing[tid], segments[tid]) for tid in changes.listing})


def _untouched_superseded(store: Store, url: str, project_id: int, scope: set[int]) -> list[SupersededAnnotation]:
    """The stored annotations on superseded segments of the tasks a pull did not fetch (listed as unchanged)."""
    stored = [r for r in project_annotations(store, url, project_id).values() if not r["deleted"]]
    stored = [r for r in stored if r["task_id"] not in scope]
    gone = successors(store, [r["segment_id"] for r in stored]) if stored else {}
    return [
        SupersededAnnotation(project_id, r["task_id"], r["annotation_id"], r["annotator"], seg, gone[seg])
        for r in stored
        if (seg := r["segment_id"]) in gone
    ]


def _fetch_all(
    store: Store,
    studio: Studio,
    projects: list[Any],
    report: PullReport,
    codebook: Codebook,
    full: bool,
    show_progress: bool,
) -> list[tuple[Any, ProjectChanges, MatchedTasks]]:
    fetched = []
    with progress_bar("pull", len(projects), show_progress) as bar:
        for project in projects:
            changes = fetch_project(store, studio, project, full)
            bar.advance()
            if changes is None:
                report.warnings.append(
                    f"project {project['id']} ({project['title']}) was deleted on the server; its annotations "
                    f"stay in the workspace; `culturecode push` makes the project again"
                )
                continue
            report.fetched_tasks += len(changes.tasks)
            matched = match_annotations(
                store, studio.url, project, changes.tasks, codebook, lambda by: _user(studio, by)
            )
            _check_independence(report, project, matched.rows)
            if changes.scope is not None:
                matched.superseded += _untouched_superseded(store, studio.url, project["id"], changes.scope)
            fetched.append((project, changes, matched))
    return fetched


def pull(
    store: Store, settings: Settings, codebook: Codebook, show_progress: bool = True, full: bool = False
) -> PullReport:
    """Fetch the annotations new, edited or deleted since the last pull (all of them with `full`, or on a
    project's first pull); print-ready counts of what changed."""
    studio = connect(settings)
    projects = stored_projects(store, studio.url)
    if not projects:
        raise CultureCodeError(
            f"the workspace has no Label Studio project on {studio.url}: run `culturecode push` first"
        )
    report = PullReport(studio.url, projects=len(projects), warnings=check_codebook(store, projects, codebook))
    fetched = _fetch_all(store, studio, projects, report, codebook, full, show_progress)
    report.full = full or all(changes.scope is None for _, changes, _ in fetched)
    with store.run("pull", {"url": studio.url, "full": full}) as summary, store.transaction():
        for project, changes, matched in fetched:
            record_project(store, report, studio.url, project["id"], matched, changes.scope)
            _finish_project(store, report, studio.url, project, changes)
        summary.update(
            new=report.new,
            updated=report.updated,
            deleted=report.deleted,
            skipped=report.skipped,
            fetched_tasks=report.fetched_tasks,
            deleted_tasks=len(report.deleted_tasks),
            duplicated_tasks=len(report.duplicated_tasks),
            on_superseded=len(report.superseded),
            unknown_segment=len(report.unknown_segment),
        )
    return report
