"""`culturecode recode`: after a codebook edit, re-score the segments, find the predictions that flip and send
only those to review."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    WorkspaceOpt,
    check_labeller,
    handle_errors,
    open_workspace,
    out,
    print_result,
    print_table,
    settings_for,
)

SHOWN = 20  # flipped segments listed in the table (--json lists all)


WithOpt = Annotated[
    str,
    typer.Option(
        "--with",
        help="The labeller whose current model re-scores: classifier (needs --retrain) or llm (re-prompted "
        "with the edited codebook), or a plugin.",
    ),
]
RetrainOpt = Annotated[
    bool,
    typer.Option(
        "--retrain",
        help="Train two classifiers on the gold labels with the same settings, one under each codebook, and "
        "compare them (so the flips come from the edit, not from new labels); the new one becomes current.",
    ),
]


@handle_errors
def recode_cli(
    with_: WithOpt = "classifier",
    retrain: RetrainOpt = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="List the segments that flip; push nothing and keep the workspace's codebook and model."
        ),
    ] = False,
    adjudicator: Annotated[
        str | None,
        typer.Option(
            "--adjudicator", help="The reviewer (name or e-mail) whose review project gets the flipped segments."
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Re-score under an edited codebook; review what flips.

    Re-scores the workspace under an edited codebook (--codebook, or the one in the settings), lists the
    segments whose predicted codes flip, and sends only those to a Label Studio review project.

    The workspace then labels with the edited codebook; every version stays in its history (hash, YAML, first
    seen), and agreement is reported per codebook version.
    """
    from pipeline.gold.recode import recode

    settings = settings_for(config, workspace, codebook)
    name = check_labeller(with_)
    book = settings.load_codebook()
    with open_workspace(settings) as store:
        report = recode(
            store, settings, book, name, retrain, dry_run, adjudicator, show_progress=not (quiet or json_out)
        )
    print_result(report.as_dict(), json_out, _show)


def _show(report: dict[str, Any]) -> None:
    flips = report["flips"]
    rows = [
        {"segment": f["segment_id"], "before": ", ".join(f["before"]) or "-", "after": ", ".join(f["after"]) or "-"}
        for f in flips[:SHOWN]
    ]
    if rows:
        title = f"Flipped segments ({len(flips)}{'; first ' + str(SHOWN) if len(flips) > SHOWN else ''})"
        print_table(rows, ["segment", "before", "after"], title=title)
    if report["by_code"]:
        moved = ", ".join(f"{c} +{n['gained']}/-{n['lost']}" for c, n in report["by_code"].items())
        out.print(f"Codes gained/lost: {moved}", highlight=False)
    out.print(report["message"], highlight=False)


def register(app: typer.Typer) -> None:
    app.command("recode")(recode_cli)
