"""A throwaway PostgreSQL cluster (Debian's `postgresql` binaries) for tests and benchmarks.

`initdb` + `pg_ctl` in a temporary folder, listening on 127.0.0.1 on a free port with password (scram) login
over TCP. PostgreSQL refuses to run as root, so as root the binaries run as the `postgres` system user
(`runuser`), which owns the folder. `.ci/run` (make postgresql) installs the binaries where they are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.factory import free_port

HOW_TO_INSTALL = "install Debian's PostgreSQL (`apt-get install postgresql`, or `make postgresql` as root)"


def pg_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def missing_reason() -> str | None:
    """Why no cluster can start here (None when one can)."""
    if pg_bindir() is None:
        return f"PostgreSQL binaries (initdb, pg_ctl) not found: {HOW_TO_INSTALL}"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or not _has_user("postgres")):
        return f"running as root needs the `postgres` system user and runuser: {HOW_TO_INSTALL}"
    return None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@dataclass
class Cluster:
    host: str
    port: int
    user: str
    password: str
    root: Path

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        """A new empty database; returns its URL (with the password)."""
        import psycopg

        conninfo = f"host={self.host} port={self.port} user={self.user} password={self.password} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)


def _run(args: list[str], as_user: str | None) -> None:
    cmd = ["runuser", "-u", as_user, "--", *args] if as_user else args
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@contextmanager
def postgres_cluster(durable: bool = True) -> Iterator[Cluster]:
    """A running cluster, stopped and deleted on exit. `durable=False` turns fsync off (fast tests only)."""
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError(f"PostgreSQL binaries not found: {HOW_TO_INSTALL}")
    as_user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="culturecode-pg-"))  # under /tmp: reachable by the postgres user
    if as_user:
        entry = pwd.getpwnam(as_user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    password, port, data = secrets.token_urlsafe(12), free_port(), root / "data"
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    settings = f"-p {port} -k {root} -c listen_addresses=127.0.0.1" + ("" if durable else " -c fsync=off")
    try:
        _run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust"]
            + ["--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"],
            as_user,
        )
        pwfile.unlink()
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", settings, "-l", str(root / "log"), "-w", "start"], as_user)
        try:
            yield Cluster("127.0.0.1", port, "postgres", password, root)
        finally:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], as_user)
    finally:
        shutil.rmtree(root, ignore_errors=True)
