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
- `POST /train` (Label Studio's "Start training"): starts a retrain now.

Every route but `/health` needs the shared secret (at least 32 characters): in the `X-CultureCode-Secret` header
(the webhooks `serve` registers send it) or as the password of HTTP basic auth (the ML backend `serve` registers
uses it, and Label Studio sends it on every call); a wrong or missing one gets 401 and changes nothing.

Limits (issue 26 #5): `loop.workers` requests are handled at once (the rest wait a few seconds, then get 503), one
request per connection, `loop.max_request_mb` per body and `loop.max_tasks` per /predict (413 beyond). Every
malformed request gets a 4xx JSON answer: a body that is not a JSON object or has the wrong shape, text that is
not valid Unicode, a chunked body (411: send a Content-Length), another method (405), an oversized request line
or header (the standard library's checks, answered in JSON).
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
from pipeline.jsontext import loads, send_json
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
MIN_SECRET = 32  # characters of the shared secret (the one made here has 43)
BUSY_WAIT = 5.0  # seconds a request waits for a free worker before it gets 503
READ_TIMEOUT = 15  # seconds each read of a request may take


class RequestError(CultureCodeError):
    """A request the server refuses: its HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


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
    if len(value) < MIN_SECRET:
        raise CultureCodeError(
            f"the secret in {path} has {len(value)} characters, fewer than {MIN_SECRET}: guessable; delete the file "
            f"and a new random one is made (or write one of at least {MIN_SECRET} characters)"
        )
    return value


def annotation_ids(body: dict[str, Any]) -> list[str]:
    """The Label Studio ids of the annotations a webhook event is about."""
    found: list[str] = []
    for key in ("annotation", "annotations"):
        value = body.get(key)
        items = value if isinstance(value, list) else [value] if value is not None else []
        for item in items:
            ident = item.get("id") if isinstance(item, dict) else item
            if isinstance(ident, (int, str)) and not isinstance(ident, bool) and str(ident):
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

        tasks = _tasks(body, self.settings.loop.max_tasks)
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
        if action is not None and not isinstance(action, str):
            raise RequestError(400, "'action' must be a text")
        if action == "START_TRAINING":
            return {"status": "ok", "action": action, "retrain": self.trigger.retrain_now()}
        if action not in ANNOTATION_ACTIONS:
            return {"status": "ignored", "action": action}
        ids = annotation_ids(body)
        return {"status": "ok", "action": action, "annotations": len(ids), **self.trigger.note(ids)}

    def train(self) -> dict[str, Any]:
        return {"retrain": self.trigger.retrain_now()}


def _tasks(body: dict[str, Any], most: int) -> list[dict[str, Any]]:
    """The tasks of a /predict body: a list of objects, each with an object `data` (or none), at most `most`."""
    tasks = body.get("tasks")
    if tasks is None:
        return []
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise RequestError(400, "'tasks' must be a list of task objects")
    if len(tasks) > most:
        raise RequestError(413, f"{len(tasks)} tasks in one request; at most {most} (loop.max_tasks)")
    if not all(isinstance(t.get("data", {}), dict) for t in tasks):
        raise RequestError(400, "each task's 'data' must be an object")
    return tasks


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
    max_body = int(backend.settings.loop.max_request_mb * 1024 * 1024)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = READ_TIMEOUT  # each read of the request; a stalled client frees its worker

        def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise
            return

        def _send(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
            # one request per connection: a worker is never held by an idle client
            send_json(self, status, payload, extra, close=True)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """The standard library's own refusals (a bad request line, an oversized URL or header, an unknown
            method) in JSON instead of its HTML page; an unsupported method is 405."""
            code = 405 if code == 501 else code
            self._send(code, {"error": message or self.responses.get(code, ("error",))[0]})

        def _body(self) -> dict[str, Any]:
            if self.headers.get("Transfer-Encoding"):
                raise RequestError(411, "send the body with a Content-Length (a chunked body is not read)")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise RequestError(400, "Content-Length is not a number") from None
            if length < 0:
                raise RequestError(400, "Content-Length is negative")
            if length > max_body:
                raise RequestError(413, f"the body has {length} bytes; at most {max_body} (loop.max_request_mb)")
            try:
                raw = self.rfile.read(length)
            except TimeoutError:
                raise RequestError(408, f"the body did not arrive within {READ_TIMEOUT} s") from None
            try:
                body = loads(raw or b"{}")
                json.dumps(body, ensure_ascii=False).encode("utf-8")  # lone surrogates ("\\ud800") are no text
            except (ValueError, UnicodeEncodeError):
                raise RequestError(400, "the body must be a JSON object of valid Unicode text") from None
            if not isinstance(body, dict):
                raise RequestError(400, "the body must be a JSON object")
            return body

        def _route(self, answer: Callable[[], dict[str, Any]], status: int = 200) -> None:
            try:
                self._send(status, answer())
            except RequestError as exc:
                self._send(exc.status, {"error": str(exc)})
            except CultureCodeError as exc:
                self._send(400, {"error": str(exc)})
            except Exception as exc:  # the server stays up; Label Studio shows the error on the project
                log.exception("request %s failed", self.path)
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

        def _authorised(self) -> bool:
            if backend.authorised(self.headers):
                return True
            self._send(
                401, {"error": "wrong or missing shared secret"}, {"WWW-Authenticate": 'Basic realm="culturecode"'}
            )
            return False

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path in ("", "/health"):
                self._route(backend.health)
            elif path != "/versions":
                self._send(404, {"error": f"no route {path[:200]}"})
            elif self._authorised():
                self._route(backend.versions)

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
                "/setup": backend.setup,
                "/predict": backend.predict,
                "/webhook": backend.webhook,
                "/train": lambda body: backend.train(),
            }
            if path not in routes:  # the body is never read: the connection closes after the answer
                self._send(404, {"error": f"no route {path[:200]}"})
            elif self._authorised():
                self._route(lambda: routes[path](self._body()), 201 if path == "/train" else 200)

        def _not_allowed(self) -> None:
            self._send(405, {"error": f"method {self.command} is not allowed"}, {"Allow": "GET, POST"})

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _not_allowed

    return Handler


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with at most `workers` requests handled at once: a request that finds none free within
    BUSY_WAIT seconds gets 503 (the standard library's starts a thread for every connection)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], workers: int):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(workers)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(timeout=BUSY_WAIT):
            _answer_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _answer_busy(request: Any) -> None:
    body = json.dumps({"error": "the model server is busy; try again"}).encode()
    head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    try:
        request.sendall((head + "Connection: close\r\nRetry-After: 1\r\n\r\n").encode() + body)
    except OSError:
        pass


def make_server(backend: ModelBackend, host: str = "127.0.0.1", port: int = 9090) -> ThreadingHTTPServer:
    return BoundedHTTPServer((host, port), _handler(backend), backend.settings.loop.workers)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="culturecode-serve", daemon=True)
    thread.start()
    return thread
