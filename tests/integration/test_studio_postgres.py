"""Label Studio on PostgreSQL: `studio start --database` on a throwaway cluster, push/annotate/pull through it,
and annotators submitting at once while a push and a pull run (nothing lost).

The module starts its own PostgreSQL cluster (tests/pg_cluster.py, Debian's binaries; `.ci/run` installs them)
and its own Label Studio on it; it skips only where the PostgreSQL binaries are missing.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.store import open_store
from pipeline.studio import add_annotators, connect, pull, push, server, studio_status
from tests import factory, pg_cluster
from tests.integration.conftest import StudioServer, make_workspace, rows

pytestmark = pytest.mark.integration

ANNOTATORS = 8
SEGMENTS = 10  # per annotator project, annotated during the concurrent phase


@pytest.fixture(scope="module")
def pg_studio(tmp_path_factory):
    """A PostgreSQL cluster, and the embedded Label Studio started on it (`studio.database`)."""
    reason = pg_cluster.missing_reason()
    if reason:
        pytest.skip(reason)
    with pg_cluster.postgres_cluster(durable=False) as cluster:
        url = cluster.create_database("labelstudio")
        root = tmp_path_factory.mktemp("pg-studio")
        settings = load_settings(
            overrides={"workspace": str(root / "ws"), "studio.port": pg_cluster.free_port(), "studio.database": url}
        )
        info = server.start_server(settings)
        try:
            key_file = root / "api_key"
            key_file.write_text(server.credentials(settings)["api_key"] + "\n")
            key_file.chmod(0o600)
            yield StudioServer(info.url, server.credentials(settings)["api_key"], settings, key_file), cluster
        finally:
            server.stop_server(settings)


def test_studio_runs_on_postgresql_and_never_shows_the_password(pg_studio):
    srv, cluster = pg_studio
    info = server.server_status(srv.settings)
    assert info.running and info.database == f"postgresql://postgres:***@{cluster.host}:{cluster.port}/labelstudio"
    report = studio_status(srv.settings)
    assert report["running"] and report["database"] == info.database
    import psycopg

    with psycopg.connect(f"{cluster.url('labelstudio')}") as conn:  # Label Studio's tables live in PostgreSQL
        assert conn.execute("SELECT count(*) FROM htx_user").fetchone()[0] >= 1
    assert not (Path(srv.settings.workspace) / "studio" / "label_studio.sqlite3").exists()
    for path in (Path(srv.settings.workspace) / "studio").rglob("*"):
        if path.is_file():
            assert cluster.password not in path.read_text(errors="replace"), path.name
    assert cluster.password not in json.dumps(report) + json.dumps(srv.settings.model_dump())


def test_start_reports_an_unreachable_server_or_a_missing_database_in_one_line(pg_studio, tmp_path, cli):
    _, cluster = pg_studio
    missing = cluster.url("no_such_db")
    port = pg_cluster.free_port()
    closed = f"postgresql://postgres:secret@127.0.0.1:{pg_cluster.free_port()}/labelstudio"
    for url, expected in ((missing, 'has no database "no_such_db"'), (closed, "cannot reach PostgreSQL")):
        result = cli("studio", "start", "--workspace", tmp_path / "ws", "--port", str(port), "--database", url)
        assert result.exit_code == 2 and expected in result.output, result.output
        assert cluster.password not in result.output and "secret" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def annotate(http, task_id: int, codes: list[str]) -> None:
    result = [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": codes}}]
    resp = http.post(f"/api/tasks/{task_id}/annotations/", json={"result": result, "lead_time": 3.0})
    assert resp.status_code == 201, resp.text


def _team(srv: StudioServer, workspace: Path, n: int):
    """A workspace pushed to `n` annotators (one project each): (store, settings, codebook, annotators)."""
    store = make_workspace(workspace, n_docs=2, turns=SEGMENTS // 2)
    settings = srv.workspace_settings(workspace)
    book = settings.load_codebook()
    people = add_annotators(connect(settings), settings, [f"pg-{uuid.uuid4().hex[:8]}" for _ in range(n)])
    push(store, settings, book, annotators=[p.email for p in people], show_progress=False)
    return store, settings, book, people


def _tasks_by_annotator(store) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    sql = "SELECT p.annotator, t.task_id FROM tasks t JOIN studio_projects p ON p.id = t.project_id"
    for r in rows(store, sql + " AND p.server_url = t.server_url"):
        found.setdefault(r[0], []).append(r[1])
    return found


def test_push_annotate_pull_through_postgresql(pg_studio, tmp_path):
    srv, _ = pg_studio
    store, settings, book, people = _team(srv, tmp_path / "ws", 2)
    tasks = _tasks_by_annotator(store)
    for person, codes in zip(people, (["carrot"], ["carrot", "stick"]), strict=True):
        http = srv.login(person.email, person.password)
        for task_id in tasks[person.email][:3]:
            annotate(http, task_id, codes)
    report = pull(store, settings, book, show_progress=False)
    assert (report.new, report.warnings) == (6, [])
    got = {(r["annotator"], tuple(json.loads(r["codes"]))) for r in rows(store, "SELECT * FROM annotations")}
    assert got == {(people[0].email, ("carrot",)), (people[1].email, ("carrot", "stick"))}
    assert pull(store, settings, book, show_progress=False).new == 0


def test_annotators_submitting_at_once_during_a_push_and_a_pull_lose_nothing(pg_studio, tmp_path):
    srv, _ = pg_studio
    workspace = tmp_path / "ws"
    store, settings, book, people = _team(srv, workspace, ANNOTATORS)
    tasks = _tasks_by_annotator(store)
    sessions = {p.email: srv.login(p.email, p.password) for p in people}
    factory.add_documents(store, {"late": [f"Late turn {t}: a bed at the hostel." for t in range(3)]})
    errors: list[BaseException] = []
    submitted: list[int] = []
    start = threading.Barrier(ANNOTATORS + 2)

    def guarded(fn):
        def run():
            try:
                start.wait()
                fn()
            except BaseException as exc:  # collected and asserted below: a thread's failure must fail the test
                errors.append(exc)

        return threading.Thread(target=run)

    def annotator(email: str):
        def work():
            for task_id in tasks[email]:
                annotate(sessions[email], task_id, ["carrot"])
                submitted.append(task_id)

        return work

    def push_more():
        with open_store(workspace) as own:
            report = push(own, settings, book, annotators=[p.email for p in people], show_progress=False)
            assert report.imported == 3 * ANNOTATORS

    def pull_meanwhile():
        with open_store(workspace) as own:
            pull(own, settings, book, show_progress=False)

    threads = [guarded(annotator(p.email)) for p in people] + [guarded(push_more), guarded(pull_meanwhile)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == [] and not any(t.is_alive() for t in threads)
    pull(store, settings, book, show_progress=False)
    in_studio = sum(p["annotations"] for p in studio_status(settings, store)["projects"])
    pulled = store.count("annotations")
    assert (len(submitted), in_studio, pulled) == (ANNOTATORS * SEGMENTS,) * 3
    assert store.count("tasks") == ANNOTATORS * (SEGMENTS + 3)
