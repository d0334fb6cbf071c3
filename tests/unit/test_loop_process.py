"""`studio start` can run `culturecode serve` in the background (loop.start_with_studio); `studio stop` stops it."""

from __future__ import annotations

import os
import socket

import httpx
import pytest

from pipeline.config import load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.loop.process import PID_FILE, start_background_server, stop_background_server
from tests import factory
from tests.conftest import FIXTURES
from tests.factory import free_port

BOOK = FIXTURES / "codebook_small.yaml"


def _settings(ws, port, **extra):
    return load_settings(
        overrides={"workspace": str(ws), "codebook": str(BOOK), "loop.port": port, "studio.port": free_port(), **extra}
    )


@pytest.fixture
def workspace(tmp_path):
    store = factory.make_workspace(tmp_path / "ws", load_codebook(BOOK), {"doc": ["He got a bed.", "Tea."]})
    store.close()
    return tmp_path / "ws"


def test_a_background_server_answers_until_stopped_and_a_second_start_reuses_it(workspace):
    settings = _settings(workspace, free_port())
    first = start_background_server(settings, connect=False)
    try:
        assert first.started and httpx.get(f"{first.url}/health", timeout=5).json()["status"] == "UP"
        again = start_background_server(settings, connect=False)
        assert not again.started and again.pid == first.pid
    finally:
        assert stop_background_server(settings)
    assert not (workspace / PID_FILE).exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{first.url}/health", timeout=2)
    assert not stop_background_server(settings)  # nothing left to stop


def test_a_server_that_cannot_start_is_reported_with_its_log(workspace):
    with socket.socket() as taken:  # another program holds the port, so the server exits while starting
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = _settings(workspace, taken.getsockname()[1])
        try:
            with pytest.raises(CultureCodeError, match="exited while starting") as raised:
                start_background_server(settings, connect=False, timeout=90)
        finally:
            stop_background_server(settings)
    assert "serve.log" in str(raised.value) and "cannot listen" in str(raised.value)
    assert not (workspace / PID_FILE).exists()


def test_a_recycled_pid_is_never_signalled(workspace):
    settings = _settings(workspace, free_port())
    (workspace / PID_FILE).write_text(f"{os.getpid()}\n")  # this test process: alive, but not a model server
    assert not stop_background_server(settings)
