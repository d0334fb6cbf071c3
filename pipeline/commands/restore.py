"""`culturecode restore`: bring back a backup of the workspace database (see pipeline/store/backup.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.commands.common import ConfigOpt, JsonOpt, WorkspaceOpt, handle_errors, out, print_result, settings_for
from pipeline.commands.render import Column, print_table
from pipeline.errors import CultureCodeError


@handle_errors
def restore_cli(
    backup: Annotated[
        str | None,
        typer.Option("--backup", help="The backup to bring back, as `--list` names it (default: the newest)."),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the backups, newest first, and change nothing.")] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Bring back a backup of the workspace database.

    The backups are in <workspace>/backups (commands that write take one a day). The current
    database, damaged or not, is moved aside first, never deleted.
    """
    from pipeline.store import DB_NAME
    from pipeline.store.backup import backup_rows, restore
    from pipeline.store.lock import workspace_lock

    settings = settings_for(config, workspace)
    ws = Path(settings.workspace)
    if not ws.is_dir():
        what = "is a file, not a workspace folder" if ws.exists() else "does not exist"
        raise CultureCodeError(f"workspace '{ws}' {what}")
    if list_:
        print_result(backup_rows(ws), json_out, lambda rows: _show_backups(rows, ws))
        return
    with workspace_lock(ws, "restore", settings.busy_wait):  # no command may write while the file is swapped
        _refuse_while_serving(ws)
        _refuse_while_running(ws)
        report = restore(ws / DB_NAME, backup)
    print_result(report, json_out, _show_restore)


def _refuse_while_serving(ws: Path) -> None:
    """A model server would go on serving (and retraining on) the database moved aside (issue 26 #8)."""
    from pipeline.loop.marker import running_server

    server = running_server(ws)
    if server is not None:
        pid = server["pid"]
        raise CultureCodeError(
            f"a model server (culturecode serve{f', pid {pid}' if pid else ''}) is using workspace {ws}: stop it "
            f"(Ctrl-C, or `culturecode studio stop` for one `studio start` started), then restore"
        )


def _refuse_while_running(ws: Path) -> None:
    """A command still writing to the database would go on writing to the file moved aside."""
    from pipeline.store import DB_NAME, Store
    from pipeline.store.backup import DamagedDatabaseError

    if not (ws / DB_NAME).exists():
        return
    try:
        with Store(ws, create=False) as store:  # opening marks the runs whose process is gone as interrupted
            running = [r for r in store.last_runs(20) if r["status"] == "running"]
    except DamagedDatabaseError:
        return
    if running:
        run = running[0]
        raise CultureCodeError(
            f"`culturecode {run['stage']}` (run {run['id']}, process {run['summary'].get('pid', '?')}) is still "
            f"working on {ws}; restore once it has finished or been stopped"
        )


def _show_backups(rows: list[dict[str, Any]], ws: Path) -> None:
    if not rows:
        out.print(f"No backups in {ws / 'backups'} yet (a command that writes the database takes one a day).")
        return
    print_table(
        rows,
        ["name", Column("taken (UTC)", "taken_at"), Column("bytes", fmt=",", justify="right")],
        title=f"Backups of {ws}",
    )


def _show_restore(report: dict[str, Any]) -> None:
    out.print(
        f"Restored {report['workspace']}/culturecode.db from backup {report['restored']} (taken {report['taken_at']}).",
        highlight=False,
    )
    if report["moved_aside"]:
        out.print(f"The database it replaced was moved to {report['moved_aside'][0]} (not deleted).", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("restore")(restore_cli)
