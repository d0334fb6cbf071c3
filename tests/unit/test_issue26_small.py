"""Issue 26 #9, the smaller defects, each with the row that failed before its fix."""

from __future__ import annotations

import pytest

from pipeline.config import load_codebook
from tests import factory
from tests.conftest import FIXTURES
from tests.unit.test_bad_input_defects import run

BOOK = FIXTURES / "codebook_small.yaml"


@pytest.mark.parametrize(
    "command", [("segments", "-n", "-1"), ("segments", "-n", "0"), ("disagreements", "-n", "0"), ("next", "-n", "-5")]
)
def test_a_count_below_one_is_refused_not_read_as_all(tmp_path, command):
    """`segments -n -1` listed every segment."""
    factory.make_workspace(tmp_path / "ws", load_codebook(BOOK), {"doc": ["One.", "Two.", "Three."]}).close()
    result = run(*command, "--workspace", tmp_path / "ws")
    assert result.exit_code == 2 and "Invalid value for" in result.output, result.output
