"""Keeping the workspace database safe: damage checks, daily online backups, restore.

A damaged database is never opened for writing: `check_file` reads its header and size without
SQLite, and a SQLite error that says "corrupt" or "not a database" becomes `DamagedDatabaseError`,
which names the newest backup and `culturecode restore`. Before the first write of a command the
store takes a backup with SQLite's online backup API when the newest one is older than
`backups.every_hours` (a directory listing, no database read), after a `PRAGMA quick_check`, so a
damaged database never replaces a good backup. `backups/` keeps the newest `backups.keep` files.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import CultureCodeError

BACKUP_DIR = "backups"
PREFIX = "culturecode-"
STAMP = "%Y%m%dT%H%M%SZ"
HEADER = b"SQLite format 3\x00"
CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class DamagedDatabaseError(CultureCodeError):
    """The workspace database cannot be read as SQLite; the message says how to restore it."""


class BackupPolicy(Protocol):
    keep: int  # backups kept; 0 turns backups off
    every_hours: float  # a command that writes takes one when the newest is older than this


@dataclass
class DefaultBackups:
    keep: int = 7
    every_hours: float = 24.0


# ---------------------------------------------------------------------------- damage


def is_corruption(exc: BaseException) -> bool:
    """Whether a SQLite error means the file is damaged (not locked, not a bug in a statement)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and code & 0xFF in CORRUPT_CODES


def file_damage(db: Path) -> str | None:
    """What is wrong with the file at `db`, read without SQLite (header and size); None when it looks sound
    or does not exist. SQLite itself would treat a 0-byte file as a new empty database and write to it."""
    try:
        size, head = _read_head(db)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CultureCodeError(f"cannot read the workspace database {db}: {exc.strerror}") from None
    if size == 0:
        return "the file is empty (0 bytes)"
    if len(head) < 100 or not head.startswith(HEADER):
        return "the file does not start with a SQLite header"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"its header names an impossible page size ({page_size})"
    pages = int.from_bytes(head[28:32], "big")
    pages_known = pages > 0 and head[92:96] == head[24:28]  # the in-header size is valid (SQLite >= 3.7.0)
    wal = Path(f"{db}-wal")
    uncheckpointed = wal.exists() and wal.stat().st_size > 0  # pages may still live in the WAL
    if pages_known and not uncheckpointed and size < pages * page_size:
        return f"the file is truncated ({size:,} of {pages * page_size:,} bytes)"
    return None


# Closing any descriptor of a file drops every POSIX lock this process holds on it, SQLite's own included (SQLite's
# "How To Corrupt An SQLite Database File", 2.2): an open-read-close of the header while another thread's connection
# is open lets a second process reset the WAL index under it ("database disk image is malformed", seen with
# `culturecode serve`). So the header is read through one descriptor per file, kept open for the process's life.
_HEADER_FDS: dict[tuple[int, int], int] = {}
_HEADER_FDS_LOCK = threading.Lock()


def _read_head(db: Path) -> tuple[int, bytes]:
    """The file's size and first 100 bytes, read without ever closing a descriptor of it."""
    status = os.stat(db)
    with _HEADER_FDS_LOCK:
        fd = _HEADER_FDS.get((status.st_dev, status.st_ino))
        if fd is None:
            fd = os.open(db, os.O_RDONLY | os.O_CLOEXEC)
            opened = os.fstat(fd)  # the file may have been replaced since the stat: key by what was opened
            fd = _HEADER_FDS.setdefault((opened.st_dev, opened.st_ino), fd)  # a spare descriptor stays open too
    return os.fstat(fd).st_size, os.pread(fd, 100, 0)


def check_file(db: Path) -> None:
    reason = file_damage(db)
    if reason:
        raise damaged(db, reason)


def damaged(db: Path, reason: str) -> DamagedDatabaseError:
    """The one-line error for a damaged database: what is wrong, that it was left as it is, how to restore."""
    workspace = db.parent
    newest = newest_backup(workspace)
    if newest is not None:
        hint = (
            f"restore the newest backup ({newest.name}, taken {taken_at(newest):%Y-%m-%d %H:%M} UTC) with "
            f"`culturecode restore --workspace {workspace}` (the damaged file is moved aside, not deleted)"
        )
    else:
        hint = f"there is no backup in {workspace / BACKUP_DIR}: restore the workspace from a copy of your own"
    if db.exists() and db.stat().st_size == 0:
        hint += "; in a new workspace with nothing to keep, delete the empty file"
    return DamagedDatabaseError(f"the workspace database {db} is damaged: {reason}. It was left untouched; {hint}")


def quick_check(conn: sqlite3.Connection) -> str | None:
    """SQLite's `PRAGMA quick_check` (reads every page, about 0.1 s per 100 MB): None when sound, else its first
    complaint."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            return str(exc)
        raise
    first = rows[0][0] if rows else "ok"
    return None if first == "ok" else f"SQLite's quick_check: {first}"


# ---------------------------------------------------------------------------- backups


def backup_dir(workspace: Path) -> Path:
    return Path(workspace) / BACKUP_DIR


def taken_at(backup: Path) -> datetime:
    return datetime.strptime(backup.stem.removeprefix(PREFIX), STAMP).replace(tzinfo=UTC)


def list_backups(workspace: Path) -> list[Path]:
    """The workspace's backups, newest first (files named culturecode-<UTC time>.db)."""
    folder = backup_dir(workspace)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{PREFIX}*.db"):
        try:
            taken_at(path)
        except ValueError:
            continue  # not ours
        found.append(path)
    return sorted(found, key=lambda p: p.name, reverse=True)


def newest_backup(workspace: Path) -> Path | None:
    found = list_backups(workspace)
    return found[0] if found else None


def backup_due(workspace: Path, policy: BackupPolicy, now: datetime | None = None) -> bool:
    if policy.keep <= 0:
        return False
    newest = newest_backup(workspace)
    now = now or datetime.now(UTC)
    return newest is None or now - taken_at(newest) >= timedelta(hours=policy.every_hours)


def take_backup(conn: sqlite3.Connection, db: Path, keep: int) -> Path:
    """Check the database, copy it online into backups/ (mode 0600), and keep the newest `keep` backups."""
    problem = quick_check(conn)
    if problem:
        raise damaged(db, problem)
    folder = backup_dir(db.parent)
    folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    final = folder / f"{PREFIX}{datetime.now(UTC):{STAMP}}.db"
    partial = folder / f".{final.name}.{os.getpid()}.partial"
    try:
        create_private(partial)
        target = sqlite3.connect(partial)
        try:
            conn.backup(target)
        finally:
            target.close()
        os.replace(partial, final)
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise CultureCodeError(
            f"cannot write a backup of {db} to {folder}: {exc}; free some space, or set backups.keep: 0 in the "
            f"settings to work without backups"
        ) from None
    for old in list_backups(db.parent)[max(keep, 1) :]:
        old.unlink(missing_ok=True)
    return final


def create_private(path: Path) -> None:
    """Create an empty file readable by its owner only (SQLite gives its -wal and -shm files the same mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    os.close(fd)
    os.chmod(path, PRIVATE_FILE)  # an unusual umask may have removed bits we want; never adds any


# ---------------------------------------------------------------------------- restore


def restore(db: Path, name: str | None = None) -> dict[str, Any]:
    """Bring back backup `name` (default: the newest) as the workspace database. The current database, damaged
    or not, is first moved aside (with its -wal and -shm) to culturecode.db.before-restore-<time>."""
    workspace = db.parent
    backup = _chosen_backup(workspace, name)
    problem = _backup_damage(backup)
    if problem:
        raise CultureCodeError(f"backup {backup} is damaged too ({problem}); choose another with --backup NAME")
    moved = _move_aside(db)
    staged = db.with_name(f".{db.name}.restoring")
    staged.unlink(missing_ok=True)
    create_private(staged)
    shutil.copyfile(backup, staged)
    os.replace(staged, db)
    return {
        "workspace": str(workspace),
        "restored": backup.name,
        "taken_at": taken_at(backup).isoformat(),
        "moved_aside": [str(p) for p in moved],
    }


def _chosen_backup(workspace: Path, name: str | None) -> Path:
    found = list_backups(workspace)
    if not found:
        raise CultureCodeError(f"no backups in {backup_dir(workspace)}: nothing to restore")
    if name is None:
        return found[0]
    for path in found:
        if name in (path.name, path.stem):
            return path
    names = ", ".join(p.name for p in found[:10])
    raise CultureCodeError(f"no backup '{name}' in {backup_dir(workspace)} (backups: {names})")


def _backup_damage(backup: Path) -> str | None:
    reason = file_damage(backup)
    if reason:
        return reason
    conn = sqlite3.connect(f"{backup.resolve().as_uri()}?immutable=1", uri=True)  # reads only, no -wal/-shm
    try:
        return quick_check(conn)
    finally:
        conn.close()


def _move_aside(db: Path) -> list[Path]:
    """Rename the database and its -wal/-shm together (SQLite pairs them by name), so nothing is lost."""
    if not db.exists():
        return []
    stamp = datetime.now(UTC).strftime(STAMP)
    aside = db.with_name(f"{db.name}.before-restore-{stamp}")
    moved = []
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            target = Path(f"{aside}{suffix}")
            os.replace(source, target)
            moved.append(target)
    return moved


def backup_rows(workspace: Path) -> list[dict[str, Any]]:
    """Name, time and size of each backup, newest first (for `culturecode restore --list`)."""
    return [
        {"name": p.name, "taken_at": taken_at(p).isoformat(), "bytes": p.stat().st_size, "path": str(p)}
        for p in list_backups(workspace)
    ]
