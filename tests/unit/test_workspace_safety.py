"""The workspace keeps its data safe (issue 12): damaged databases are reported and left alone, backups are taken
and restored, a moved workspace keeps its models, files are private, killed runs are marked interrupted, and
the Label Studio password is printed once. The corrupt-database rows of the bad-input harness live in
tests/unit/test_bad_input_harness.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config import load_codebook
from pipeline.store import DB_NAME, Store, db
from pipeline.store.backup import (
    STAMP,
    DamagedDatabaseError,
    DefaultBackups,
    list_backups,
    restore,
    take_backup,
)
from pipeline.store.segments import count_segments
from tests.factory import make_workspace
from tests.unit.test_classifier_helpers import CODEBOOK, add_segments, examples, tiny_encoder, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _workspace(path: Path, turns: int = 60) -> Path:
    make_workspace(path, None, {"doc_a": [f"Turn {p} of the first document." for p in range(turns)]}).close()
    return path


def _write(store: Store) -> None:
    with store.transaction():
        store.set_meta("touched", datetime.now(UTC).isoformat())


def _age(backup: Path, days: float) -> Path:
    """Rename a backup as if it had been taken `days` ago (its name holds the time)."""
    older = backup.with_name(f"culturecode-{datetime.now(UTC) - timedelta(days=days):{STAMP}}.db")
    backup.rename(older)
    return older


def _damage_a_page(db_file: Path) -> None:
    """Random bytes over one page in the middle: the header and size stay plausible."""
    data = bytearray(db_file.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = os.urandom(4096)
    db_file.write_bytes(bytes(data))


# ------------------------------------------------------------------ damaged databases


def test_a_damaged_page_stops_the_first_write_and_changes_nothing(tmp_path):
    ws = _workspace(tmp_path / "ws")
    with Store(ws) as store:
        _write(store)  # takes the first backup
    _damage_a_page(ws / DB_NAME)
    before = _digest(ws / DB_NAME)
    with pytest.raises(DamagedDatabaseError, match="culturecode restore") as caught, Store(ws) as store:
        _write(store)
    assert "is damaged" in str(caught.value) and list_backups(ws)[0].name in str(caught.value)
    assert _digest(ws / DB_NAME) == before
    assert len(list_backups(ws)) == 1  # no backup of the damaged file replaced the good one


def test_a_zero_byte_database_is_never_recreated(tmp_path):
    ws = _workspace(tmp_path / "ws")
    (ws / DB_NAME).write_bytes(b"")
    for _ in range(2):
        with pytest.raises(DamagedDatabaseError, match=r"empty \(0 bytes\)"):
            Store(ws)
    assert (ws / DB_NAME).stat().st_size == 0


def test_a_new_workspace_never_shows_an_empty_database(tmp_path):
    ws = tmp_path / "ws"
    with Store(ws) as store:
        assert store.schema_version == len(db.MIGRATIONS)
    assert sorted(p.name for p in ws.iterdir() if not p.name.startswith(DB_NAME)) == []  # no temporary left


# ------------------------------------------------------------------ backups


def test_the_first_write_of_the_day_takes_a_backup(tmp_path):
    ws = _workspace(tmp_path / "ws")  # a database this store created holds nothing to back up
    assert list_backups(ws) == []
    with Store(ws) as store:
        assert list_backups(ws) == []  # reading takes none
        _write(store)
        _write(store)
    with Store(ws) as store:
        _write(store)  # the newest backup is less than a day old
    backups = list_backups(ws)
    assert len(backups) == 1
    copy = sqlite3.connect(backups[0])  # the data as it was before the first write
    assert copy.execute("SELECT COUNT(*) FROM meta WHERE key = 'touched'").fetchone()[0] == 0
    assert copy.execute("SELECT COUNT(*) FROM segments").fetchone()[0] == 60
    copy.close()
    _age(backups[0], days=1.5)
    with Store(ws) as store, store.run("ingest"):
        pass
    assert len(list_backups(ws)) == 2


def test_only_the_newest_backups_are_kept(tmp_path):
    ws = _workspace(tmp_path / "ws")
    for day in range(5):
        with Store(ws, backups=DefaultBackups(keep=3)) as store:
            _write(store)
        _age(list_backups(ws)[0], days=10 - day)
    names = [p.name for p in list_backups(ws)]
    assert len(names) == 3 and names == sorted(names, reverse=True)


def test_no_backups_when_keep_is_zero(tmp_path):
    ws = _workspace(tmp_path / "ws")
    with Store(ws, backups=DefaultBackups(keep=0)) as store:
        _write(store)
    assert not (ws / "backups").exists()


def test_a_schema_migration_is_preceded_by_a_backup(tmp_path, monkeypatch):
    ws = _workspace(tmp_path / "ws")
    with Store(ws) as store:
        _write(store)
    _age(list_backups(ws)[0], days=0.1)  # recent: only the migration asks for another
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, "CREATE TABLE extra (x INTEGER)"])
    with Store(ws) as store:
        assert store.schema_version == len(db.MIGRATIONS)
    assert len(list_backups(ws)) == 2


def test_ingest_replace_is_preceded_by_a_backup_whatever_the_newest_ones_age(tmp_path):
    """Issue 26 #8: with a backup under a day old, `ingest --replace` took none, so restore went back to a database
    from before the morning's annotations."""
    from pipeline.ingest import ingest

    transcript = tmp_path / "interview.txt"
    transcript.write_text("R: A question.\nPC: The first answer.\n", encoding="utf-8")
    ws = tmp_path / "ws"
    with Store(ws) as store:
        ingest(store, [transcript], show_progress=False)
    with Store(ws) as store:
        _write(store)  # the day's backup
    _age(list_backups(ws)[0], days=0.1)
    transcript.write_text("R: A question.\nPC: A corrected answer.\n", encoding="utf-8")
    with Store(ws) as store:
        ingest(store, [transcript], replace=True, show_progress=False)
    backups = list_backups(ws)
    assert len(backups) == 2
    copy = sqlite3.connect(backups[0])  # the newest: just before the replace
    texts = [r[0] for r in copy.execute("SELECT text FROM segments")]
    copy.close()
    assert any("first answer" in t for t in texts) and not any("corrected" in t for t in texts)
    with Store(ws) as store:
        ingest(store, [transcript], show_progress=False)  # no replace: the day's backup is enough
    assert len(list_backups(ws)) == 2


def test_the_settings_name_how_many_backups(cli, tmp_path):
    ws = _workspace(tmp_path / "ws")
    transcript = tmp_path / "interview.txt"
    transcript.write_text("R: A question.\nPC: An answer.\n", encoding="utf-8")
    config = tmp_path / "settings.yaml"
    config.write_text("backups:\n  keep: 0\n", encoding="utf-8")
    ingest = cli("ingest", transcript, "-w", ws, "-c", config, "--codebook", CODEBOOK, "-q")
    assert ingest.exit_code == 0, ingest.output
    assert list_backups(ws) == []
    config.write_text("backups:\n  keep: 2\n", encoding="utf-8")
    ingest = cli("ingest", transcript, "-w", ws, "-c", config, "--codebook", CODEBOOK, "-q")
    assert ingest.exit_code == 0 and len(list_backups(ws)) == 1


# ------------------------------------------------------------------ restore


def _backed_up_then_changed(tmp_path: Path) -> Path:
    ws = _workspace(tmp_path / "ws")
    with Store(ws) as store:
        _write(store)  # backup: 60 segments
        make_workspace(ws, None, {"doc_b": ["One more."]}).close()
    return ws


def test_restore_brings_back_the_newest_backup_and_moves_the_database_aside(cli, tmp_path):
    ws = _backed_up_then_changed(tmp_path)
    (ws / DB_NAME).write_bytes(b"garbage" * 1000)
    damaged = _digest(ws / DB_NAME)
    status = cli("status", "-w", ws)
    assert status.exit_code == 2 and "culturecode restore" in status.stderr

    result = cli("restore", "-w", ws)
    assert result.exit_code == 0, result.output
    aside = next(ws.glob(f"{DB_NAME}.before-restore-*"))
    assert _digest(aside) == damaged and str(aside) in result.stdout
    with Store(ws) as store:
        assert count_segments(store) == 60
    assert cli("status", "-w", ws).exit_code == 0


def test_restore_refuses_while_a_model_server_runs_on_the_workspace(cli, tmp_path):
    """Issue 26 #8: restore exited 0 under a running `serve`, which went on with the older database unnoticed."""
    from pipeline.config import load_settings
    from pipeline.loop.marker import running_server
    from pipeline.loop.service import start_loop

    ws = _backed_up_then_changed(tmp_path)
    settings = load_settings(overrides={"workspace": str(ws), "codebook": str(CODEBOOK)})
    running = start_loop(settings, settings.load_codebook(), port=0, connect=False, retrain=lambda: {})
    try:
        before = _digest(ws / DB_NAME)
        refused = cli("restore", "-w", ws)
        assert refused.exit_code == 2 and f"pid {os.getpid()}" in refused.stderr, refused.output
        assert "culturecode serve" in refused.stderr and _digest(ws / DB_NAME) == before
        assert not list(ws.glob(f"{DB_NAME}.before-restore-*"))
    finally:
        running.close()
    assert running_server(ws) is None
    assert cli("restore", "-w", ws).exit_code == 0


def test_restore_a_named_backup_keeps_the_database_it_replaces_with_its_wal(tmp_path):
    ws = _backed_up_then_changed(tmp_path)
    # a process that dies after a commit leaves pages in the WAL only: they must travel with the file
    code = (
        "import os, sys\nfrom tests.factory import make_workspace\n"
        "make_workspace(sys.argv[1], None, {'doc_c': ['Yet another.']})\nos._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(ws)], cwd=ROOT, check=True)
    assert (ws / f"{DB_NAME}-wal").stat().st_size > 0
    name = list_backups(ws)[0].name
    report = restore(ws / DB_NAME, name)
    assert report["restored"] == name and len(report["moved_aside"]) == 3
    copy = tmp_path / "copy"
    copy.mkdir()
    for moved in map(Path, report["moved_aside"]):
        shutil.copy(moved, copy / moved.name.replace(Path(report["moved_aside"][0]).name, DB_NAME))
    with Store(copy) as replaced, Store(ws) as restored:
        assert count_segments(replaced) == 62 and count_segments(restored) == 60


def test_restore_lists_and_refuses_what_it_cannot_do(cli, tmp_path):
    ws = _workspace(tmp_path / "ws")
    assert "No backups" in cli("restore", "--list", "-w", ws).stdout
    nothing = cli("restore", "-w", ws)
    assert nothing.exit_code == 2 and "no backups" in nothing.stderr
    with Store(ws) as store:
        _write(store)
    listed = json.loads(cli("restore", "--list", "--json", "-w", ws).stdout)
    assert [row["name"] for row in listed] == [p.name for p in list_backups(ws)]
    unknown = cli("restore", "--backup", "culturecode-1999.db", "-w", ws)
    assert unknown.exit_code == 2 and listed[0]["name"] in unknown.stderr
    _damage_a_page(list_backups(ws)[0])
    bad = cli("restore", "-w", ws)
    assert bad.exit_code == 2 and "damaged too" in bad.stderr
    assert not list(ws.glob("*.before-restore-*"))  # nothing was moved


def test_restore_waits_for_a_running_command(tmp_path):
    ws = _workspace(tmp_path / "ws")
    with Store(ws) as store:
        _write(store)
        with store.run("prelabel"), Store(ws) as other:
            from pipeline.commands.restore import _refuse_while_running
            from pipeline.errors import CultureCodeError

            assert other.last_runs(1)[0]["status"] == "running"
            with pytest.raises(CultureCodeError, match="prelabel"):
                _refuse_while_running(ws)


# ------------------------------------------------------------------ private files


def test_workspace_files_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        ws = _workspace(tmp_path / "ws")
        store = Store(ws)
        _write(store)
        take_backup(store.conn, store.path, keep=7)
        modes = {p.name: p.stat().st_mode & 0o777 for p in ws.iterdir()}
        backups = {p.stat().st_mode & 0o777 for p in list_backups(ws)}
        store.close()
    finally:
        os.umask(old)
    assert (ws.stat().st_mode & 0o777) == 0o700
    assert modes == {DB_NAME: 0o600, f"{DB_NAME}-wal": 0o600, f"{DB_NAME}-shm": 0o600, "backups": 0o700}
    assert backups == {0o600}


def test_studio_start_prints_the_password_once(cli, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pipeline.studio import server

    def launched(settings, proc, timeout):  # the real start up to launching Label Studio
        return server.ServerInfo("http://127.0.0.1:1", True, proc.pid, str(server.data_dir(settings)), "admin", True)

    monkeypatch.setattr(server, "_port_in_use", lambda host, port: False)
    monkeypatch.setattr(server, "_launch", lambda settings, creds: SimpleNamespace(pid=0))
    monkeypatch.setattr(server, "_wait_healthy", launched)
    ws = tmp_path / "new" / "ws"
    quiet = cli("studio", "start", "-w", ws, "--json")
    creds_file = ws / "studio" / server.CREDENTIALS
    password = json.loads(creds_file.read_text())["password"]
    assert password not in quiet.stdout  # JSON output never holds it, and does not count as shown
    first, second = cli("studio", "start", "-w", ws), cli("studio", "start", "-w", ws)
    assert first.exit_code == second.exit_code == 0, first.output
    assert password in first.stdout and str(creds_file) in first.stdout
    assert password not in second.stdout and str(creds_file) in second.stdout
    assert creds_file.stat().st_mode & 0o777 == 0o600 and ws.stat().st_mode & 0o777 == 0o700


# ------------------------------------------------------------------ interrupted runs


def test_a_killed_run_is_marked_interrupted_by_the_next_command(tmp_path):
    ws = _workspace(tmp_path / "ws")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pipeline.store import Store\nstore = Store(sys.argv[1])\n"
            "with store.run('prelabel'):\n    print('running', flush=True)\n    time.sleep(120)\n",
            str(ws),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "running"
        with Store(ws) as store:
            assert store.last_runs(1)[0]["status"] == "running"  # its process is alive: left alone
    finally:
        child.kill()
        child.wait()
    with Store(ws) as store:
        run = store.last_runs(1)[0]
    assert run["status"] == "interrupted" and run["finished_at"] and run["summary"]["pid"] == child.pid


def test_runs_without_a_process_to_ask_are_interrupted_after_a_week(tmp_path):
    ws = _workspace(tmp_path / "ws")
    long_ago = (datetime.now(UTC) - timedelta(days=8)).isoformat(timespec="seconds")
    recent = datetime.now(UTC).isoformat(timespec="seconds")
    with Store(ws) as store:
        rows = [
            ("old culturecode", long_ago, "{}"),
            ("other host, old", long_ago, json.dumps({"pid": 1, "host": "elsewhere"})),
            ("other host, recent", recent, json.dumps({"pid": 1, "host": "elsewhere"})),
        ]
        for stage, *_ in rows:
            with store.run(stage):
                pass
        _set_running(store, rows)
    with Store(ws) as store:
        status = {r["stage"]: r["status"] for r in store.last_runs(10)}
    assert status == {
        "old culturecode": "interrupted",
        "other host, old": "interrupted",
        "other host, recent": "running",
    }
    assert socket.gethostname() != "elsewhere"


def _set_running(store: Store, rows: list[tuple[str, str, str]]) -> None:
    """Turn finished runs back into running ones as an older or remote culturecode would have left them."""
    with store.transaction():
        for stage, started, summary in rows:
            store.conn.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL, started_at = ?, summary = ? WHERE stage = ?",
                (started, summary, stage),
            )


# ------------------------------------------------------------------ portable workspaces


@pytest.fixture(scope="module")
def tiny_settings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    config = root / "settings.yaml"
    config.write_text(
        f"classifier:\n  base_model: {tiny_encoder(root / 'encoder')}\n  method: head\n  export_onnx: false\n"
        "  min_segments: 10\n  epochs: 1\n",
        encoding="utf-8",
    )
    write_jsonl(root / "gold.jsonl", examples())
    return config


def test_a_moved_workspace_keeps_its_models(cli, tmp_path, monkeypatch, tiny_settings):
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(first)
    common = ["-c", tiny_settings, "--codebook", CODEBOOK]
    trained = cli("train", "--gold", tiny_settings.parent / "gold.jsonl", "-w", "ws", "-q", *common)
    assert trained.exit_code == 0, trained.output
    shutil.move(first / "ws", tmp_path / "shared" / "ws")
    monkeypatch.chdir(elsewhere)
    moved = tmp_path / "shared" / "ws"
    with Store(moved) as store:
        store.record_codebook(load_codebook(CODEBOOK))
        add_segments(store, examples(n_docs=2, seed=4))

    shown = cli("models", "show", "--json", "-w", moved, "-c", tiny_settings)
    assert shown.exit_code == 0, shown.output
    details = json.loads(shown.stdout)
    assert Path(details["path"]) == moved / "models" / "clf-001" and details["classifier"]["codes"]
    prelabelled = cli("prelabel", "-q", "--json", "-w", moved, *common)
    assert prelabelled.exit_code == 0, prelabelled.output
    assert json.loads(prelabelled.stdout)["scored"] == 16


@pytest.mark.parametrize("legacy", ["relative to the old cwd", "absolute"])
def test_model_rows_written_before_are_still_found(tmp_path, monkeypatch, legacy):
    from pipeline.store.models import get_model, register_model

    ws = tmp_path / "ws"
    (ws / "models" / "clf-001").mkdir(parents=True)
    written = "ws/models/clf-001" if legacy.startswith("relative") else str(tmp_path / "gone" / "models" / "clf-001")
    with Store(ws) as store:
        register_model(store, "clf-001", "classifier", None, "hash", {})
        with store.transaction():
            store.conn.execute("UPDATE models SET path = ? WHERE version = 'clf-001'", (written,))
    monkeypatch.chdir(tmp_path / "ws" / "models")  # a cwd where neither reading of the old row works
    with Store(ws) as store:
        assert Path(get_model(store, "clf-001")["path"]) == ws / "models" / "clf-001"


def test_model_paths_are_stored_relative_to_the_workspace(tmp_path, monkeypatch):
    from pipeline.store.models import register_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ws" / "models" / "v1").mkdir(parents=True)
    with Store("ws") as store, store.transaction():
        register_model(store, "v1", "classifier", "ws/models/v1", "hash", {})
        register_model(store, "v2", "llm", tmp_path / "prompts", "hash", {})
        stored = dict(store.conn.execute("SELECT version, path FROM models").fetchall())
    assert stored == {"v1": "models/v1", "v2": str((tmp_path / "prompts").resolve())}
