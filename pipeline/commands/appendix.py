"""`culturecode appendix`: the methods appendix (HTML, Markdown, LaTeX and CITATION.cff) from the workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    JsonOpt,
    WorkspaceOpt,
    handle_errors,
    open_workspace,
    out,
    print_result,
    settings_for,
)


@handle_errors
def appendix_cli(
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Folder for appendix.{html,md,tex} and CITATION.cff (default: <workspace>/appendix)."
        ),
    ] = None,
    keep_annotator_ids: Annotated[
        bool,
        typer.Option("--keep-annotator-ids", help="Keep annotator e-mails instead of pseudonyms (annotator_1, ...)."),
    ] = False,
    drift_batch: Annotated[
        int, typer.Option("--drift-batch", min=1, help="Coder drift: segments per batch of each annotator.")
    ] = 50,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the methods appendix (HTML, Markdown, LaTeX).

    The codebook and its versions, data, procedure, agreement with CIs, the reliability plan, the
    anchoring check, coder drift, model cards, LLM prompts with hashes, a data statement (Bender and
    Friedman 2018) and software versions; one self-contained HTML file, Markdown and LaTeX, plus
    CITATION.cff.

    Reproducible: the same workspace gives the same files apart from the generation date.
    """
    from pipeline.gold.appendix import build_appendix
    from pipeline.gold.appendix_formats import write_appendix
    from pipeline.outputs import writable_folder

    settings = settings_for(config, workspace, codebook)
    if out_dir is not None:  # a bad --out fails before anything is computed
        writable_folder(out_dir, "methods appendix")
    with open_workspace(settings) as store:
        appendix = build_appendix(store, settings, settings.load_codebook(), keep_annotator_ids, drift_batch)
        folder = out_dir or store.workspace / "appendix"
    paths = write_appendix(appendix.as_dict(), folder)
    result = {"generated_on": appendix.generated_on, "outline": appendix.outline(), "paths": paths}
    print_result(result, json_out, _show)


def _show(result: dict[str, Any]) -> None:
    out.print("Methods appendix:", highlight=False)
    for line in result["outline"]:
        out.print(f"  {line}", highlight=False)
    for fmt, path in result["paths"].items():
        out.print(f"{fmt:>5}: {path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("appendix")(appendix_cli)
