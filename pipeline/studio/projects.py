"""Label Studio projects of a workspace: one per annotator (Community edition has no overlap
setting, so independent double coding is one project per annotator over the same segments),
one per adjudicator for review, or one shared project when no annotator is named."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from label_studio_sdk.core.api_error import ApiError

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from pipeline.store.annotations import add_project, find_project, forget_project, projects, set_project_codebook
from pipeline.studio.client import Studio
from pipeline.studio.labeling import label_config

ROLES = ("annotation", "review")


@dataclass
class ProjectRef:
    id: int
    title: str
    role: str
    annotator: str | None
    created: bool = False
    recreated: bool = False
    config_updated: bool = False


def title_for(settings: Settings, role: str, annotator: str | None) -> str:
    who = annotator.split("@")[0] if annotator else "shared"
    kind = "review" if role == "review" else "coding"
    title = f"{settings.studio.project_prefix} {Path(settings.workspace).resolve().name} {kind}: {who}"
    return title[:50]


def stored_projects(store: Store, url: str, role: str | None = None) -> list[sqlite3.Row]:
    return projects(store, url, role)


def _forget(store: Store, url: str, project_id: int) -> None:
    with store.transaction():
        forget_project(store, url, project_id)


def _create(
    studio: Studio,
    store: Store,
    settings: Settings,
    codebook: Codebook,
    role: str,
    annotator: str | None,
    model_version: str | None,
) -> ProjectRef:
    title = title_for(settings, role, annotator)
    who = f"for {annotator} only" if annotator else "shared"
    project = studio.call(
        studio.sdk.projects.create,
        title=title,
        label_config=label_config(codebook),
        description=(
            f"culturecode {role} project ({who}); codebook {codebook.id} "
            f"{codebook.content_hash}. Open only the project with your name."
        ),
        show_collab_predictions=True,
        model_version=model_version or "",
        maximum_annotations=1,
        show_skip_button=True,
        enable_empty_annotation=True,
        show_instruction=False,
    )
    if project.id is None:  # the SDK types every field optional; a created project has an id
        raise CultureCodeError(f"Label Studio at {studio.url} created project '{title}' without an id")
    with store.transaction():
        add_project(store, studio.url, project.id, title, role, annotator, codebook.content_hash)
    return ProjectRef(project.id, title, role, annotator, created=True)


def _update_config(studio: Studio, store: Store, row: sqlite3.Row, codebook: Codebook) -> None:
    try:
        studio.call(studio.sdk.projects.update, row["id"], label_config=label_config(codebook))
    except ApiError as exc:
        raise CultureCodeError(
            f"Label Studio refused the new codebook for project {row['id']} ({row['title']}) because "
            f"existing annotations use codes it drops ({str(exc.body)[:160]}); keep those codes or "
            f"use a new workspace"
        ) from None
    with store.transaction():
        set_project_codebook(store, studio.url, row["id"], codebook.content_hash)


def ensure_project(
    studio: Studio,
    store: Store,
    settings: Settings,
    codebook: Codebook,
    role: str,
    annotator: str | None,
    model_version: str | None,
    update_config: bool,
) -> ProjectRef:
    """The workspace's project for (role, annotator): found, checked against the codebook, or made."""
    row = find_project(store, studio.url, role, annotator)
    if row is None:
        return _create(studio, store, settings, codebook, role, annotator, model_version)
    try:
        studio.call(studio.sdk.projects.get, row["id"])
    except ApiError as exc:
        if exc.status_code != 404:
            raise
        _forget(store, studio.url, row["id"])  # deleted on the server: make it again
        ref = _create(studio, store, settings, codebook, role, annotator, model_version)
        ref.recreated = True
        return ref
    ref = ProjectRef(row["id"], row["title"], role, annotator)
    if row["codebook_hash"] != codebook.content_hash:
        if not update_config:
            raise CultureCodeError(
                f"project {row['id']} ({row['title']}) was set up with another codebook "
                f"({row['codebook_hash']}, now {codebook.content_hash}); push the original codebook, "
                f"or pass --update-config to change the project (existing annotations are kept)"
            )
        _update_config(studio, store, row, codebook)
        ref.config_updated = True
    return ref
