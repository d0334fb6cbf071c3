"""Issue 26 #6: a command given an existing empty folder as its workspace made a database there: status, segments,
plan, loop status, models list and appendix even exited 0; next, admission, agreement, calibrate and recode failed but
left the file behind. Now only `ingest` and `train` make a workspace; the rest say so, exit 2, and leave the folder as
it was."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES
from tests.unit.test_bad_input_defects import one_line_error, run

COMMANDS = [
    ("status",),
    ("segments",),
    ("reliability",),  # was `plan`
    ("loop", "status"),
    ("models", "list"),
    ("models", "prune"),
    ("appendix",),
    ("next",),
    ("admission",),
    ("agreement",),
    ("calibrate",),
    ("recode", "--dry-run"),
    ("prelabel",),
    ("export",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_a_command_on_an_empty_folder_makes_no_workspace(tmp_path, command):
    empty = tmp_path / "E"
    empty.mkdir()
    book = ["--codebook", FIXTURES / "codebook_small.yaml"] if command[0] in ("recode", "prelabel") else []
    result = run(*command, "--workspace", empty, *book)
    one_line_error(result, f"no workspace in '{empty}'", "culturecode ingest")
    assert list(empty.iterdir()) == []
