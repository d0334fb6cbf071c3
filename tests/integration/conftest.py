"""One real Label Studio for the whole test run, and small workspaces that talk to it.

`studio_server` starts the server culturecode ships (`culturecode studio start` code path) on a
free port with a temporary data dir. Tests reach it like a team server (`--url` and a chmod-600
key file), so both ways of connecting are exercised. Set CULTURECODE_TEST_STUDIO_WORKSPACE to
the workspace of an already running embedded server to reuse it while developing.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pipeline.config import Settings, load_codebook, load_settings
from pipeline.store import Store
from pipeline.studio import server
from tests import factory
from tests.factory import free_port

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
_SHARED: dict[str, "StudioServer"] = {}


@dataclass
class StudioServer:
    url: str
    api_key: str
    settings: Settings  # the embedded server's own settings (to restart it in fault tests)
    key_file: Path

    def workspace_settings(self, workspace_path: Path | str, **overrides) -> Settings:
        """Settings for a workspace that uses this server through --url and a 0600 key file."""
        base = {
            "workspace": str(workspace_path),
            "codebook": str(FIXTURES / "codebook_small.yaml"),
            "studio.url": self.url,
            "studio.api_key_file": str(self.key_file),
            "studio.api_key_env": "CULTURECODE_TEST_UNSET_KEY",
            "studio.retries": 3,
            # these tests are about push mechanics: every predicted code is pre-ticked unless a test
            # turns admission on (tests/integration/test_admission_studio.py)
            "admission.enabled": False,
        }
        return load_settings(overrides={**base, **overrides})

    def password(self, email: str) -> str:
        creds = server.credentials(self.settings) or {}
        return creds["password"] if email == creds.get("username") else creds["annotators"][email]

    def login(self, email: str, password: str) -> httpx.Client:
        """A browser-like session of one user (cookie + CSRF header) for acting as an annotator."""
        http = httpx.Client(base_url=self.url, timeout=60)
        http.get("/user/login/")
        csrf = http.cookies.get("csrftoken")
        resp = http.post(
            "/user/login/",
            data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{self.url}/user/login/"},
        )
        assert resp.status_code in (200, 302), resp.status_code
        http.headers["X-CSRFToken"] = http.cookies.get("csrftoken") or csrf
        http.headers["Referer"] = self.url
        assert http.get("/api/current-user/whoami").json()["email"] == email
        return http


def _start(tmp_path_factory) -> tuple[StudioServer, bool]:
    reuse = os.environ.get("CULTURECODE_TEST_STUDIO_WORKSPACE")
    if reuse:
        state = json.loads((Path(reuse) / "studio" / server.STATE).read_text())
        settings = load_settings(overrides={"workspace": reuse, "studio.port": state["port"]})
        owned = False
    else:
        root = tmp_path_factory.mktemp("studio-server")
        settings = load_settings(overrides={"workspace": str(root / "ws"), "studio.port": free_port()})
        owned = True
    info = server.start_server(settings)
    key = server.credentials(settings)["api_key"]
    key_file = tmp_path_factory.mktemp("studio-key") / "api_key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return StudioServer(info.url, key, settings, key_file), owned


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory):
    """ONE real Label Studio per test session (shared by tests/integration and tests/e2e)."""
    if "server" in _SHARED:
        yield _SHARED["server"]
        return
    srv, owned = _start(tmp_path_factory)
    _SHARED["server"] = srv
    yield srv
    if owned:
        server.stop_server(srv.settings)


def make_workspace(path: Path, n_docs: int = 2, turns: int = 4, model_version: str | None = "v1") -> Store:
    """A workspace with `n_docs` x `turns` segments and (optionally) predictions of one model."""
    book = load_codebook(FIXTURES / "codebook_small.yaml")
    documents = {
        f"doc{d}": [f"Turn {t} of document {d}: he got a bed at the hostel." for t in range(turns)]
        for d in range(n_docs)
    }
    store = factory.make_workspace(path, book, documents, speaker=lambda t: "Officer" if t % 2 else "Researcher")
    if model_version:
        add_model(store, model_version, book.content_hash, current=True)
    return store


def add_model(
    store: Store,
    version: str,
    codebook_hash: str,
    current: bool = True,
    codes_for=lambda i: ["carrot"] if i % 2 else ["stick"],
    rationale: str | None = None,
    kind: str = "classifier",
) -> None:
    """A model whose codes for the i-th segment (in document order) are `codes_for(i)`."""
    codes = {seg.id: codes_for(i) for i, seg in enumerate(store.segments())}
    factory.add_model(store, version, codebook_hash, codes, kind=kind, current=current, rationale=rationale)


def rows(store: Store, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    return store.conn.execute(sql, params).fetchall()


@pytest.fixture
def codebook():
    return load_codebook(FIXTURES / "codebook_small.yaml")
