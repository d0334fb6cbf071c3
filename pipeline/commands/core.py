"""Commands over the workspace itself: ingest, status, segments, config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from pipeline.commands.common import (CodebookOpt, ConfigOpt, JsonOpt, WorkspaceOpt, handle_errors,
                                      open_workspace, out, print_json, settings_for)
from pipeline.errors import CultureCodeError
from pipeline.ingest import find_transcripts, ingest
from pipeline.status import workspace_status

config_app = typer.Typer(help="Show and check the settings in effect.", no_args_is_help=True)


@handle_errors
def ingest_cli(
    paths: Annotated[list[Path], typer.Argument(help="Transcript files or folders (.txt .vtt .srt .csv .tsv .jsonl .docx).")],
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    replace: Annotated[bool, typer.Option("--replace", help="Re-read documents whose file changed since the last ingest.")] = False,
    pseudonymise: Annotated[bool | None, typer.Option("--pseudonymise/--no-pseudonymise", help="Replace speaker names by stable pseudonyms before storing; the mapping goes to <workspace>/pseudonyms.json.")] = None,
    names: Annotated[Path | None, typer.Option("--names", help="Extra names to pseudonymise, one per line.")] = None,
    max_chars: Annotated[int | None, typer.Option("--max-chars", help="Split turns longer than this at sentence boundaries.")] = None,
    text_column: Annotated[str | None, typer.Option("--text-column", help="CSV/TSV column holding the text.")] = None,
    speaker_column: Annotated[str | None, typer.Option("--speaker-column", help="CSV/TSV column holding the speaker.")] = None,
    skip_bad: Annotated[bool | None, typer.Option("--skip-bad", help="Skip bad JSONL lines (they are listed) instead of failing.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Read transcripts into speaker-turn segments. Rerunning adds nothing; changed files need --replace."""
    settings = settings_for(config, workspace, codebook, **{
        "ingest.pseudonymise": pseudonymise, "ingest.names_file": str(names) if names else None,
        "ingest.max_segment_chars": max_chars, "ingest.csv.text_column": text_column,
        "ingest.csv.speaker_column": speaker_column, "ingest.skip_bad": skip_bad or None})
    book = settings.load_codebook()
    find_transcripts(paths)  # fail on bad paths before creating a workspace
    with open_workspace(settings, create=True) as store:
        _check_codebook(store, book)
        report = ingest(store, paths, settings.ingest, replace=replace, show_progress=not quiet)
    if json_out:
        print_json(report.as_dict())
        return
    out.print(f"Ingested into [bold]{settings.workspace}[/]: {len(report.added)} new, "
              f"{len(report.replaced)} replaced, {len(report.unchanged)} unchanged document(s); "
              f"{report.segments_added} new segment(s), {report.segments_total} in total.")
    for doc in report.changed:
        out.print(f"[yellow]changed on disk, kept as stored:[/] {doc} (rerun with --replace to re-read it)")
    for line in report.skipped_lines:
        out.print(f"[yellow]skipped[/] {line}")


def _check_codebook(store, book) -> None:
    """Record the codebook; a different one is refused once anything has been labelled with the old."""
    stored = store.codebook_hash
    if stored == book.content_hash:
        return
    if stored is not None and store.count("annotations") + store.count("predictions") > 0:
        raise CultureCodeError(
            f"the codebook differs from the one this workspace was labelled with ({stored}); "
            f"use the original codebook or a new workspace")
    with store.transaction():
        store.record_codebook(book)


@handle_errors
def status_cli(workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
               json_out: JsonOpt = False) -> None:
    """Counts per stage and per code, and the last runs."""
    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        report = workspace_status(store, settings.load_codebook())
    if json_out:
        print_json(report)
        return
    counts = Table(title=f"Workspace {report['workspace']}", show_header=False)
    for key, value in report["counts"].items():
        counts.add_row(key.replace("_", " "), str(value))
    counts.add_row("current model", report["current_model"] or "-")
    out.print(counts)
    codes = Table(title="Per code", show_lines=False)
    for col in ("code", "predicted", "annotated", "gold"):
        codes.add_column(col, justify="right" if col != "code" else "left")
    for code, row in report["per_code"].items():
        codes.add_row(code, str(row["predicted"]), str(row["annotated"]), str(row["gold"]))
    out.print(codes)
    runs = Table(title="Last runs")
    for col in ("id", "stage", "status", "started", "summary"):
        runs.add_column(col)
    for run in report["last_runs"]:
        summary = ", ".join(f"{k}={v}" for k, v in run["summary"].items() if v not in ([], 0, None))
        runs.add_row(str(run["id"]), run["stage"], run["status"], run["started_at"], summary[:80])
    out.print(runs)


@handle_errors
def segments_cli(
    doc: Annotated[str | None, typer.Option("--doc", "-d", help="Document name (file name without extension).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="Show at most this many.")] = None,
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False,
) -> None:
    """List segments, optionally of one document."""
    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        if doc is not None and store.document(doc) is None:
            names = ", ".join(d.id for d in store.documents()[:10])
            raise CultureCodeError(f"no document '{doc}' in {settings.workspace} (documents: {names} ...)")
        segs = store.segments(doc, limit)
    if json_out:
        print_json([s.__dict__ for s in segs])
        return
    table = Table(show_lines=False)
    for col in ("doc", "#", "speaker", "time", "id", "text"):
        table.add_column(col, overflow="fold" if col == "text" else "ellipsis")
    for s in segs:
        time = f"{s.start_time:.1f}" if s.start_time is not None else ""
        table.add_row(s.document_id, str(s.position), s.speaker or "", time, s.id[:8], s.text)
    out.print(table)


@config_app.command("show")
@handle_errors
def config_show_cli(workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
                    json_out: JsonOpt = False) -> None:
    """Print the effective settings (file values with flags applied)."""
    settings = settings_for(config, workspace, codebook)
    data = settings.model_dump()
    if json_out:
        print_json(data)
    else:
        out.print(yaml.safe_dump(data, sort_keys=False).rstrip(), highlight=False)


@config_app.command("check")
@handle_errors
def config_check_cli(config: ConfigOpt = None, codebook: CodebookOpt = None) -> None:
    """Validate the settings file and the codebook; print the codebook's codes and hash."""
    settings = settings_for(config, None, codebook)
    book = settings.load_codebook()
    out.print(f"settings OK; codebook '{book.id}' ({settings.codebook_path()}): {len(book.codes)} codes, "
              f"hash {book.content_hash}")
    out.print(", ".join(book.code_ids))


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cli)
    app.command("status")(status_cli)
    app.command("segments")(segments_cli)
    app.add_typer(config_app, name="config")
