"""Connect the model server to the workspace's Label Studio projects: on each, a webhook that sends the
annotation events with the shared secret, and the ML backend (Settings > Model) that answers `/predict`.

The webhook is made first: Label Studio adds a secret-less `<url>/webhook` hook for every new ML backend
unless one with that URL exists. Label Studio refuses both on loopback addresses unless it runs with
`USE_DEFAULT_BANNED_SUBNETS=false` (the embedded server does, with every other reserved network still
banned: pipeline/studio/server.py); a team server needs the same setting, or a `loop.public_url` it may reach.
Connecting again changes nothing that is already right (a changed secret is updated).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipeline.config import Settings
from pipeline.errors import CultureCodeError
from pipeline.loop.backend import BASIC_USER, SECRET_HEADER
from pipeline.store import Store

TITLE = "culturecode"
WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]


@dataclass
class Connection:
    project_id: int
    ml_backend_id: int | None
    webhook_id: int | None
    backend_created: bool
    webhook_created: bool
    webhook_updated: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def backend_url(settings: Settings, port: int | None = None) -> str:
    """The URL Label Studio calls: `loop.public_url`, else the bound address (a wildcard bind as 127.0.0.1)."""
    if settings.loop.public_url:
        return settings.loop.public_url.rstrip("/")
    host = settings.loop.host if settings.loop.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port or settings.loop.port}"


def connect_projects(
    store: Store, settings: Settings, url: str, secret: str, project_ids: list[int] | None = None
) -> list[Connection]:
    """Register the server at `url` on the workspace's projects (all, or `project_ids`)."""
    from label_studio_sdk.core.api_error import ApiError

    from pipeline.store.annotations import projects
    from pipeline.store.models import current_model
    from pipeline.studio.client import connect

    studio = connect(settings)
    version = current_model(store)
    done = []
    for row in projects(store, studio.url):
        if project_ids is not None and row["id"] not in project_ids:
            continue
        try:
            hook_id, hook_created, hook_updated = _ensure_webhook(studio, row["id"], f"{url}/webhook", secret)
            backend_id, created = _ensure_backend(studio, row["id"], url, secret, version)
        except ApiError as exc:
            raise CultureCodeError(
                f"Label Studio at {studio.url} refused to connect project {row['id']} to the model server at {url} "
                f"({exc.status_code}: {str(exc.body)[:200]}); a Label Studio on this machine needs "
                f"USE_DEFAULT_BANNED_SUBNETS=false (restart the embedded one with `culturecode studio stop` and "
                f"`studio start`), and the model server must be running"
            ) from None
        done.append(Connection(row["id"], backend_id, hook_id, created, hook_created, hook_updated))
    return done


def _ensure_webhook(studio: Any, project_id: int, hook_url: str, secret: str) -> tuple[int | None, bool, bool]:
    headers = {SECRET_HEADER: secret}
    hooks = [h for h in studio.call(studio.sdk.webhooks.list, project=str(project_id)) if h.url == hook_url]
    if not hooks:
        hook = studio.call(
            studio.sdk.webhooks.create,
            url=hook_url,
            project=project_id,
            headers=headers,
            actions=WEBHOOK_ACTIONS,
            send_payload=True,
            send_for_all_actions=False,
            is_active=True,
        )
        return hook.id, True, False
    hook = hooks[0]
    right = (hook.headers or {}) == headers and set(hook.actions or []) == set(WEBHOOK_ACTIONS) and hook.is_active
    if right and not hook.send_for_all_actions:
        return hook.id, False, False
    studio.call(
        studio.sdk.webhooks.update,
        hook.id,
        url=hook_url,
        headers=headers,
        actions=WEBHOOK_ACTIONS,
        send_payload=True,
        send_for_all_actions=False,
        is_active=True,
    )
    return hook.id, False, True


def _ensure_backend(
    studio: Any, project_id: int, url: str, secret: str, version: str | None
) -> tuple[int | None, bool]:
    auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": BASIC_USER, "basic_auth_pass": secret}
    found = [b for b in studio.call(studio.sdk.ml.list, project=project_id) if (b.url or "").rstrip("/") == url]
    if found:
        # a new secret reaches Label Studio; without `project` Label Studio 1.23 fails (500) while checking the server
        studio.call(studio.sdk.ml.update, found[0].id, project=project_id, url=url, **auth)
        return found[0].id, False
    backend = studio.call(
        studio.sdk.ml.create,
        project=project_id,
        url=url,
        title=TITLE,
        description="culturecode serve: pre-labels from the workspace's current model, retrained as you annotate",
        is_interactive=False,
        auto_update=True,
        **auth,
    )
    if version:  # a project without a model version is given the backend's title; show the model's predictions
        studio.call(studio.sdk.projects.update, project_id, model_version=version, show_collab_predictions=True)
    return backend.id, True
