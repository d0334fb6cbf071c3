"""Every command and sub-command answers --help (a smoke test over the whole command tree)."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from pipeline.cli import app


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
