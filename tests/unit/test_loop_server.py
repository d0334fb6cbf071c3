"""The live model server (`culturecode serve`) without Label Studio: its ML-backend routes over real HTTP on a free
port, the shared secret, the annotation counter with its debounce, one retrain at a time, and resuming from the
workspace database after a restart. The retrain and the text scorer are fakes that record their calls."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from pipeline.config import load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.loop import connect as loop_connect
from pipeline.loop.backend import SECRET_HEADER, annotation_ids, secret_path, shared_secret
from pipeline.loop.service import start_loop
from pipeline.store import Store
from pipeline.store.loop import loop_state, note_annotation_events, take_pending
from pipeline.store.models import set_model_metric
from pipeline.store.predictions import PredictionRow
from tests import factory
from tests.conftest import FIXTURES

BOOK = load_codebook(FIXTURES / "codebook_small.yaml")


class FakeRetrain:
    """Records each retrain; `hold` keeps one running until released; tracks how many ran at once."""

    def __init__(self, hold: bool = False):
        self.calls, self.running, self.most_at_once = 0, 0, 0
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.lock = threading.Lock()

    def __call__(self) -> dict:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.release.wait(10)
        with self.lock:
            self.running -= 1
        return {"message": f"retrain {self.calls}", "model_version": f"clf-{self.calls + 1:03d}"}


class FakeScorer:
    def __init__(self):
        self.texts: list[str] = []

    def __call__(self, store, version, texts):
        self.texts += texts
        return [PredictionRow("", version, {"carrot": 0.2, "stick": 0.8}, ["stick"]) for _ in texts]


@pytest.fixture
def workspace(tmp_path):
    store = factory.make_workspace(tmp_path / "ws", BOOK, {"doc": ["He got a bed.", "He was recalled.", "Tea."]})
    factory.add_model(store, "v1", BOOK, {"doc-0": ["carrot", "stick"], "doc-1": ["stick"]})
    store.close()
    return tmp_path / "ws"


def _settings(ws, **loop):
    overrides = {"workspace": str(ws), "codebook": str(FIXTURES / "codebook_small.yaml")}
    overrides.update({f"loop.{k}": v for k, v in {"every": 3, "debounce_seconds": 0.2, **loop}.items()})
    return load_settings(overrides=overrides)


@pytest.fixture
def serve(workspace):
    started = []

    def start(retrain=None, scorer=None, **loop):
        settings = _settings(workspace, **loop)
        running = start_loop(
            settings, BOOK, port=0, connect=False, retrain=retrain or FakeRetrain(), score_texts=scorer or FakeScorer()
        )
        started.append(running)
        http = httpx.Client(base_url=running.url, timeout=10)
        return running, http, shared_secret(settings)

    yield start
    for running in started:
        running.close()


def _event(http, secret, action, *ids, key="annotation"):
    body = {"action": action, key: [{"id": i} for i in ids] if key == "annotations" or len(ids) > 1 else {"id": ids[0]}}
    return http.post("/webhook", json=body, headers={SECRET_HEADER: secret})


def _studio(secret: str) -> dict[str, str]:
    """The basic-auth header Label Studio sends on every call to an ML backend registered with the secret."""
    return {"Authorization": "Basic " + base64.b64encode(f"culturecode:{secret}".encode()).decode()}


def _pending(ws) -> int:
    with Store(ws, create=False) as store:
        return len(loop_state(store)["pending"])


def test_health_setup_and_versions_name_the_current_model(serve):
    _, http, secret = serve()
    health = http.get("/health").json()
    assert health["status"] == "UP" and health["model_version"] == "v1"
    setup = http.post("/setup", json={"project": "1.1700000000", "schema": "<View/>"}, headers=_studio(secret))
    assert setup.json() == {"model_version": "v1"}
    assert http.get("/versions", headers=_studio(secret)).json() == {"versions": ["v1"]}
    assert http.get("/nowhere").status_code == 404


def test_predict_answers_stored_predictions_through_the_gate_and_scores_unknown_text(serve, workspace):
    with Store(workspace, create=False) as store, store.transaction():
        admitted = {"enabled": True, "min_kappa": 0.4, "min_evidence": 20, "admitted": ["stick"], "measured_at": "x"}
        set_model_metric(store, "v1", "admission", admitted)
    scorer = FakeScorer()
    _, http, secret = serve(scorer=scorer)
    tasks = [
        {"id": 11, "data": {"segment_id": "doc-0", "text": "He got a bed."}},
        {"id": 12, "data": {"text": "A task culturecode never pushed."}},
        {"id": 13, "data": {"segment_id": "doc-1", "text": "He was recalled."}},
    ]
    body = {"tasks": tasks, "project": "1.1", "label_config": "<View/>"}
    answer = http.post("/predict", json=body, headers=_studio(secret)).json()
    assert answer["model_version"] == "v1" and len(answer["results"]) == 3
    first, second, third = answer["results"]
    # carrot is not admitted: only stick is pre-ticked; the prediction keeps Label Studio's shape
    assert first["result"] == [
        {"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": ["stick"]}}
    ]
    assert first["model_version"] == "v1" and 0 <= first["score"] <= 1
    assert second["result"][0]["value"]["choices"] == ["stick"] and scorer.texts == ["A task culturecode never pushed."]
    assert third["result"][0]["value"]["choices"] == ["stick"]


def test_predict_without_a_model_returns_no_results(tmp_path, serve):
    _, http, _ = serve()
    empty = factory.make_workspace(tmp_path / "empty", BOOK, {"doc": ["Tea."]})
    empty.close()
    settings = _settings(tmp_path / "empty")
    running = start_loop(settings, BOOK, port=0, connect=False, retrain=FakeRetrain())
    try:
        body = {"tasks": [{"id": 1, "data": {"text": "Tea."}}]}
        answer = httpx.post(f"{running.url}/predict", json=body, headers=_studio(shared_secret(settings))).json()
        assert answer == {"results": [], "model_version": ""}
    finally:
        running.close()


def test_a_wrong_or_missing_secret_gets_401_and_counts_nothing(serve, workspace):
    retrain = FakeRetrain()
    _, http, secret = serve(retrain=retrain, every=1)
    body = {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}}
    assert http.post("/webhook", json=body, headers={SECRET_HEADER: secret + "x"}).status_code == 401
    assert http.post("/webhook", json=body).status_code == 401
    assert http.post("/train", json={}).status_code == 401
    assert _pending(workspace) == 0 and retrain.calls == 0
    basic = base64.b64encode(f"culturecode:{secret}".encode()).decode()
    assert http.post("/webhook", json=body, headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_after_every_n_annotations_one_debounced_retrain_runs_in_the_background(serve, workspace):
    retrain = FakeRetrain()
    running, http, secret = serve(retrain=retrain, every=3)
    assert _event(http, secret, "ANNOTATION_CREATED", 1).json()["pending"] == 1
    assert _event(http, secret, "ANNOTATION_UPDATED", 1).json()["pending"] == 1  # the same annotation counts once
    assert _event(http, secret, "PROJECT_UPDATED", 9).json()["status"] == "ignored"
    second = _event(http, secret, "ANNOTATION_CREATED", 2).json()
    assert second["pending"] == 2 and second["retrain"] == "idle"
    third = _event(http, secret, "ANNOTATIONS_DELETED", 3, 4, key="annotations").json()
    assert third["pending"] == 4 and third["retrain"] == "scheduled"  # the request returned before any retrain
    _event(http, secret, "ANNOTATION_CREATED", 5)  # within the debounce: the same retrain takes it
    assert running.trigger.wait_idle(10)
    assert retrain.calls == 1
    with Store(workspace, create=False) as store:
        state = loop_state(store)
    assert state["pending"] == [] and state["retrains"] == 1
    assert state["history"][-1]["annotations"] == 5 and state["history"][-1]["message"] == "retrain 1"


def test_only_one_retrain_runs_at_a_time_and_the_next_follows(serve):
    retrain = FakeRetrain(hold=True)
    running, http, secret = serve(retrain=retrain, every=2, debounce_seconds=0)
    _event(http, secret, "ANNOTATION_CREATED", 1, 2)
    deadline = time.monotonic() + 10
    while retrain.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.trigger.state() == "running"
    answer = _event(http, secret, "ANNOTATION_CREATED", 3, 4).json()
    assert answer["pending"] == 2 and answer["retrain"] == "running"
    retrain.release.set()
    assert running.trigger.wait_idle(10)
    assert retrain.calls == 2 and retrain.most_at_once == 1


def test_a_restarted_server_resumes_the_count_and_a_killed_retrain(serve, workspace):
    first, http, secret = serve(every=3)
    _event(http, secret, "ANNOTATION_CREATED", 1, 2)
    first.close()
    retrain = FakeRetrain()
    second, http, secret = serve(retrain=retrain, every=3)
    assert second.pending == 2
    _event(http, secret, "ANNOTATION_CREATED", 3)
    assert second.trigger.wait_idle(10) and retrain.calls == 1
    second.close()

    with Store(workspace, create=False) as store:  # a retrain took 3 annotations, then its process died
        note_annotation_events(store, ["7", "8", "9"])
        assert take_pending(store) == ["7", "8", "9"]
    retrain = FakeRetrain()
    third, _, _ = serve(retrain=retrain, every=3)
    assert third.pending == 3  # given back at start, and retrained at once
    assert third.trigger.wait_idle(10) and retrain.calls == 1
    assert _pending(workspace) == 0


def test_a_failed_retrain_is_recorded_and_the_server_keeps_serving(serve, workspace):
    def broken():
        raise CultureCodeError("too few labelled segments")

    running, http, secret = serve(retrain=broken, every=1, debounce_seconds=0)
    _event(http, secret, "ANNOTATION_CREATED", 1)
    assert running.trigger.wait_idle(10)
    with Store(workspace, create=False) as store:
        assert "too few labelled segments" in loop_state(store)["history"][-1]["error"]
    assert http.get("/health").json()["status"] == "UP"


def test_train_route_starts_a_retrain_now(serve):
    retrain = FakeRetrain()
    running, http, secret = serve(retrain=retrain, every=100, debounce_seconds=30)
    assert http.post("/train", json={}, headers={SECRET_HEADER: secret}).status_code == 201
    assert running.trigger.wait_idle(10) and retrain.calls == 1


def test_the_secret_is_made_once_private_and_a_readable_one_is_refused(workspace):
    settings = _settings(workspace)
    secret = shared_secret(settings)
    path = secret_path(settings)
    assert len(secret) >= 40 and shared_secret(settings) == secret and (path.stat().st_mode & 0o777) == 0o600
    path.chmod(0o644)
    with pytest.raises(CultureCodeError, match="chmod 600"):
        shared_secret(settings)


def test_annotation_ids_reads_every_event_shape():
    assert annotation_ids({"annotation": {"id": 5}}) == ["5"]
    assert annotation_ids({"annotation": [{"id": 5}, {"id": 6}]}) == ["5", "6"]
    assert annotation_ids({"annotations": [{"id": 7}, 8]}) == ["7", "8"]
    assert annotation_ids({"task": {"id": 1}}) == []


class FakeStudio:
    """Label Studio's webhooks and ML backends as lists, through `call` like `pipeline.studio.client.Studio`."""

    def __init__(self):
        self.hooks: list = []
        self.backends: list = []
        self.updates: list = []
        self.sdk = SimpleNamespace(
            webhooks=SimpleNamespace(list=self._hooks, create=self._hook, update=self._update_hook),
            ml=SimpleNamespace(
                list=self._backends, create=self._backend, update=lambda i, **kw: self.updates.append(i)
            ),
            projects=SimpleNamespace(update=lambda i, **kw: self.updates.append(("project", i, kw))),
        )

    def call(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def _hooks(self, project):
        return [h for h in self.hooks if str(h.project) == project]

    def _hook(self, **kw):
        self.hooks.append(SimpleNamespace(id=len(self.hooks) + 1, **kw))
        return self.hooks[-1]

    def _update_hook(self, hook_id, **kw):
        self.hooks[hook_id - 1].__dict__.update(kw)

    def _backends(self, project):
        return [b for b in self.backends if b.project == project]

    def _backend(self, **kw):
        self.backends.append(SimpleNamespace(id=len(self.backends) + 1, **kw))
        return self.backends[-1]


def test_connecting_makes_the_webhook_first_then_the_backend_and_again_changes_nothing(workspace, monkeypatch):
    studio = FakeStudio()
    hook, backend = loop_connect._ensure_webhook, loop_connect._ensure_backend
    first = (
        hook(studio, 4, "http://127.0.0.1:9090/webhook", "s3cret"),
        backend(studio, 4, "http://127.0.0.1:9090", "s3cret", "v1"),
    )
    assert first == ((1, True, False), (1, True))
    made = studio.hooks[0]
    assert made.headers == {SECRET_HEADER: "s3cret"} and "ANNOTATIONS_DELETED" in made.actions and made.send_payload
    assert studio.backends[0].basic_auth_pass == "s3cret" and studio.backends[0].auth_method == "BASIC_AUTH"
    assert ("project", 4, {"model_version": "v1", "show_collab_predictions": True}) in studio.updates
    assert hook(studio, 4, "http://127.0.0.1:9090/webhook", "s3cret") == (1, False, False)
    assert backend(studio, 4, "http://127.0.0.1:9090", "s3cret", "v1") == (1, False)
    assert hook(studio, 4, "http://127.0.0.1:9090/webhook", "new") == (1, False, True)  # a new secret is sent
    assert studio.hooks[0].headers == {SECRET_HEADER: "new"} and len(studio.hooks) == 1 and len(studio.backends) == 1


def test_backend_url_is_loopback_by_default_and_public_url_wins(workspace):
    assert loop_connect.backend_url(_settings(workspace)) == "http://127.0.0.1:9090"
    assert loop_connect.backend_url(_settings(workspace, host="0.0.0.0"), 9191) == "http://127.0.0.1:9191"
    assert loop_connect.backend_url(_settings(workspace, public_url="http://ml.lan:80/")) == "http://ml.lan:80"


def test_loop_status_lists_versions_and_the_counter(workspace, serve):
    from typer.testing import CliRunner

    from pipeline.cli import app

    running, http, secret = serve(every=5)
    _event(http, secret, "ANNOTATION_CREATED", 1, 2)
    result = CliRunner().invoke(
        app,
        ["loop", "status", "--json", "-w", str(workspace), "-c", str(FIXTURES.parent.parent / "configs/pipeline.yaml")],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["pending"] == 2 and report["retrains"] == 0
    assert [v["version"] for v in report["versions"]] == ["v1"] and report["versions"][0]["current"]
    # issue 26 #9: the server that runs (a free port, every 5), not the settings' port 9090 and every 20
    assert report["server"] == {"url": running.url, "up": True, "pid": os.getpid()} and report["every"] == 5


def test_predict_gives_blind_segments_no_suggestion(serve, workspace):
    """The anchoring check's blind tasks get nothing from the server either, not even a scored text."""
    from pipeline.store.blind import blind_subset, record_blind_fraction

    with Store(workspace, create=False) as store, store.transaction():
        record_blind_fraction(store, "http://ls", 1, 1.0)  # every segment blind
        assert "doc-0" in blind_subset(store)
    scorer = FakeScorer()
    _, http, secret = serve(scorer=scorer)
    tasks = [{"id": 11, "data": {"segment_id": "doc-0", "text": "He got a bed."}}]
    answer = http.post("/predict", json={"tasks": tasks}, headers=_studio(secret)).json()
    assert answer["results"] == [{"model_version": "v1", "score": 0.0, "result": []}]
    assert scorer.texts == []
