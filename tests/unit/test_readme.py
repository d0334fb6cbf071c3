"""The README tells the truth: every CLI command is documented there (a habit from sqlite-utils)."""

from __future__ import annotations

from pathlib import Path

import typer.main

from pipeline.cli import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _command_paths(group, prefix=()):
    for name, command in group.commands.items():
        path = (*prefix, name)
        if getattr(command, "commands", None):
            yield from _command_paths(command, path)
        else:
            yield " ".join(path)


def test_every_command_is_in_the_readme():
    commands = sorted(_command_paths(typer.main.get_command(app)))
    assert "ingest" in commands and "status" in commands
    missing = [c for c in commands if f"culturecode {c}" not in README]
    assert not missing, f"commands missing from README.md: {missing}"


def test_readme_quick_start_names_the_two_setup_commands():
    assert "make demo" in README and "make test" in README
