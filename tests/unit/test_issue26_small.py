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


def test_plan_for_a_vanishing_share_is_refused_not_a_300_digit_count():
    result = run("plan", "--smallest-share", "1e-300")
    assert result.exit_code == 2 and "more than 10,000,000" in result.stderr and len(result.stdout) < 200
    assert run("plan", "--smallest-share", "0.25", "--json").exit_code == 0


def test_plan_refuses_a_model_version_the_workspace_does_not_have(tmp_path):
    """`plan --model-version nope` printed 'no expected share' per code and recorded an ok run."""
    book = load_codebook(BOOK)
    store = factory.make_workspace(tmp_path / "ws", book, {"doc": ["One.", "Two."]})
    factory.add_model(store, "clf-001", book, {"doc-0": ["carrot"]})
    store.close()
    result = run("plan", "--model-version", "nope", "--workspace", tmp_path / "ws", "--codebook", BOOK)
    assert result.exit_code == 2 and "no model version 'nope'" in result.stderr and "clf-001" in result.stderr
    assert run("plan", "--model-version", "clf-001", "--workspace", tmp_path / "ws", "--codebook", BOOK).exit_code == 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("serve", "--port", "0"), "loop.port = 0"),
        (("serve", "--every", "0"), "loop.every = 0"),
        (("prelabel", "--batch-size", "0"), "classifier.inference_batch_size = 0"),
    ],
)
def test_a_bad_option_value_is_blamed_on_the_option_not_the_settings_file(tmp_path, args, field):
    """Flag errors read "Error: <install dir>/configs/pipeline.yaml: field 'loop.port' ...", a file never passed."""
    result = run(*args, "--workspace", tmp_path / "ws")
    assert result.exit_code == 2 and f"{field} (given as an option)" in result.stderr, result.output
    assert "pipeline.yaml" not in result.stderr
