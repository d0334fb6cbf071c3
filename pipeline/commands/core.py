"""Commands over the workspace itself: ingest, status, segments, config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    WorkspaceOpt,
    handle_errors,
    old_spelling,
    open_workspace,
    out,
    print_json,
    print_result,
    settings_for,
)
from pipeline.commands.render import Column, as_data, print_pairs, print_table
from pipeline.errors import CultureCodeError

config_app = typer.Typer(help="Show and check the settings in effect.", no_args_is_help=True)


# ingest's options
ReplaceOpt = Annotated[
    bool, typer.Option("--replace", help="Re-read documents whose file changed since the last ingest.")
]
PseudonymiseOpt = Annotated[
    bool | None,
    typer.Option(
        "--pseudonymise/--no-pseudonymise",
        help="Replace speaker names by stable pseudonyms before storing; "
        "the mapping goes to <workspace>/pseudonyms.json.",
    ),
]
SkipBadOpt = Annotated[
    bool | None, typer.Option("--skip-bad", help="Skip bad JSONL lines (they are listed) instead of failing.")
]


@handle_errors
def ingest_cli(
    paths: Annotated[
        list[Path], typer.Argument(help="Transcript files or folders (.txt .vtt .srt .csv .tsv .jsonl .docx).")
    ],
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    replace: ReplaceOpt = False,
    pseudonymise: PseudonymiseOpt = None,
    names: Annotated[Path | None, typer.Option("--names", help="Extra names to pseudonymise, one per line.")] = None,
    max_chars: Annotated[
        int | None, typer.Option("--max-chars", help="Split turns longer than this at sentence boundaries.")
    ] = None,
    text_column: Annotated[str | None, typer.Option("--text-column", help="CSV/TSV column holding the text.")] = None,
    speaker_column: Annotated[
        str | None, typer.Option("--speaker-column", help="CSV/TSV column holding the speaker.")
    ] = None,
    skip_bad: SkipBadOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Read transcripts into speaker-turn segments.

    Rerunning adds nothing; changed files need --replace.
    """
    from pipeline.ingest import find_transcripts, ingest
    from pipeline.store.codebooks import adopt_codebook

    settings = settings_for(
        config,
        workspace,
        codebook,
        **{
            "ingest.pseudonymise": pseudonymise,
            "ingest.names_file": str(names) if names else None,
            "ingest.max_segment_chars": max_chars,
            "ingest.csv.text_column": text_column,
            "ingest.csv.speaker_column": speaker_column,
            "ingest.skip_bad": skip_bad or None,
        },
    )
    if names is not None and not settings.ingest.pseudonymise:
        raise CultureCodeError(f"{names}: --names only applies with --pseudonymise (or ingest.pseudonymise: true)")
    book = settings.load_codebook()
    find_transcripts(paths)  # fail on bad paths before creating a workspace
    with open_workspace(settings, create=True) as store:
        adopt_codebook(store, book)
        report = ingest(store, paths, settings.ingest, replace=replace, show_progress=not quiet)
    print_result(report, json_out, lambda r: _show_ingest(r, settings.workspace))


def _show_ingest(report: dict[str, Any], workspace: str) -> None:
    out.print(
        f"Ingested into [bold]{workspace}[/]: {len(report['added'])} new, "
        f"{len(report['replaced'])} replaced, {len(report['unchanged'])} unchanged document(s); "
        f"{report['segments_added']} new segment(s), {report['segments_total']} in total."
    )
    for doc in report["changed"]:
        out.print(f"[yellow]changed on disk, kept as stored:[/] {doc} (rerun with --replace to re-read it)")
    if report["segments_deleted"]:
        out.print(f"{report['segments_deleted']} segment(s) without annotations, gold or tasks left with the old text.")
    _show_superseded(report["superseded"])
    for line in report["skipped_lines"]:
        out.print(f"[yellow]skipped[/] {line}")


def _show_superseded(superseded: list[dict[str, Any]]) -> None:
    if not superseded:
        return
    carried = sum(1 for s in superseded if s["carried_to"])
    out.print(
        f"[yellow]{len(superseded)} changed segment(s) held annotations, gold or Label Studio tasks:[/] {carried} "
        f"carried over to the edited text, {len(superseded) - carried} kept as superseded (their work counts "
        f"nowhere now, nothing was deleted); see `culturecode segments --superseded`",
        highlight=False,
    )
    for s in superseded[:10]:
        work = f"{s['annotations']} annotation(s), {s['gold']} gold, {s['tasks']} task(s)"
        fate = f"carried to {s['carried_to'][:8]} (similarity {s['similarity']})" if s["carried_to"] else "kept"
        out.print(f"  {s['document']} #{s['former_position']} {s['segment_id'][:8]}: {work}; {fate}", highlight=False)


@handle_errors
def status_cli(
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None, json_out: JsonOpt = False
) -> None:
    """Counts per stage and per code, and the last runs."""
    from pipeline.status import workspace_status

    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        report = workspace_status(store, settings.load_codebook()).as_dict()
    print_result(report, json_out, _show_status)


def _show_status(report: dict[str, Any]) -> None:
    counts = {key.replace("_", " "): value for key, value in report["counts"].items()}
    thresholds = (report.get("thresholds") or {}).get("line", "-")
    pairs = {**counts, "current model": report["current_model"] or "-", "thresholds": thresholds}
    print_pairs(pairs, title=f"Workspace {report['workspace']}")
    per_code = [{"code": code, **row} for code, row in report["per_code"].items()]
    print_table(
        per_code, ["code", *(Column(c, justify="right") for c in ("predicted", "annotated", "gold"))], title="Per code"
    )
    print_table(
        report["last_runs"],
        ["id", "stage", "status", Column("started", "started_at"), Column("summary", _run_summary)],
        title="Last runs",
    )


def _run_summary(run: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in (run["summary"] or {}).items() if v not in ([], 0, None))[:80]


@handle_errors
def segments_cli(
    document: Annotated[
        str | None, typer.Option("--document", "-d", help="Document name (file name without extension).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Show at most this many.")] = None,
    superseded: Annotated[
        bool,
        typer.Option(
            "--superseded",
            help="List the segments a re-ingest (--replace) took out of their document, kept for the "
            "annotations, gold or tasks on them.",
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    old_doc: Annotated[str | None, typer.Option("--doc", hidden=True)] = None,
) -> None:
    """List segments, optionally of one document."""
    from pipeline.ingest.metadata import segment_fields
    from pipeline.store.segments import superseded_segments

    doc = old_spelling("--doc", "--document", old_doc, document)
    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        if doc is not None and store.document(doc) is None:
            names = ", ".join(d.id for d in store.documents()[:10])
            raise CultureCodeError(f"no document '{doc}' in {settings.workspace} (documents: {names} ...)")
        if superseded:
            kept = superseded_segments(store, doc)[:limit]
            print_result(kept, json_out, _show_superseded_segments)
            return
        segs = store.segments(doc, limit)
        fields = segment_fields(store)
    rows = [{**as_data(seg), "fields": fields.get(seg.id, {})} for seg in segs]
    print_result(rows, json_out, _show_segments)


def _show_superseded_segments(segs: list[dict[str, Any]]) -> None:
    print_table(
        segs,
        [
            Column("doc", "document_id"),
            Column("was #", "former_position"),
            Column("id", lambda s: s["id"][:8]),
            Column("annotations", justify="right"),
            Column("gold", justify="right"),
            Column("tasks", justify="right"),
            Column("carried to", lambda s: (s["carried_to"] or "-")[:8]),
            Column("text", overflow="fold"),
        ],
        title="Superseded segments",
    )


def _show_segments(segs: list[dict[str, Any]]) -> None:
    print_table(
        segs,
        [
            Column("doc", "document_id"),
            Column("#", "position"),
            Column("speaker", missing=""),
            Column("time", "start_time", fmt=".1f", missing=""),
            Column("id", lambda s: s["id"][:8]),
            Column("fields", lambda s: " ".join(f"{k}={v}" for k, v in s["fields"].items()), missing=""),
            Column("text", overflow="fold"),
        ],
    )


@config_app.command("show")
@handle_errors
def config_show_cli(
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None, json_out: JsonOpt = False
) -> None:
    """Print the effective settings (file values with flags applied)."""
    settings = settings_for(config, workspace, codebook)
    print_result(settings.model_dump(), json_out, _show_yaml)


def _show_yaml(data: dict[str, Any]) -> None:
    import yaml

    out.print(yaml.safe_dump(data, sort_keys=False).rstrip(), highlight=False)


@config_app.command("check")
@handle_errors
def config_check_cli(
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None, json_out: JsonOpt = False
) -> None:
    """Validate the settings file and the codebook.

    Prints the codebook's codes and hash.
    """
    from pipeline.labellers.registry import check_llm_backend

    settings = settings_for(config, workspace, codebook)  # a workspace path that is a file is refused here
    check_llm_backend(settings.llm.backend)  # the installed backends come from the labeller registry
    book = settings.load_codebook()
    result = {
        "codebook": book.id,
        "path": str(settings.codebook_path()),
        "codes": book.code_ids,
        "hash": book.content_hash,
        "workspace": str(settings.workspace),
    }
    if json_out:
        print_json(result)
        return
    out.print(
        f"settings OK; codebook '{book.id}' ({result['path']}): {len(book.codes)} codes, hash {book.content_hash}; "
        f"workspace {result['workspace']}"
    )
    out.print(", ".join(book.code_ids))


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cli)
    app.command("status")(status_cli)
    app.command("segments")(segments_cli)
    app.add_typer(config_app, name="config")
