"""`culturecode meta`: fields on speakers and documents (role, site, wave, ...), set from a file, shown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    ConfigOpt,
    JsonOpt,
    WorkspaceOpt,
    handle_errors,
    open_workspace,
    out,
    print_result,
    settings_for,
)
from pipeline.commands.render import Column, print_table

meta_app = typer.Typer(
    help="Speaker and document fields (role, site, wave, ...).\n\nSet from a file, shown by `segments`, "
    "carried into the export, grouped by `findings --by`.",
    no_args_is_help=True,
)


@meta_app.command("set")
@handle_errors
def meta_set_cli(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            "-f",
            help="CSV/TSV (header row) or JSONL, one row per speaker or document: a 'speaker' (as stored, the "
            "pseudonym when ingest pseudonymised) or 'document' column, the other columns fields.",
        ),
    ],
    drop: Annotated[
        list[str] | None, typer.Option("--drop", help="Remove this field from everyone first (repeatable).")
    ] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Set speaker and document fields from a CSV/TSV/JSONL file.

    The whole file is checked before anything is written; a problem is one line naming file and line."""
    from pipeline.ingest.metadata import set_metadata

    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        report = set_metadata(store, file, drop=drop)
    print_result(report, json_out, _show_set)


def _show_set(report: dict[str, Any]) -> None:
    out.print(
        f"{report['written']} value(s) set from {report['file']}: {report['speakers']} speaker(s), "
        f"{report['documents']} document(s); fields {', '.join(report['fields']) or '-'}."
    )


@meta_app.command("show")
@handle_errors
def meta_show_cli(workspace: WorkspaceOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """List the fields in effect: transcript headers and files."""
    from pipeline.store.fields import header_fields, set_fields_list

    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        fields = [*header_fields(store), *set_fields_list(store)]
    print_result(fields, json_out, _show_fields)


def _show_fields(fields: list[dict[str, Any]]) -> None:
    if not fields:
        out.print("No fields yet: `culturecode meta set --file people.csv`, or `# site: ...` headers in transcripts.")
        return
    print_table(fields, [Column("kind"), Column("key"), Column("name"), Column("value"), Column("source")])


def register(app: typer.Typer) -> None:
    app.add_typer(meta_app, name="meta")
