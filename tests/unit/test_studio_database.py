"""studio.database: the URL's parts, the server's environment, and the password never shown."""

from __future__ import annotations

import socket

import pytest

from pipeline.config import load_settings, mask_database_url
from pipeline.errors import CultureCodeError
from pipeline.studio import database, server

URL = "postgresql://coder:p%40ss:word@db.example.org:6543/labelstudio?sslmode=require"


def test_url_parts_are_percent_decoded_with_defaults():
    target = database.parse_url(URL)
    assert (target.host, target.port, target.user, target.password, target.name, target.sslmode) == (
        "db.example.org",
        6543,
        "coder",
        "p@ss:word",
        "labelstudio",
        "require",
    )
    bare = database.parse_url("postgres://localhost/ls")
    assert (bare.port, bare.user, bare.password) == (5432, "postgres", "")


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://u:pw@host:5432/", "name the database"),
        ("postgresql://u:pw@host:99999/db", "port is not a number"),
        ("postgresql://u:pw@host/db?application_name=x", "unsupported URL option"),
    ],
)
def test_bad_urls_are_one_line_errors_without_the_password(url, message):
    with pytest.raises(CultureCodeError, match=message) as err:
        database.parse_url(url)
    assert "pw" not in str(err.value).replace("postgresql", "")


def test_status_and_config_show_mask_the_password():
    assert mask_database_url(URL) == "postgresql://coder:***@db.example.org:6543/labelstudio?sslmode=require"
    assert mask_database_url("postgresql://coder@h/db") == "postgresql://coder@h/db"
    assert database.describe(None) == "sqlite"
    settings = load_settings(overrides={"studio.database": URL})
    assert settings.studio.database == URL  # the real value stays usable
    assert "p%40ss" not in str(settings.model_dump())


def test_config_refuses_a_database_that_is_not_postgresql():
    with pytest.raises(CultureCodeError, match="studio.database"):
        load_settings(overrides={"studio.database": "mysql://u@h/db"})


def test_server_env_selects_postgresql_and_drops_inherited_database_variables():
    inherited = {"PATH": "/bin", "LABEL_STUDIO_POSTGRE_HOST": "elsewhere", "DATABASE_NAME": "/tmp/x.db"}
    env = database.server_env(URL, inherited)
    assert env["DJANGO_DB"] == "default" and env["POSTGRE_PASSWORD"] == "p@ss:word"
    assert (env["POSTGRE_HOST"], env["POSTGRE_PORT"], env["POSTGRE_NAME"], env["PGSSLMODE"]) == (
        "db.example.org",
        "6543",
        "labelstudio",
        "require",
    )
    assert "LABEL_STUDIO_POSTGRE_HOST" not in env and "DATABASE_NAME" not in env and env["PATH"] == "/bin"
    sqlite_env = database.server_env(None, {"POSTGRE_PASSWORD": "x", "DJANGO_DB": "default"})
    assert sqlite_env == {"DJANGO_DB": "sqlite"}


def test_an_unreachable_server_is_one_line_naming_the_address_not_the_password():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(CultureCodeError) as err:
            database.check_reachable(f"postgresql://u:hunter2@127.0.0.1:{port}/db")
    message = str(err.value)
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port} (connection refused)" in message
    assert "hunter2" not in message and "\n" not in message


def test_a_workspace_stays_on_the_database_it_started_on(tmp_path):
    settings = load_settings(overrides={"workspace": str(tmp_path / "ws"), "studio.database": URL})
    server._check_same_database(settings, {"database": database.describe(URL)})
    with pytest.raises(CultureCodeError, match="keeps its data in sqlite"):
        server._check_same_database(settings, {"database": "sqlite"})
    server._check_same_database(settings, {})  # a workspace from before the setting: nothing recorded yet
