"""The `culturecode` command: a thin typer layer; each command calls one library function.

Stage commands live in `pipeline/commands/<stage>.py` and register themselves here. Those modules
import only typer, rich and light project modules at load time; each command imports its stage
(torch, transformers, label_studio_sdk, ...) inside its function, so `--help` and `status` start
in a fraction of a second (tests/unit/test_cli_lazy.py checks the modules loaded).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from pipeline import __version__
from pipeline.commands import agreement as agreement_commands
from pipeline.commands import appendix as appendix_commands
from pipeline.commands import calibrate as calibrate_commands
from pipeline.commands import classifier as classifier_commands
from pipeline.commands import core
from pipeline.commands import findings as findings_commands
from pipeline.commands import learning as learning_commands
from pipeline.commands import llm as llm_commands
from pipeline.commands import loop as loop_commands
from pipeline.commands import meta as meta_commands
from pipeline.commands import plan as plan_commands
from pipeline.commands import recode as recode_commands
from pipeline.commands import restore as restore_commands
from pipeline.commands import studio as studio_commands

# The panels of `culturecode --help`, in the order of the flow, and the commands each holds, in that
# order too; docs/cli.md follows them (scripts/cli_docs.py). A new command goes in one of them.
PANELS: dict[str, tuple[str, ...]] = {
    "Set up": ("config", "restore"),
    "Ingest": ("ingest", "segments", "meta"),
    "Label": ("prelabel", "llm", "next", "recode"),
    "Studio": ("studio", "annotators", "push", "pull"),
    "Agreement and gold": ("reliability", "agreement", "disagreements", "adjudicate", "export"),
    "Models": ("train", "evaluate", "models", "admission", "calibrate", "retrain", "distill"),
    "Live loop": ("serve", "loop"),
    "Reports": ("status", "findings", "appendix"),
}


class FlowGroup(TyperGroup):
    """The root command: lists its commands panel by panel, in the order of PANELS."""

    def list_commands(self, ctx: Any) -> list[str]:  # typer's own copy of click's Context
        order = [name for names in PANELS.values() for name in names]
        return sorted(super().list_commands(ctx), key=lambda name: order.index(name) if name in order else len(order))


app = typer.Typer(
    name="culturecode",
    cls=FlowGroup,
    help=(
        "LLM-assisted annotation for qualitative research.\n\n"
        "Flow: ingest -> prelabel -> push (Label Studio) -> annotators correct -> pull -> "
        "agreement / adjudicate -> train -> export. Every command takes --workspace."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"culturecode {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """culturecode: transcripts in, agreement figures and gold data out."""


core.register(app)
agreement_commands.register(app)
plan_commands.register(app)
recode_commands.register(app)
appendix_commands.register(app)
classifier_commands.register(app)
calibrate_commands.register(app)
learning_commands.register(app)
studio_commands.register(app)
loop_commands.register(app)
llm_commands.register(app)
restore_commands.register(app)
meta_commands.register(app)
findings_commands.register(app)


def _place_in_panels(typer_app: typer.Typer) -> None:
    """Give every registered command and command group its help panel from PANELS."""
    panel_of = {name: panel for panel, names in PANELS.items() for name in names}
    for command in typer_app.registered_commands:
        command.rich_help_panel = panel_of.get(command.name or "")
    for group in typer_app.registered_groups:
        group.rich_help_panel = panel_of.get(group.name or "")


_place_in_panels(app)

if __name__ == "__main__":
    app()
