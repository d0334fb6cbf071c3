"""docs/cli.md is generated from the CLI (`make docs`): it fails here when a command changed without it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _docs_title() -> str:
    """The title `make docs` passes, so the test and the Makefile cannot drift apart."""
    match = re.search(r"^CLI_DOCS_TITLE := (.+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert match, "Makefile has no CLI_DOCS_TITLE"
    return match.group(1).strip()


def test_cli_docs_are_up_to_date(tmp_path):
    fresh = tmp_path / "cli.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "pipeline.cli",
            "utils",
            "docs",
            "--name",
            "culturecode",
            "--title",
            _docs_title(),
            "--output",
            str(fresh),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert fresh.read_text(encoding="utf-8") == committed, "docs/cli.md is stale: run `make docs`"
    assert "## `culturecode prelabel`" in committed and "--model-version" in committed
