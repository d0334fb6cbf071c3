"""`culturecode loop status`: the classifier versions (when each was trained, on how many labels, its held-out
score, which is current), the model server's counter (annotations since the last retrain, of how many), and
what the last retrains did. Reads the workspace only, plus one quick `/health` request to the server."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.loop.marker import running_server
from pipeline.store import Store
from pipeline.store.loop import loop_state
from pipeline.store.models import list_models

HISTORY_SHOWN = 10


def _labels(row: dict[str, Any]) -> int | None:
    """How many labelled segments a version was trained on (the loop records it; else its training.json)."""
    loop = row["metrics"].get("loop") or {}
    if isinstance(loop.get("labels"), int):
        return loop["labels"]
    try:
        training = json.loads((Path(row["path"] or "") / "training.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    segments = training.get("segments")
    return segments if isinstance(segments, int) else None


def _version(row: dict[str, Any]) -> dict[str, Any]:
    metrics = row["metrics"]
    return {
        "version": row["version"],
        "current": row["is_current"],
        "trained_at": row["created_at"],
        "method": metrics.get("method"),
        "labels": _labels(row),
        "macro_f1": metrics.get("macro_f1"),
        "micro_f1": metrics.get("micro_f1"),
        "by_loop": "loop" in metrics,
    }


def server_up(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:  # noqa: S310 (our own http URL)
            return resp.status == 200 and json.loads(resp.read() or b"{}").get("status") == "UP"
    except (OSError, ValueError):
        return False


def loop_status(store: Store, settings: Settings, probe: bool = True) -> dict[str, Any]:
    from pipeline.loop.connect import backend_url

    state = loop_state(store)
    running = running_server(store.workspace) or {}  # the server that runs, not the port the settings name
    url = running.get("url") or backend_url(settings)
    return {
        "server": {"url": url, "up": server_up(url) if probe else None, "pid": running.get("pid")},
        "every": running.get("every") or settings.loop.every,
        "pending": len(state["pending"]),
        "in_retrain": len(state["training"]),
        "retrains": state["retrains"],
        "last_event_at": state["last_event_at"],
        "versions": [_version(r) for r in list_models(store, "classifier")],
        "history": state["history"][-HISTORY_SHOWN:],
    }
