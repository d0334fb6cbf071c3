"""Faults and bad input: unreachable server, bad keys, busy port, things deleted on the server,
codes outside the codebook, a push killed halfway, a server restart during a push."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest

from pipeline.errors import CultureCodeError
from pipeline.studio import connect, pull, push, server
from tests.factory import free_port
from tests.integration.conftest import make_workspace, rows
from tests.integration.test_studio_push_pull import annotate, task_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def admin_session(studio_server):
    email = studio_server.settings.studio.username
    return studio_server.login(email, studio_server.password(email))


def one_task_per_segment(settings, store, project_id: int) -> None:
    tasks = list(
        connect(settings).sdk.tasks.list(project=project_id, fields="task_only", page_size=1000, include="id,data")
    )
    assert sorted(t.data["segment_id"] for t in tasks) == sorted(s.id for s in store.segments())
    ledger = {
        (r["segment_id"], r["task_id"]) for r in rows(store, "SELECT * FROM tasks WHERE project_id = ?", (project_id,))
    }
    assert ledger == {(t.data["segment_id"], t.id) for t in tasks}


def test_unreachable_server_retries_then_says_what_to_run(studio_server, tmp_path, codebook):
    settings = studio_server.workspace_settings(
        tmp_path / "ws", **{"studio.url": f"http://127.0.0.1:{free_port()}", "studio.retries": 2}
    )
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=1)
    started = time.monotonic()
    with pytest.raises(CultureCodeError, match=r"cannot reach Label Studio at .* after 3 tries.*server is up"):
        push(store, settings, codebook, show_progress=False)
    assert time.monotonic() - started >= 1.5  # backed off 0.5 s + 1 s between the tries
    embedded = make_workspace(tmp_path / "emb", n_docs=1, turns=1)
    emb_settings = studio_server.workspace_settings(tmp_path / "emb", **{"studio.url": None})
    with pytest.raises(CultureCodeError, match="culturecode studio start"):
        push(embedded, emb_settings, codebook, show_progress=False)


def test_wrong_and_expired_keys_are_refused_without_showing_them(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=1)
    bad = tmp_path / "bad_key"
    bad.write_text("not-a-real-token-0123456789")
    bad.chmod(0o600)
    settings = studio_server.workspace_settings(tmp_path / "ws", **{"studio.api_key_file": str(bad)})
    with pytest.raises(CultureCodeError, match="refused the API key") as caught:
        push(store, settings, codebook, show_progress=False)
    assert "not-a-real-token" not in str(caught.value)
    expired = jwt.encode({"exp": int(time.time()) - 3600, "token_type": "refresh", "user_id": 1}, "x" * 32)
    os.environ["CULTURECODE_TEST_EXPIRED_KEY"] = expired
    try:
        settings = studio_server.workspace_settings(
            tmp_path / "ws", **{"studio.api_key_env": "CULTURECODE_TEST_EXPIRED_KEY"}
        )
        with pytest.raises(CultureCodeError, match="expired") as caught:
            push(store, settings, codebook, show_progress=False)
        assert expired not in str(caught.value)
    finally:
        del os.environ["CULTURECODE_TEST_EXPIRED_KEY"]
    bad.chmod(0o644)
    settings = studio_server.workspace_settings(tmp_path / "ws", **{"studio.api_key_file": str(bad)})
    with pytest.raises(CultureCodeError, match="chmod 600"):
        push(store, settings, codebook, show_progress=False)


def test_port_taken_by_another_program_is_reported(tmp_path):
    from pipeline.config import load_settings

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = load_settings(overrides={"workspace": str(tmp_path / "ws"), "studio.port": port})
        with pytest.raises(CultureCodeError, match=f"port {port} .* taken by another program.*--port"):
            server.start_server(settings)
    assert not server.server_status(settings).running


def test_project_deleted_on_server_is_recreated_and_pull_keeps_its_annotations(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=3)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    annotate(admin_session(studio_server), task_for(store, pid, store.segments()[0].id), ["carrot"])
    pull(store, settings, codebook, show_progress=False)
    connect(settings).sdk.projects.delete(pid)
    report = pull(store, settings, codebook, show_progress=False)
    assert report.changed == 0 and "deleted on the server" in report.warnings[0]
    assert len(rows(store, "SELECT * FROM annotations WHERE deleted = 0")) == 1
    again = push(store, settings, codebook, show_progress=False).projects[0]
    assert again.recreated and again.id != pid and again.imported == 3
    one_task_per_segment(settings, store, again.id)


def test_task_deleted_on_server_marks_its_annotation_and_is_reimported(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=3)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    seg = store.segments()[1].id
    task = task_for(store, pid, seg)
    annotate(admin_session(studio_server), task, ["stick"])
    pull(store, settings, codebook, show_progress=False)
    connect(settings).sdk.tasks.delete(task)
    assert pull(store, settings, codebook, show_progress=False).deleted == 1
    report = push(store, settings, codebook, show_progress=False).projects[0]
    assert (report.vanished, report.imported) == (1, 1)
    one_task_per_segment(settings, store, pid)


def test_annotation_with_a_code_outside_the_codebook_is_refused(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=2)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    http = admin_session(studio_server)
    annotate(http, task_for(store, pid, store.segments()[0].id), ["carrot"])
    annotate(http, task_for(store, pid, store.segments()[1].id), ["banana"])
    with pytest.raises(CultureCodeError, match=r"annotation \d+ on task \d+ of project \d+.*unknown code\(s\) banana"):
        pull(store, settings, codebook, show_progress=False)
    assert store.count("annotations") == 0  # all or nothing


def test_duplicates_and_unrecorded_tasks_are_reconciled(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=1, turns=4)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    pid = push(store, settings, codebook, show_progress=False).projects[0].id
    studio = connect(settings)
    (twin,) = [
        t
        for t in studio.sdk.tasks.list(project=pid, fields="task_only", include="id,data")
        if t.data["segment_id"] == store.segments()[0].id
    ]
    studio.sdk.projects.import_tasks(pid, request=[{"data": twin.data}])  # a duplicate on the server
    with store.transaction():
        store.conn.execute("DELETE FROM tasks WHERE segment_id = ?", (store.segments()[2].id,))  # forgotten
    report = push(store, settings, codebook, show_progress=False).projects[0]
    assert (report.duplicates_removed, report.adopted, report.imported) == (1, 1, 0)
    one_task_per_segment(settings, store, pid)


@pytest.mark.slow
def test_push_killed_halfway_and_rerun_ends_with_one_task_per_segment(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=6, turns=50)
    settings = studio_server.workspace_settings(tmp_path / "ws")
    cmd = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "push",
        "--workspace",
        str(tmp_path / "ws"),
        "--codebook",
        settings.codebook,
        "--url",
        studio_server.url,
        "--batch-size",
        "20",
        "--quiet",
    ]
    env = {**os.environ, "CULTURECODE_TEST_KEY": studio_server.api_key}
    config = tmp_path / "pipeline.yaml"
    config.write_text("studio:\n  api_key_env: CULTURECODE_TEST_KEY\n")
    proc = subprocess.Popen(cmd + ["--config", str(config)], cwd=ROOT, env=env)
    studio = connect(settings)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        projects = rows(store, "SELECT id FROM studio_projects")
        if projects and studio.sdk.projects.get(projects[0][0]).task_number >= 40:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    pid = rows(store, "SELECT id FROM studio_projects")[0][0]
    assert 0 < studio.sdk.projects.get(pid).task_number < 300, "the push was not interrupted halfway"
    report = push(store, settings, codebook, show_progress=False).projects[0]
    assert report.id == pid and report.tasks == 300 and report.imported < 300
    one_task_per_segment(settings, store, pid)


@pytest.mark.slow
def test_server_restarted_during_push(studio_server, tmp_path, codebook):
    store = make_workspace(tmp_path / "ws", n_docs=10, turns=40)
    settings = studio_server.workspace_settings(tmp_path / "ws", **{"studio.batch_size": 10, "studio.retries": 12})
    pid = push(store, settings, codebook, segment_ids=[store.segments()[0].id], show_progress=False).projects[0].id
    studio = connect(settings)
    stopped: list[float] = []

    def restart_when_busy():
        while studio.sdk.projects.get(pid).task_number < 20:
            time.sleep(0.05)
        server.stop_server(studio_server.settings)
        stopped.append(time.monotonic())
        server.start_server(studio_server.settings)

    thread = threading.Thread(target=restart_when_busy, daemon=True)
    thread.start()
    report = push(store, settings, codebook, show_progress=False).projects[0]
    finished = time.monotonic()
    thread.join(timeout=300)
    assert stopped and stopped[0] < finished, "the server was not restarted during the push"
    assert report.tasks == 400
    one_task_per_segment(settings, store, pid)
