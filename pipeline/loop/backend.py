"""Label Studio's ML-backend protocol, as HumanSignal's label-studio-ml-backend serves it, over the standard library's
HTTP server (the `label-studio-ml` package pins Flask 1 and Jinja2 3.0, older than ours).

Routes (JSON in, JSON out):
- `GET /health` (and `GET /`): `{"status": "UP", "model_class": ..., "model_version": ...}`;
- `POST /setup` (project, schema): `{"model_version": <the workspace's current model>}`;
- `GET /versions`: `{"versions": [...]}` (every classifier version);
- `POST /predict` (tasks): `{"results": [<one prediction per task>], "model_version": ...}`: the current model's
  stored prediction of the task's segment, else the current classifier scores the task's text; only the codes
  the admission gate admits are pre-ticked (pipeline/studio/gate.py);
- `POST /webhook`: Label Studio's events; ANNOTATION_CREATED / ANNOTATION(S)_UPDATED / ANNOTATIONS_DELETED count
  toward the next retrain (`trigger.py`), START_TRAINING starts one now. Needs the shared secret;
- `POST /train` (Label Studio's "Start training"): starts a retrain now. Needs the shared secret.

The secret comes in the `X-CultureCode-Secret` header (the webhooks `serve` registers send it) or as the password
of HTTP basic auth (the ML backend `serve` registers uses it); a wrong or missing one gets 401 and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.integrity import read_private
from pipeline.jsontext import loads
from pipeline.loop.trigger import OpenStore, RetrainTrigger
from pipeline.store import Store
from pipeline.store.blind import pushed_blind_subset
from pipeline.store.models import current_model, get_model, model_versions
from pipeline.store.predictions import PredictionRow, predictions_for

log = logging.getLogger("culturecode.loop")

SECRET_HEADER = "X-CultureCode-Secret"
SECRET_FILE = "loop-secret"
BASIC_USER = "culturecode"
ANNOTATION_ACTIONS = frozenset(
    {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"}
)
MAX_BODY = 64 * 1024 * 1024

# scores texts with a model version: (store, version, texts) -> one prediction per text
TextScorer = Callable[[Store, str, list[str]], list[PredictionRow]]


def secret_path(settings: Settings) -> Path:
    return (
        Path(settings.loop.secret_file).expanduser()
        if settings.loop.secret_file
        else (Path(settings.workspace) / SECRET_FILE)
    )


def shared_secret(settings: Settings) -> str:
    """The webhook's shared secret: read from its 0600 file, made (random, 256 bits) the first time."""
    path = secret_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it just now
            return shared_secret(settings)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    value = read_private(path, "secret file", "delete it and a new secret is made")
    return value


def annotation_ids(body: dict[str, Any]) -> list[str]:
    """The Label Studio ids of the annotations a webhook event is about."""
    found: list[str] = []
    for key in ("annotation", "annotations"):
        value = body.get(key)
        items = value if isinstance(value, list) else [value] if value is not None else []
        for item in items:
            ident = item.get("id") if isinstance(item, dict) else item
            if isinstance(ident, (int, str)) and str(ident):
                found.append(str(ident))
    return found


class ModelBackend:
    """What each route answers, apart from HTTP (the unit tests call it through a real server on port 0)."""

    def __init__(
        self,
        settings: Settings,
        codebook: Codebook,
        open_store: OpenStore,
        trigger: RetrainTrigger,
        secret: str,
        score_texts: TextScorer | None = None,
    ):
        self.settings, self.codebook, self.open_store, self.trigger = settings, codebook, open_store, trigger
        self._secret = secret.encode()
        self._score_texts = score_texts or ClassifierTexts(settings, codebook)

    def authorised(self, headers: Any) -> bool:
        given = headers.get(SECRET_HEADER) or _basic_password(headers.get("Authorization") or "")
        return bool(given) and hmac.compare_digest(given.encode(), self._secret)

    def health(self) -> dict[str, Any]:
        with self.open_store() as store:
            version = current_model(store)
        return {"status": "UP", "model_class": "culturecode", "model_version": version or "", "v2": True}

    def setup(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.open_store() as store:
            return {"model_version": current_model(store) or ""}

    def versions(self) -> dict[str, Any]:
        with self.open_store() as store:
            return {"versions": model_versions(store, "classifier")}

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        from pipeline.studio.gate import admission_gate

        tasks = [t for t in body.get("tasks") or [] if isinstance(t, dict)]
        with self.open_store() as store:
            version = current_model(store)
            if version is None or not tasks:
                return {"results": [], "model_version": version or ""}
            preds = self._predictions(store, version, tasks)
            gate = admission_gate(store, self.settings.admission, version)
        return {"results": [_ls_prediction(p, version, gate) for p in preds], "model_version": version}

    def _predictions(self, store: Store, version: str, tasks: list[dict[str, Any]]) -> list[PredictionRow | None]:
        data = [t.get("data") or {} for t in tasks]
        seg_ids = [str(d.get("segment_id") or "") for d in data]
        stored = predictions_for(store, version, [s for s in seg_ids if s])
        found: list[PredictionRow | None] = [stored.get(s) for s in seg_ids]
        # the anchoring check's blind tasks never get a suggestion, from push or from this server
        blind = pushed_blind_subset(store)
        if blind is not None:
            found = [None if s in blind else p for s, p in zip(seg_ids, found, strict=True)]
        missing = [
            i
            for i, p in enumerate(found)
            if p is None and isinstance(data[i].get("text"), str) and not (blind is not None and seg_ids[i] in blind)
        ]
        row = get_model(store, version) or {}
        if missing and row.get("kind") == "classifier":
            scored = self._score_texts(store, version, [data[i]["text"] for i in missing])
            for i, pred in zip(missing, scored, strict=True):
                found[i] = pred
        return found

    def webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        action = body.get("action")
        if action == "START_TRAINING":
            return {"status": "ok", "action": action, "retrain": self.trigger.retrain_now()}
        if action not in ANNOTATION_ACTIONS:
            return {"status": "ignored", "action": action}
        ids = annotation_ids(body)
        return {"status": "ok", "action": action, "annotations": len(ids), **self.trigger.note(ids)}

    def train(self) -> dict[str, Any]:
        return {"retrain": self.trigger.retrain_now()}


def _basic_password(header: str) -> str:
    if not header.startswith("Basic "):
        return ""
    try:
        decoded = base64.b64decode(header.removeprefix("Basic ").strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


def _ls_prediction(pred: PredictionRow | None, version: str, gate: Any) -> dict[str, Any]:
    from pipeline.studio.labeling import prediction

    if pred is None:  # a task with no segment we know and no text to score: no codes, no confidence
        return {"model_version": version, "score": 0.0, "result": []}
    ticked, _ = gate.split(pred)
    return prediction(ticked, pred.scores, version)


class ClassifierTexts:
    """Scores texts with a classifier version, loading it once (the current version only is kept)."""

    def __init__(self, settings: Settings, codebook: Codebook):
        self.settings, self.codebook = settings, codebook
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[Any, Callable[[list[str]], Any]]] = {}

    def __call__(self, store: Store, version: str, texts: list[str]) -> list[PredictionRow]:
        from pipeline.classifier.calibration import with_calibration
        from pipeline.classifier.predict import scorer_for
        from pipeline.classifier.registry import load_model

        cfg = self.settings.classifier
        with self._lock:
            if version not in self._loaded:
                loaded = load_model(store, self.codebook, version)
                self._loaded = {
                    version: (loaded, scorer_for(loaded, cfg.runtime, cfg.inference_batch_size, cfg.max_length))
                }
            loaded, score = self._loaded[version]
            probs = score(texts)
        loaded = with_calibration(store, loaded)  # the project calibration's thresholds, when one is in force
        return [
            PredictionRow("", version, {c: round(float(p), 4) for c, p in zip(loaded.codes, row, strict=True)}, chosen)
            for row, chosen in zip(probs, loaded.decide(probs), strict=True)
        ]


# ------------------------------------------------------------------------------------------------ HTTP


def _handler(backend: ModelBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 15  # seconds an idle keep-alive connection is held, so shutdown never waits long

        def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise
            return

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> dict[str, Any] | None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = MAX_BODY + 1
            if length > MAX_BODY or length < 0:
                self.close_connection = True  # the rest of the body is never read
                return None
            try:
                body = loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return None
            return body if isinstance(body, dict) else None

        def _route(self, answer: Callable[[], dict[str, Any]], status: int = 200) -> None:
            try:
                self._send(status, answer())
            except CultureCodeError as exc:
                self._send(400, {"error": str(exc)})
            except Exception as exc:  # the server stays up; Label Studio shows the error on the project
                log.exception("request %s failed", self.path)
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path in ("", "/health"):
                self._route(backend.health)
            elif path == "/versions":
                self._route(backend.versions)
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            routes = {"/setup": backend.setup, "/predict": backend.predict, "/webhook": backend.webhook}
            body = self._body()  # read first: an unread body would be taken for the next request on the connection
            if path not in (*routes, "/train"):
                self._send(404, {"error": f"no route {self.path}"})
            elif path in ("/webhook", "/train") and not backend.authorised(self.headers):
                self._send(401, {"error": "wrong or missing shared secret"})
            elif body is None:
                self._send(400, {"error": "the body must be a JSON object"})
            elif path == "/train":
                self._route(backend.train, 201)
            else:
                self._route(lambda: routes[path](body))

    return Handler


def make_server(backend: ModelBackend, host: str = "127.0.0.1", port: int = 9090) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler(backend))
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="culturecode-serve", daemon=True)
    thread.start()
    return thread
