"""docs/cli.md is generated from the CLI (`make docs`): it fails here when a command changed without it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "cli.md"


def test_cli_docs_are_up_to_date(tmp_path):
    fresh = tmp_path / "cli.md"
    subprocess.run(
        [sys.executable, "scripts/cli_docs.py", "--output", str(fresh)],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    committed = COMMITTED.read_text(encoding="utf-8")
    assert fresh.read_text(encoding="utf-8") == committed, "docs/cli.md is stale: run `make docs`"
    assert "### `culturecode prelabel`" in committed and "--model-version" in committed


def test_make_docs_runs_the_generator():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^docs:.*\n\t.*scripts/cli_docs\.py --output docs/cli\.md$", makefile, re.M)


def test_cli_docs_are_plain_markdown():
    """No HTML escapes (`-&gt;`, `&#x27;`) and no raw tags: the reference reads the same as text and rendered."""
    text = COMMITTED.read_text(encoding="utf-8")
    escapes = sorted(set(re.findall(r"&(?:[A-Za-z]+|#[0-9]+|#x[0-9A-Fa-f]+);", text)))
    assert not escapes, f"HTML escapes in docs/cli.md: {escapes}"
    assert "->" in text and "classifier's" in text
    outside_code = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)
    tags = sorted(set(re.findall(r"(?<!\\)<[A-Za-z/][^>\n]*>", outside_code)))
    assert not tags, f"raw HTML tags in docs/cli.md: {tags}"


def test_cli_docs_follow_the_help_panels():
    """One section per panel of `culturecode --help`, in the same order, each command under its own panel."""
    from pipeline.cli import PANELS

    text = COMMITTED.read_text(encoding="utf-8")
    panels = re.findall(r"^## (.+)$", text, re.M)
    assert panels == list(PANELS)
    commands = re.findall(r"^### `culturecode (\S+)`$", text, re.M)
    assert commands == [name for names in PANELS.values() for name in names]
