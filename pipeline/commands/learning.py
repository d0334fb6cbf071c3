"""`culturecode next`: which unannotated segments come next under a selection strategy, and why.

`pipeline.learning` (numpy for the diversity strategy) is imported inside the command.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    ConfigOpt,
    JsonOpt,
    ModelVersionOpt,
    WorkspaceOpt,
    handle_errors,
    old_spelling,
    open_workspace,
    out,
    print_result,
    settings_for,
)
from pipeline.commands.render import Column, print_table

TEXT_WIDTH = 70


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_WIDTH else text[: TEXT_WIDTH - 1] + "…"


NEXT_COLUMNS = [
    Column("#", "rank", justify="right"),
    Column("segment", "segment_id", fmt=lambda v: str(v)[:12]),
    Column("document", "document_id"),
    Column("code"),
    Column("score", fmt=".2f", justify="right"),
    Column("margin", fmt="+.2f", justify="right"),
    Column("why", "reason", overflow="fold"),
    Column("text", fmt=_short, overflow="fold"),
]


@handle_errors
def next_cli(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many segments to list.")] = 20,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            "-s",
            help="uncertainty (closest to a code's threshold), rare (best bets for the codes with the fewest labels), "
            "diversity (covers the kinds of segments), hybrid (rarity-weighted uncertainty, a diverse batch), "
            "typical (cold start: the segments most like each code's codebook text, in dense regions), "
            "anchor (for rare codes: the nearest neighbours of their labelled positives and codebook text, by margin), "
            "auto (typical until labels arrive, then hybrid with anchor for the codes still rare), "
            "random (the baseline), or a plugin's (docs/learning.md).",
        ),
    ] = "uncertainty",
    model_version: ModelVersionOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random strategy and of diversity's sample.")] = 0,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    old_n: Annotated[int | None, typer.Option("--n", min=1, hidden=True)] = None,
) -> None:
    """List the unannotated segments to code next, and why.

    Why: score, margin from the threshold, rare code, cluster, from the current model's stored
    predictions. Reads the workspace only.
    """
    from pipeline.learning import next_segments

    limit = old_spelling("--n", "--limit", old_n, limit)
    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        report = next_segments(store, strategy, limit, model_version, seed)
    print_result(report, json_out, _show_next)


def _show_next(report: dict[str, Any]) -> None:
    counts = ", ".join(f"{code} {n}" for code, n in sorted(report["label_counts"].items(), key=lambda kv: kv[1]))
    caption = f"labels per code ({report['counts_from']}): {counts}" if counts else None
    print_table(
        report["picks"],
        NEXT_COLUMNS,
        title=f"Next {len(report['picks'])} of {report['candidates']} unannotated segment(s) by {report['strategy']}"
        f" (model {report['model_version']})",
        caption=caption,
    )
    if report["unscored"]:
        out.print(
            f"[yellow]{report['unscored']} unannotated segment(s) have no score from {report['model_version']}[/]: "
            "run `culturecode prelabel` to include them.",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("next")(next_cli)
