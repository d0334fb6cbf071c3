"""The bad-input harness's HTTP section for `culturecode serve` (issue 26 #5): every malformed, unauthorised or
oversized request gets a 4xx JSON answer and leaves the workspace database as it was; every route but /health needs
the shared secret; at most `loop.workers` requests are handled at once (the next gets 503); a secret shorter than
32 characters is refused. Requests go over a raw socket, so nothing is normalised on the way."""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import dataclass

import pytest

from pipeline.config import load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.loop import backend as loop_backend
from pipeline.loop.backend import SECRET_HEADER, secret_path, shared_secret
from pipeline.loop.service import start_loop
from pipeline.store import DB_NAME, Store
from pipeline.store.loop import loop_state
from pipeline.store.predictions import PredictionRow
from tests import factory
from tests.conftest import FIXTURES, table_dump

BOOK = load_codebook(FIXTURES / "codebook_small.yaml")
MAX_TASKS = 5
MAX_BYTES = 10_000  # loop.max_request_mb below


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def raw(url: str, request: bytes) -> Answer:
    """Send `request` as is and read the answer until the server closes the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(request)
        except OSError:  # the server answered and closed before reading all of an oversized request
            pass
        data = b""
        while chunk := _recv(sock):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return Answer(int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def request(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body is not None and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"culturecode:{secret}".encode()).decode()}


@pytest.fixture
def server(tmp_path):
    store = factory.make_workspace(tmp_path / "ws", BOOK, {"doc": ["He got a bed.", "Tea."]})
    factory.add_model(store, "v1", BOOK, {"doc-0": ["stick"]})
    store.close()
    settings = load_settings(
        overrides={
            "workspace": str(tmp_path / "ws"),
            "codebook": str(FIXTURES / "codebook_small.yaml"),
            "loop.max_tasks": MAX_TASKS,
            "loop.max_request_mb": MAX_BYTES / 2**20,
            "loop.workers": 2,
            "loop.every": 1000,
        }
    )

    def score(store, version, texts):
        return [PredictionRow("", version, {"carrot": 0.1, "stick": 0.9}, ["stick"]) for _ in texts]

    running = start_loop(settings, BOOK, port=0, connect=False, retrain=lambda: {"message": "fake"}, score_texts=score)
    yield running, shared_secret(settings), tmp_path / "ws"
    running.close()


def _state(ws):
    with Store(ws, create=False) as store:
        return table_dump(ws / DB_NAME, ("predictions", "annotations", "gold", "models", "meta", "runs")), loop_state(
            store
        )


def _tasks(n: int) -> bytes:
    return json.dumps({"tasks": [{"id": i, "data": {"text": "Tea."}} for i in range(n)]}).encode()


JSON = {"Content-Type": "application/json"}
# (name, request builder given the secret, expected status)
ROWS = [
    ("versions without the secret", lambda s: request("GET", "/versions"), 401),
    ("predict without the secret", lambda s: request("POST", "/predict", _tasks(1), JSON), 401),
    ("setup without the secret", lambda s: request("POST", "/setup", b"{}", JSON), 401),
    ("train with a wrong secret", lambda s: request("POST", "/train", b"{}", basic("x" * 43)), 401),
    ("webhook with a wrong header", lambda s: request("POST", "/webhook", b"{}", {SECRET_HEADER: "nope"}), 401),
    ("tasks is a number", lambda s: request("POST", "/predict", b'{"tasks": 5}', basic(s)), 400),
    ("tasks are not objects", lambda s: request("POST", "/predict", b'{"tasks": [1, 2]}', basic(s)), 400),
    ("data is not an object", lambda s: request("POST", "/predict", b'{"tasks": [{"data": "x"}]}', basic(s)), 400),
    (
        "a lone surrogate",
        lambda s: request("POST", "/predict", b'{"tasks": [{"data": {"text": "\\ud800"}}]}', basic(s)),
        400,
    ),
    ("too many tasks", lambda s: request("POST", "/predict", _tasks(MAX_TASKS + 1), basic(s)), 413),
    ("a body over the limit", lambda s: request("POST", "/predict", b" " * (MAX_BYTES + 1), basic(s)), 413),
    ("not JSON", lambda s: request("POST", "/webhook", b"{nope", basic(s)), 400),
    ("a JSON list", lambda s: request("POST", "/webhook", b"[]", basic(s)), 400),
    ("action is a number", lambda s: request("POST", "/webhook", b'{"action": 5}', basic(s)), 400),
    (
        "a bad Content-Length",
        lambda s: request("POST", "/webhook", None, {**basic(s), "Content-Length": "abc"}),
        400,
    ),
    (
        "a chunked body",
        lambda s: request(
            "POST",
            "/webhook",
            b'40\r\n{"action": "ANNOTATION_CREATED", "annotation": {"id": 77}}      \r\n0\r\n\r\n',
            {**basic(s), "Transfer-Encoding": "chunked"},
        ),
        411,
    ),
    ("PUT", lambda s: request("PUT", "/predict", b"{}", basic(s)), 405),
    ("DELETE", lambda s: request("DELETE", "/webhook", None, basic(s)), 405),
    ("an unknown method", lambda s: request("BREW", "/predict", None, basic(s)), 405),
    ("a huge URL", lambda s: request("GET", "/health?" + "a" * 70_000), 414),
    ("a huge header", lambda s: request("GET", "/health", None, {"X-Big": "a" * 70_000}), 431),
    ("an unknown route", lambda s: request("POST", "/nowhere", b"{}", basic(s)), 404),
]


@pytest.mark.parametrize(("name", "build", "status"), ROWS, ids=[r[0] for r in ROWS])
def test_a_malformed_request_gets_a_4xx_json_answer_and_changes_nothing(server, name, build, status):
    running, secret, ws = server
    before = _state(ws)
    answer = raw(running.url, build(secret))
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.headers["content-type"] == "application/json" and "error" in answer.json()
    assert "Traceback" not in answer.json()["error"] and "<html" not in answer.body.decode().lower()
    assert _state(ws) == before
    assert raw(running.url, request("GET", "/health")).status == 200  # still serving


def test_the_routes_answer_label_studios_basic_auth_and_health_needs_none(server):
    running, secret, _ = server
    assert raw(running.url, request("GET", "/health")).json()["status"] == "UP"
    assert raw(running.url, request("GET", "/versions", None, basic(secret))).json() == {"versions": ["v1"]}
    predicted = raw(running.url, request("POST", "/predict", _tasks(MAX_TASKS), basic(secret)))
    assert predicted.status == 200 and len(predicted.json()["results"]) == MAX_TASKS


def test_an_annotation_id_of_true_is_not_an_annotation(server):
    running, secret, ws = server
    body = json.dumps({"action": "ANNOTATION_CREATED", "annotations": [{"id": True}, True, {"id": 3}]}).encode()
    answer = raw(running.url, request("POST", "/webhook", body, basic(secret)))
    assert answer.status == 200 and answer.json()["annotations"] == 1
    assert _state(ws)[1]["pending"] == ["3"]


def test_requests_beyond_the_workers_get_503_until_one_is_free(server, monkeypatch):
    running, secret, _ = server
    monkeypatch.setattr(loop_backend, "BUSY_WAIT", 0.2)
    host, port = running.url.removeprefix("http://").split(":")
    stalled = [socket.create_connection((host, int(port))) for _ in range(2)]  # workers = 2
    try:
        for sock in stalled:  # half a request: each holds a worker while it waits for the rest
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\n")
        busy = raw(running.url, request("GET", "/health"))
        assert busy.status == 503 and busy.json()["error"].startswith("the model server is busy")
    finally:
        for sock in stalled:
            sock.close()
    for _ in range(100):  # the stalled requests end as their clients go; then a worker is free again
        if raw(running.url, request("GET", "/health")).status == 200:
            break
    else:
        raise AssertionError("no worker came free")


def test_a_secret_shorter_than_32_characters_is_refused(tmp_path):
    settings = load_settings(overrides={"workspace": str(tmp_path / "ws")})
    path = secret_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text("x\n")
    path.chmod(0o600)
    with pytest.raises(CultureCodeError, match="fewer than 32"):
        shared_secret(settings)
