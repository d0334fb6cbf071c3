"""Every command and sub-command answers --help, and the root help lists them by panel in the order of the flow."""

from __future__ import annotations

import inspect
import re

import pytest
import typer.main
from typer.testing import CliRunner

from pipeline.cli import PANELS, app


def _command_paths(group, prefix: tuple[str, ...] = ()):
    """The root, every group and every leaf command, as argument paths."""
    yield prefix
    for name, command in group.commands.items():
        if getattr(command, "commands", None):
            yield from _command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


PATHS = list(_command_paths(typer.main.get_command(app)))


def test_the_tree_has_the_stage_commands():
    assert {("ingest",), ("prelabel",), ("llm", "label"), ("models", "promote"), ("studio", "start")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "culturecode")
def test_help_of_every_command(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout and len(result.stdout.strip().splitlines()) > 3


def _panels(help_text: str) -> dict[str, list[str]]:
    """The boxed panels of a rich --help screen (`╭─ Title ───╮`), top to bottom, with the first word of each row."""
    panels: dict[str, list[str]] = {}
    rows: list[str] = []
    for line in help_text.splitlines():
        if match := re.match(r"^╭─ (.+?) ─+╮$", line):
            rows = panels.setdefault(match.group(1), [])
        elif line.startswith("│ ") and line[2] != " ":  # a row's first line, not a wrapped continuation
            rows.append(line[2:].split()[0])
    return panels


def test_help_groups_the_commands_in_panels_in_flow_order():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    panels = _panels(result.stdout)
    flow = ["Set up", "Ingest", "Label", "Studio", "Agreement and gold", "Models", "Live loop", "Reports"]
    assert list(panels) == ["Options", *flow], list(panels)
    assert list(PANELS) == flow
    # each command is listed once, under its panel, in the order PANELS gives
    assert {title: rows for title, rows in panels.items() if title != "Options"} == {
        title: list(names) for title, names in PANELS.items()
    }


def test_every_command_sits_in_a_panel():
    """A command left out of pipeline.cli.PANELS would fall into typer's default "Commands" panel, listed first."""
    root = typer.main.get_command(app)
    placed = [name for names in PANELS.values() for name in names]
    shown = {name: command for name, command in root.commands.items() if not command.hidden}  # hidden: old names
    assert sorted(placed) == sorted(shown), "pipeline.cli.PANELS and the registered commands differ"
    assert len(placed) == len(set(placed)), "a command is in two panels"
    for name, command in shown.items():
        assert command.rich_help_panel in PANELS, name


@pytest.mark.parametrize("path", [p for p in PATHS if p], ids=" ".join)
def test_one_line_summaries_are_short(path):
    """The first paragraph of each command's help is its summary in the panels: one line of <= 70 characters."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    first = inspect.cleandoc(command.help or "").split("\n\n")[0]
    assert first and "\n" not in first, f"the summary wraps in the source: {first!r}"
    assert len(first) <= 70, f"{len(first)} characters: {first!r}"


@pytest.mark.parametrize(
    "path", [p for p in PATHS if p == () or len(p) == 1], ids=lambda p: " ".join(p) or "culturecode"
)
def test_summaries_fit_one_line_of_an_80_column_terminal(path):
    """No command's summary wraps in a command panel of `--help` on an 80-column terminal."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    panels = result.stdout.split("╭─ ")[1:]
    for panel in panels:
        title, *lines = panel.splitlines()
        if title.startswith(("Options", "Arguments")):
            continue
        wrapped = [line for line in lines if line.startswith("│   ")]
        assert not wrapped, f"{title.split(' ─')[0]}: a summary wraps: {wrapped}"
