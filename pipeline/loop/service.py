"""Start and stop the live model server: the HTTP server, the retrain trigger, and the projects' connections."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.loop.backend import ModelBackend, TextScorer, make_server, serve_in_thread, shared_secret
from pipeline.loop.connect import Connection, backend_url, connect_projects
from pipeline.loop.marker import ServingMarker
from pipeline.loop.status import server_up
from pipeline.loop.trigger import RetrainFn, RetrainTrigger, workspace_retrain
from pipeline.store import DB_NAME, Store


@dataclass
class LoopServer:
    """A running model server; `close` stops it (a running retrain dies with the process and resumes later)."""

    url: str
    http: ThreadingHTTPServer = field(repr=False)
    trigger: RetrainTrigger = field(repr=False)
    connections: list[Connection]
    pending: int  # annotations counted before this start (a restarted server resumes them)
    marker: ServingMarker | None = field(default=None, repr=False)  # the workspace's .serve.lock, held

    def close(self) -> None:
        self.trigger.stop()
        self.http.shutdown()
        self.http.server_close()
        if self.marker is not None:
            self.marker.release()

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "pending": self.pending,
            "every": self.trigger.every,
            "connections": [c.as_dict() for c in self.connections],
        }


def store_opener(settings: Settings) -> Callable[[], Store]:
    """Each request opens the workspace for itself (sqlite connections stay in their thread) and takes no lock:
    the counter's writes are one short transaction; the retrain takes the workspace lock while it runs."""
    workspace = Path(settings.workspace)
    if not (workspace / DB_NAME).exists():
        raise CultureCodeError(f"no workspace database in {workspace}: run `culturecode ingest PATH` first")
    return lambda: Store(workspace, create=False, backups=settings.backups)


def start_loop(
    settings: Settings,
    codebook: Codebook,
    port: int | None = None,
    connect: bool = True,
    retrain: RetrainFn | None = None,
    score_texts: TextScorer | None = None,
    on_retrain: Callable[[dict[str, Any]], None] | None = None,
) -> LoopServer:
    """Serve the protocol on `loop.host`:`port` (0: a free port), connect the workspace's projects, and resume
    the stored count (a retrain starts at once when enough annotations were pending)."""
    open_store = store_opener(settings)
    secret = shared_secret(settings)
    marker = ServingMarker(Path(settings.workspace))
    try:
        return _start(settings, codebook, open_store, secret, port, connect, retrain, score_texts, on_retrain, marker)
    except BaseException:
        marker.release()
        raise


def _start(
    settings: Settings,
    codebook: Codebook,
    open_store: Callable[[], Store],
    secret: str,
    port: int | None,
    connect: bool,
    retrain: RetrainFn | None,
    score_texts: TextScorer | None,
    on_retrain: Callable[[dict[str, Any]], None] | None,
    marker: ServingMarker,
) -> LoopServer:
    cfg = settings.loop
    trigger = RetrainTrigger(
        open_store, retrain or workspace_retrain(settings, codebook), cfg.every, cfg.debounce_seconds, on_retrain
    )
    backend = ModelBackend(settings, codebook, open_store, trigger, secret, score_texts)
    chosen = cfg.port if port is None else port
    try:
        http = make_server(backend, cfg.host, chosen)
    except OSError as exc:
        raise CultureCodeError(
            f"cannot listen on {cfg.host}:{chosen} ({exc.strerror or exc}); is `culturecode serve` already running? "
            f"Choose another with --port or loop.port"
        ) from None
    serve_in_thread(http)
    url = backend_url(settings, http.server_address[1])
    marker.record({"url": url, "every": cfg.every})
    try:
        connections: list[Connection] = []
        if connect:
            with open_store() as store:
                connections = connect_projects(store, settings, url, secret)
        pending = trigger.start()
    except BaseException:
        http.shutdown()
        http.server_close()
        raise
    return LoopServer(url, http, trigger, connections, pending, marker)


def connect_new_projects(store: Store, settings: Settings, project_ids: list[int]) -> str:
    """`push` with `loop.connect`: connect projects it just created to a running model server; a line to print."""
    url = backend_url(settings)
    if not project_ids:
        return ""
    if not server_up(url):
        return f"loop.connect is on but no model server answers at {url}: run `culturecode serve` to connect them"
    made = connect_projects(store, settings, url, shared_secret(settings), project_ids)
    return f"connected {len(made)} new project(s) to the model server at {url}"
