"""`culturecode calibrate`: re-tune the current classifier's thresholds on the project's own human labels and
refresh the pre-labels of unannotated segments and tasks (`pipeline.agreement.calibration`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    WorkspaceOpt,
    handle_errors,
    open_workspace,
    out,
    print_result,
    settings_for,
)
from pipeline.commands.render import Column, print_table
from pipeline.errors import CultureCodeError


@handle_errors
def calibrate_cli(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the thresholds it would set; change nothing.")
    ] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-tune the model's thresholds on the project's labels.

    The current classifier's per-code thresholds, on the project's human labels (adjudicated gold,
    else the annotators' majority, on segments it did not train on) once there are
    classifier.calibration_min_labels of them; codes with fewer than
    classifier.calibration_min_positives human positives (or negatives) keep the model's own
    threshold. The pre-labels of unannotated segments follow, and so do those of Label Studio tasks
    nobody has annotated. `pull` runs this too.
    """
    from pipeline.agreement.calibration import NO_MODEL, calibrate

    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        result = calibrate(store, settings, settings.load_codebook(), dry_run=dry_run, show_progress=not quiet)
    if result.status == NO_MODEL:
        raise CultureCodeError(
            f"no classifier in {settings.workspace} to calibrate: train one with `culturecode train --gold FILE`"
        )
    print_result(result, json_out, _show)


def _show(result: dict[str, Any]) -> None:
    new = Column("new", lambda r: f"{r['after']:.2f}" + (" *" if r["after"] != r["before"] else ""), justify="right")
    print_table(
        result["codes"],
        [
            "code",
            Column("model", fmt=".2f", justify="right"),
            Column("before", fmt=".2f", justify="right"),
            new,
            Column("from", "source"),
            Column("positives", justify="right"),
            Column("negatives", justify="right"),
        ],
        title=f"Thresholds of {result['model_version']} (* moved)",
    )
    out.print(result["message"], highlight=False)
    for warning in result["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_cli)
