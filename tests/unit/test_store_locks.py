"""Checking the database file's header must never drop SQLite's locks in this process.

Closing any descriptor of a file releases every POSIX lock the process holds on it. When that drops a connection's
shared lock, another process closing its connection believes it was the last one and removes the write-ahead log
under the open connection ("database disk image is malformed"; seen with `culturecode serve` and a kill -9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.store import Store
from pipeline.store.backup import check_file

OTHER_PROCESS_WRITES = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('probe', 'x')")
conn.close()
"""


def _other_process_writes_and_closes(db: Path) -> None:
    subprocess.run([sys.executable, "-c", OTHER_PROCESS_WRITES, str(db)], check=True)


def _wal_survives(tmp_path: Path, check) -> bool:
    store = Store(tmp_path / "ws")
    try:
        store.conn.execute("SELECT COUNT(*) FROM meta").fetchone()
        check(store.path)
        _other_process_writes_and_closes(store.path)
        return Path(f"{store.path}-wal").exists()  # gone: the other process thought it was the last connection
    finally:
        store.close()


def test_the_header_check_keeps_this_processs_locks(tmp_path):
    assert _wal_survives(tmp_path, check_file)


def test_an_open_read_close_of_the_file_would_drop_them(tmp_path):
    def open_read_close(db: Path) -> None:
        with open(db, "rb") as fh:
            fh.read(100)

    assert not _wal_survives(tmp_path, open_read_close)  # the hazard the first test guards against is real
