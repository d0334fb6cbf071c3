"""The embedded Label Studio: start, find, and stop one server per workspace.

The server runs from the same virtualenv with its data in `<workspace>/studio` (SQLite; or in PostgreSQL with
`studio.database`, see pipeline/studio/database.py), bound to 127.0.0.1, with telemetry off and signup
closed to anyone without the invite link. The admin account and an API token are created at first start
from a 0600 credentials file we write, so no prompt ever appears; `studio start` prints the password once,
then only where the file is.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from pipeline.config import Settings
from pipeline.errors import CultureCodeError
from pipeline.studio import database as db

CREDENTIALS = "culturecode-credentials.json"
STATE = "culturecode-server.json"
LOG = "server.log"

# Interview transcripts are sensitive: no error reporting, version checks or analytics.
PRIVATE_ENV = {
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "LATEST_VERSION_CHECK": "false",
    "COLLECT_ANALYTICS": "false",
    "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
    "DISABLE_SIGNUP_WITHOUT_LINK": "true",
    "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
}

# The model server (`culturecode serve`) listens on this machine, and Label Studio refuses ML backends and
# webhooks on reserved networks, loopback included. Allow loopback only: every other reserved network stays
# banned (Label Studio's default list less 127.0.0.0/8 and ::1).
LOOPBACK_ALLOWED_ENV = {
    "USE_DEFAULT_BANNED_SUBNETS": "false",
    "USER_ADDITIONAL_BANNED_SUBNETS": ",".join(
        [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "192.168.0.0/16",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "224.0.0.0/4",
            "233.252.0.0/24",
            "240.0.0.0/4",
            "255.255.255.255/32",
            "::/128",
            "::ffff:0:0/96",
            "::ffff:0:0:0/96",
            "64:ff9b::/96",
            "64:ff9b:1::/48",
            "100::/64",
            "2001::/32",
            "2001:20::/28",
            "2001:db8::/32",
            "2002::/16",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
        ]
    ),
}


@dataclass
class ServerInfo:
    url: str
    running: bool
    pid: int | None
    data_dir: str
    username: str
    started: bool = False  # True when this call launched it
    database: str = db.SQLITE  # 'sqlite' or the PostgreSQL URL with its password masked

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def data_dir(settings: Settings) -> Path:
    return Path(settings.workspace).resolve() / "studio"


def local_url(settings: Settings) -> str:
    return f"http://{settings.studio.host}:{settings.studio.port}"


def _private_dirs(settings: Settings) -> Path:
    """The workspace and its studio/ folder, created readable by their owner only (transcripts live there)."""
    ddir = data_dir(settings)
    for folder in (ddir.parent, ddir):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return ddir


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(path, 0o600)


def credentials(settings: Settings) -> dict[str, Any] | None:
    """The embedded server's admin login and API token (<workspace>/studio, mode 0600); None before the first start."""
    path = data_dir(settings) / CREDENTIALS
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def ensure_credentials(settings: Settings) -> dict[str, Any]:
    """`credentials(settings)`, created (random password and API token) when there are none yet."""
    creds = credentials(settings)
    if creds is None:
        creds = {
            "username": settings.studio.username,
            "password": secrets.token_urlsafe(12),
            "api_key": secrets.token_hex(20),
            "annotators": {},
        }
        _write_private(data_dir(settings) / CREDENTIALS, creds)
    return creds


def save_credentials(settings: Settings, creds: dict[str, Any]) -> None:
    _write_private(data_dir(settings) / CREDENTIALS, creds)


def password_shown(settings: Settings) -> bool:
    """Whether `studio start` has printed the admin password already (it does so once; then it names the file)."""
    return bool((credentials(settings) or {}).get("password_shown"))


def mark_password_shown(settings: Settings) -> None:
    creds = credentials(settings)
    if creds is not None and not creds.get("password_shown"):
        save_credentials(settings, {**creds, "password_shown": True})


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int | None, settings: Settings) -> bool:
    """Whether `pid` is this workspace's Label Studio (a stale pid file may name a reused pid)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and str(data_dir(settings)) in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _state(settings: Settings) -> dict[str, Any]:
    path = data_dir(settings) / STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def server_status(settings: Settings) -> ServerInfo:
    """Whether this workspace's embedded server is up (from its pid file and /health)."""
    state = _state(settings)
    url = state.get("url", local_url(settings))
    pid = state.get("pid")
    alive = _pid_alive(pid, settings)
    running = alive and is_healthy(url)
    return ServerInfo(
        url=url,
        running=running,
        pid=pid if alive else None,
        data_dir=str(data_dir(settings)),
        username=settings.studio.username,
        database=state.get("database", db.describe(settings.studio.database)),
    )


def _command() -> list[str]:
    script = Path(sys.executable).parent / "label-studio"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from label_studio.server import main; sys.exit(main())"]


def _launch(settings: Settings, creds: dict[str, Any]) -> subprocess.Popen:
    ddir = data_dir(settings)
    url = local_url(settings)
    inherited = db.server_env(settings.studio.database, dict(os.environ))  # the password only in the env
    env = {
        **inherited,
        **PRIVATE_ENV,
        **LOOPBACK_ALLOWED_ENV,
        "LABEL_STUDIO_BASE_DATA_DIR": str(ddir),
        "HOST": url,
        "LABEL_STUDIO_HOST": url,
        "LABEL_STUDIO_USERNAME": creds["username"],
        "LABEL_STUDIO_PASSWORD": creds["password"],
        "LABEL_STUDIO_USER_TOKEN": creds["api_key"],
    }
    for leak in ("LABEL_STUDIO_API_KEY", settings.studio.api_key_env):
        env.pop(leak, None)
    args = [
        "start",
        "--no-browser",
        "--data-dir",
        str(ddir),
        "--internal-host",
        settings.studio.host,
        "--port",
        str(settings.studio.port),
        "--enable-legacy-api-token",
        "--log-level",
        "WARNING",
    ]
    with open(ddir / LOG, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            _command() + args,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=ddir,
        )


def _log_tail(settings: Settings, lines: int = 3) -> str:
    path = data_dir(settings) / LOG
    if not path.exists():
        return ""
    tail = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return " | ".join(tail[-lines:])


def start_server(settings: Settings, timeout: float | None = None) -> ServerInfo:
    """Start the workspace's Label Studio (or find the running one) and wait until it answers."""
    info = server_status(settings)
    _check_same_database(settings, credentials(settings))
    if info.running:
        return info
    if info.pid is not None:  # our server is still starting (another `start` launched it)
        return _wait_healthy(settings, None, timeout)
    host, port = settings.studio.host, settings.studio.port
    if _port_in_use(host, port):
        raise CultureCodeError(
            f"port {port} on {host} is taken by another program; start Label Studio on a free port "
            f"with `culturecode studio start --port N` (and use the same --port for push/pull)"
        )
    if settings.studio.database:
        db.check_reachable(settings.studio.database)
    ddir = _private_dirs(settings)
    creds = _remember_database(settings, ensure_credentials(settings))
    proc = _launch(settings, creds)
    where = db.describe(settings.studio.database)
    _write_private(ddir / STATE, {"pid": proc.pid, "url": local_url(settings), "port": port, "database": where})
    info = _wait_healthy(settings, proc, timeout)
    if settings.studio.database:
        _check_token_taken(settings, creds)
    return info


def _check_same_database(settings: Settings, creds: dict[str, Any] | None) -> None:
    """A workspace's Label Studio stays on the database it first started on (its ledger names those projects)."""
    before = (creds or {}).get("database")
    wanted = db.describe(settings.studio.database)
    if before is not None and before != wanted:
        raise CultureCodeError(
            f"this workspace's Label Studio keeps its data in {before}, not {wanted}: start it with the same "
            f"database (--database or studio.database), or use another workspace for the other one"
        )


def _remember_database(settings: Settings, creds: dict[str, Any]) -> dict[str, Any]:
    if "database" not in creds:
        creds = {**creds, "database": db.describe(settings.studio.database)}
        save_credentials(settings, creds)
    return creds


def _check_token_taken(settings: Settings, creds: dict[str, Any]) -> None:
    """Label Studio keeps an admin that already exists in the database (and its token): then ours is refused."""
    url = local_url(settings)
    resp = httpx.get(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {creds['api_key']}"})
    if resp.status_code in (401, 403):
        stop_server(settings)
        raise CultureCodeError(
            f"the PostgreSQL database {db.describe(settings.studio.database)} already holds a Label Studio whose "
            f"{creds['username']} account is not this workspace's: use an empty database, or connect to that "
            f"server as a team server (--url and its API key)"
        )


def _wait_healthy(settings: Settings, proc: subprocess.Popen | None, timeout: float | None) -> ServerInfo:
    ddir, url = data_dir(settings), server_status(settings).url
    limit = timeout or settings.studio.start_timeout
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            (ddir / STATE).unlink(missing_ok=True)
            raise CultureCodeError(
                f"Label Studio exited during start (code {proc.returncode}); see {ddir / LOG}: {_log_tail(settings)}"
            )
        if is_healthy(url):
            info = server_status(settings)
            info.started = proc is not None
            return info
        time.sleep(1.0)
    stop_server(settings)
    raise CultureCodeError(
        f"Label Studio did not answer on {url} within {limit:.0f} s; see {ddir / LOG} and retry "
        f"with a larger studio.start_timeout"
    )


def stop_server(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop the embedded server (SIGTERM, then SIGKILL); False when none was running."""
    state = _state(settings)
    pid = state.get("pid")
    path = data_dir(settings) / STATE
    if pid is None or not _pid_alive(pid, settings):
        path.unlink(missing_ok=True)
        return False
    os.killpg(os.getpgid(pid), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid, settings):
        _reap(pid)
        time.sleep(0.2)
    if _pid_alive(pid, settings):
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    _reap(pid)  # when this process started it (tests), collect the exit status
    port = state.get("port", settings.studio.port)
    while time.monotonic() < deadline + 10 and _port_in_use(settings.studio.host, port):
        time.sleep(0.2)  # an exiting process can hold the port a moment longer
    path.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
