"""The README is a front page that tells the truth, and the docs it leads to hold together.

Every CLI command is named in the README (a habit from sqlite-utils); the README stays a front page
(<= 200 lines, a section and a docs page per role, the two set-up commands); every relative link in
README.md and docs/*.md reaches a file that exists, and a `#fragment` into a Markdown file a heading
of it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _command_paths(group, prefix=()):
    for name, command in group.commands.items():
        if command.hidden:  # an old spelling kept as an alias (tests/unit/test_cli_aliases.py)
            continue
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


def test_every_command_is_in_the_commands_page():
    page = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    missing = [c for c in _command_paths(typer.main.get_command(app)) if f"`culturecode {c}" not in page]
    assert not missing, f"commands missing from docs/commands.md: {missing}"


def test_readme_quick_start_names_the_two_setup_commands():
    assert "make demo" in README and "make test" in README


def test_readme_is_a_front_page():
    lines = README.count("\n")
    assert lines <= 200, f"README.md has {lines} lines: move the detail into docs/"
    for role, page in [
        ("Annotators", "docs/annotators.md"),
        ("ML engineers", "docs/ml-engineer.md"),
        ("Researchers", "docs/researchers.md"),
    ]:
        assert f"\n## {role}\n" in README, f"no section for {role}"
        section = README.split(f"\n## {role}\n")[1].split("\n## ")[0]
        assert f"]({page})" in section, f"the {role} section does not link {page}"
    assert "](docs/scaling.md" in README.split("\n## Scaling up\n")[1]
    assert "```\ntranscripts ──ingest──▶" in README  # the picture of the flow


def test_readme_states_no_model_quality_but_links_it():
    """Model quality lives in docs/classifier.md; the README only points there."""
    assert not re.search(r"\b(?:macro|micro)[- ]F1\b|\bdev F1\b", README, re.I)
    assert "](docs/classifier.md)" in README


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _relative_links(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files(page):
    broken = []
    for target in _relative_links(page):
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and file.suffix == ".md" and fragment not in _anchors(file):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"
