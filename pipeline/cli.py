"""The `culturecode` command: a thin typer layer; each command calls one library function.

Stage commands live in `pipeline/commands/<stage>.py` and register themselves here. Those modules
import only typer, rich and light project modules at load time; each command imports its stage
(torch, transformers, label_studio_sdk, ...) inside its function, so `--help` and `status` start
in a fraction of a second (tests/unit/test_cli_lazy.py checks the modules loaded).
"""

from __future__ import annotations

import typer

from pipeline import __version__
from pipeline.commands import agreement as agreement_commands
from pipeline.commands import appendix as appendix_commands
from pipeline.commands import calibrate as calibrate_commands
from pipeline.commands import classifier as classifier_commands
from pipeline.commands import core
from pipeline.commands import learning as learning_commands
from pipeline.commands import llm as llm_commands
from pipeline.commands import loop as loop_commands
from pipeline.commands import plan as plan_commands
from pipeline.commands import recode as recode_commands
from pipeline.commands import restore as restore_commands
from pipeline.commands import studio as studio_commands

app = typer.Typer(
    name="culturecode",
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

if __name__ == "__main__":
    app()
