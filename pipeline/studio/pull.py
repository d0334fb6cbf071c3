"""Pull every annotation of every project of the workspace into the `annotations` table.

Each project is exported whole (Label Studio's JSON export with all tasks), annotators are named
by email through the users API, and the result is compared with the ledger: new, edited, skipped
and deleted annotations (gone from the server) are counted, all written in one transaction.
A rerun with nothing changed on the server writes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from label_studio_sdk.core.api_error import ApiError

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.progress import progress_bar
from pipeline.store import Store, dumps
from pipeline.store.annotations import mark_deleted, project_annotations, task_ledger, upsert_annotations
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
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.new + self.updated + self.deleted

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


def _export(studio: Studio, project_id: int) -> list[dict[str, Any]] | None:
    """All tasks of a project with their annotations; None when the project is gone."""
    try:
        raw = studio.call(
            lambda: b"".join(
                studio.sdk.projects.exports.download_sync(project_id, export_type="JSON", download_all_tasks=False)
            )
        )
    except ApiError as exc:
        if exc.status_code == 404:
            return None
        raise
    return json.loads(raw)


def _user(studio: Studio, completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        return completed_by.get("email") or str(completed_by.get("id"))
    emails = studio.user_emails()
    if completed_by not in emails:
        emails = studio.user_emails(refresh=True)
    return emails.get(completed_by, f"user-{completed_by}")


def _rows(
    studio: Studio, store: Store, codebook: Codebook, project: Any, tasks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    ledger = {r["task_id"]: r for r in task_ledger(store, studio.url, project["id"])}
    rows = []
    for task in tasks:
        seg = (task.get("data") or {}).get("segment_id") or (ledger.get(task["id"]) or {}).get("segment_id")
        if seg is None or store.segment(seg) is None:
            continue
        for ann in task.get("annotations", []):
            where = f"annotation {ann['id']} on task {task['id']} of project {project['id']} ({project['title']})"
            codes = codebook.check_codes(codes_from_result(ann.get("result")), where)
            version = (ann.get("prediction") or {}).get("model_version") or (ledger.get(task["id"]) or {}).get(
                "model_version"
            )
            rows.append(
                {
                    "server_url": studio.url,
                    "project_id": project["id"],
                    "annotation_id": ann["id"],
                    "task_id": task["id"],
                    "segment_id": seg,
                    "annotator": _user(studio, ann.get("completed_by")),
                    "codes": dumps(codes),
                    "was_cancelled": int(bool(ann.get("was_cancelled"))),
                    "deleted": 0,
                    "lead_time": ann.get("lead_time"),
                    "prediction_version": version,
                    "codebook_hash": codebook.content_hash,
                    "created_at": ann.get("created_at"),
                    "updated_at": ann.get("updated_at"),
                }
            )
    return rows


def _merge(store: Store, report: PullReport, url: str, project_id: int, rows: list[dict[str, Any]]) -> None:
    old = project_annotations(store, url, project_id)
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


def _check_independence(report: PullReport, project: Any, rows: list[dict[str, Any]]) -> None:
    if project["annotator"] is None:
        return
    strangers = Counter(r["annotator"] for r in rows if r["annotator"] != project["annotator"])
    for who, n in strangers.items():
        report.warnings.append(
            f"{who} made {n} annotation(s) in {project['annotator']}'s project "
            f"{project['id']}: they count as {who}'s, but break the independence rule"
        )


def pull(store: Store, settings: Settings, codebook: Codebook, show_progress: bool = True) -> PullReport:
    """Fetch every annotation of the workspace's projects; prints-ready counts of what changed."""
    studio = connect(settings)
    projects = stored_projects(store, studio.url)
    if not projects:
        raise CultureCodeError(
            f"the workspace has no Label Studio project on {studio.url}: run `culturecode push` first"
        )
    report = PullReport(studio.url, projects=len(projects))
    exports: list[tuple[Any, list[dict[str, Any]]]] = []
    with progress_bar("pull", len(projects), show_progress) as bar:
        for project in projects:
            tasks = _export(studio, project["id"])
            bar.advance()
            if tasks is None:
                report.warnings.append(
                    f"project {project['id']} ({project['title']}) was deleted on the server; its annotations "
                    f"stay in the workspace; `culturecode push` makes the project again"
                )
                continue
            rows = _rows(studio, store, codebook, project, tasks)
            _check_independence(report, project, rows)
            exports.append((project, rows))
    with store.run("pull", {"url": studio.url}) as summary, store.transaction():
        for project, rows in exports:
            _merge(store, report, studio.url, project["id"], rows)
        summary.update(new=report.new, updated=report.updated, deleted=report.deleted, skipped=report.skipped)
    return report
