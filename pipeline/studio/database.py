"""Which database the embedded Label Studio keeps its data in: SQLite in <workspace>/studio, or PostgreSQL.

`studio.database` (or `studio start --database`) is a postgresql:// URL. Label Studio reads its database from
environment variables (DJANGO_DB, POSTGRE_*), so the URL becomes those for the server's process only; the
password never reaches a command line, a log or printed output (`describe` masks it). Before a start,
`check_reachable` connects once so an unreachable server, a wrong password or a missing database is one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from pipeline.config import mask_database_url
from pipeline.errors import CultureCodeError

SQLITE = "sqlite"
# Every name Label Studio reads the database from (it tries LABEL_STUDIO_X, HEARTEX_X, then X): cleared from
# the inherited environment so that only what culturecode sets decides which database the server uses.
DB_KEYS = (
    "DJANGO_DB",
    "DATABASE_NAME",
    "POSTGRE_NAME",
    "POSTGRE_USER",
    "POSTGRE_PASSWORD",
    "POSTGRE_HOST",
    "POSTGRE_PORT",
)
ENV_PREFIXES = ("LABEL_STUDIO_", "HEARTEX_", "")
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    user: str
    password: str  # "" = libpq's own sources: $PGPASSWORD or ~/.pgpass
    name: str
    sslmode: str | None = None

    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> PostgresTarget:
    """postgresql://user[:password]@host[:port]/dbname[?sslmode=...] -> its parts (percent-decoded)."""
    parts = urlsplit(url)
    shown = mask_database_url(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise CultureCodeError(f"studio database {shown}: give a postgresql://user@host:port/dbname URL")
    name = unquote(parts.path.lstrip("/"))
    if not name or "/" in name:
        raise CultureCodeError(
            f"studio database {shown}: name the database at the end (postgresql://user@host:5432/labelstudio)"
        )
    try:
        port = parts.port or 5432
    except ValueError:
        raise CultureCodeError(f"studio database {shown}: the port is not a number from 1 to 65535") from None
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - {"sslmode"})
    if unknown:
        raise CultureCodeError(
            f"studio database {shown}: unsupported URL option(s) {', '.join(unknown)} (only sslmode)"
        )
    return PostgresTarget(
        host=parts.hostname or "localhost",
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        name=name,
        sslmode=query.get("sslmode"),
    )


def describe(database: str | None) -> str:
    """What status output shows: 'sqlite' or the URL with its password masked."""
    return mask_database_url(database) if database else SQLITE


def server_env(database: str | None, inherited: dict[str, str]) -> dict[str, str]:
    """`inherited` without any database variable, plus the ones that select `database` for Label Studio."""
    env = {k: v for k, v in inherited.items() if not any(k == p + key for p in ENV_PREFIXES for key in DB_KEYS)}
    if not database:
        env["DJANGO_DB"] = SQLITE
        return env
    target = parse_url(database)
    env.update(
        {
            "DJANGO_DB": "default",  # Label Studio's name for its PostgreSQL settings
            "POSTGRE_NAME": target.name,
            "POSTGRE_USER": target.user,
            "POSTGRE_PASSWORD": target.password,
            "POSTGRE_HOST": target.host,
            "POSTGRE_PORT": str(target.port),
        }
    )
    if target.sslmode:
        env["PGSSLMODE"] = target.sslmode  # libpq reads it; Label Studio has no setting for it
    return env


def check_reachable(database: str) -> None:
    """Connect once; an unreachable server, refused login or missing database raises a one-line error."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    target = parse_url(database)
    params = {"host": target.host, "port": str(target.port), "user": target.user, "dbname": target.name}
    if target.password:
        params["password"] = target.password
    if target.sslmode:
        params["sslmode"] = target.sslmode
    try:
        psycopg.connect(make_conninfo(**params), connect_timeout=CONNECT_TIMEOUT_S).close()  # login = reachable
    except psycopg.Error as exc:
        raise CultureCodeError(_explain(exc, target)) from None


# libpq's wording for "nothing answers there" -> the reason shown in the one-line error
UNREACHABLE = {
    "Connection refused": "connection refused",
    "timeout expired": "no answer within 5 s",
    "failed to resolve host": "unknown host",
    "could not translate host name": "unknown host",
    "No route to host": "no route to host",
}


def _explain(exc: Exception, target: PostgresTarget) -> str:
    text = str(exc)
    if target.password:
        text = text.replace(target.password, "***")
    where = f"PostgreSQL at {target.where()}"
    if f'database "{target.name}" does not exist' in text:
        return (
            f'{where} has no database "{target.name}": create it (createdb -h {target.host} -p {target.port} '
            f"-U {target.user} {target.name}) or name another one"
        )
    if "password authentication failed" in text or "no password supplied" in text:
        return f'{where} refused user "{target.user}": wrong or missing password (URL, $PGPASSWORD or ~/.pgpass)'
    reason = next((why for marker, why in UNREACHABLE.items() if marker in text), None)
    if reason:
        return f"cannot reach {where} ({reason}): is the server running and the address right?"
    detail = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    detail = detail if len(detail) <= 160 else detail[:157] + "..."
    return f"{where}, database {target.name}: {detail}"
