"""What the server says about the workspace's projects, to check against `culturecode status`."""

from __future__ import annotations

from typing import Any

from label_studio_sdk.core.api_error import ApiError

from pipeline.config import Settings
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from pipeline.studio import server
from pipeline.studio.client import connect, resolve
from pipeline.studio.projects import stored_projects


def studio_status(settings: Settings, store: Store | None = None) -> dict[str, Any]:
    """{"url", "running", "database", "projects": [{"id", "title", "tasks", "annotations"}], "tasks"}.

    `database` is the embedded server's ('sqlite' or the PostgreSQL URL, password masked); None for a team
    server (it does not say). Counts are Label Studio's own (`task_number`, `total_annotations_number`) for
    the workspace's projects; with no workspace ledger, every project the key can see is listed.
    """
    try:
        url, _, embedded = resolve(settings)
    except CultureCodeError:
        return {"url": server.local_url(settings), "running": False, "database": None, "projects": [], "tasks": 0}
    local = server.server_status(settings) if embedded else None
    running = local.running if local is not None else server.is_healthy(url)
    database = local.database if local is not None else None
    report: dict[str, Any] = {"url": url, "running": running, "database": database, "projects": [], "tasks": 0}
    if not running:
        return report
    studio = connect(settings)
    ids = [r["id"] for r in stored_projects(store, url)] if store is not None else []
    projects = []
    if ids:
        for pid in ids:
            try:
                projects.append(studio.call(studio.sdk.projects.get, pid))
            except ApiError as exc:
                if exc.status_code != 404:
                    raise
    else:
        projects = studio.call(lambda: list(studio.sdk.projects.list(page_size=1000)))
    for p in projects:
        report["projects"].append(
            {"id": p.id, "title": p.title, "tasks": p.task_number or 0, "annotations": p.total_annotations_number or 0}
        )
    report["tasks"] = sum(p["tasks"] for p in report["projects"])
    return report
