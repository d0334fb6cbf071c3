"""One word per idea on the command line (issue 24 #4): each old spelling still works as a hidden alias, prints the
new spelling on one line of stderr, and does what the new spelling does."""

from __future__ import annotations

import json
from pathlib import Path

import typer.main
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.commands.common import annotator_emails
from pipeline.config import Settings
from tests.unit.test_agreement_workspace import ANNOTATORS, SMALL_CODEBOOK, build_workspace

runner = CliRunner()


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def _note(result) -> str:
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note: ")]
    assert len(notes) == 1, result.stderr
    return notes[0]


def _hidden(*path: str) -> bool:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return bool(command.hidden)


def test_next_n_is_now_limit(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    build_workspace(workspace).close()
    new = run("next", "-w", workspace, "--limit", "2", "--json")
    old = run("next", "-w", workspace, "--n", "2", "--json")
    short = run("next", "-w", workspace, "-n", "2", "--json")
    assert new.exit_code == old.exit_code == short.exit_code == 0, old.output
    assert json.loads(old.stdout) == json.loads(new.stdout) == json.loads(short.stdout)
    assert "--n is now --limit" in _note(old)
    assert not new.stderr.strip() and not short.stderr.strip()
    assert "--n" not in run("next", "--help").stdout.replace("--no-", "")


def test_segments_doc_is_now_document(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    build_workspace(workspace).close()
    new = run("segments", "-w", workspace, "--document", "doc_b", "--json")
    old = run("segments", "-w", workspace, "--doc", "doc_b", "--json")
    assert new.exit_code == old.exit_code == 0, old.output
    assert json.loads(old.stdout) == json.loads(new.stdout)
    assert {s["document_id"] for s in json.loads(new.stdout)} == {"doc_b"}
    assert "--doc is now --document" in _note(old)
    assert "--doc " not in run("segments", "--help").stdout


def test_llm_serve_is_now_llm_test_server(tmp_path: Path) -> None:
    assert _hidden("llm", "serve") and not _hidden("llm", "test-server")
    missing = tmp_path / "nope.yaml"
    old = run("llm", "serve", "--config", missing)
    new = run("llm", "test-server", "--config", missing)
    assert old.exit_code == new.exit_code == 2  # the same command: the same one-line error, before any model loads
    assert old.stderr.splitlines()[1:] == new.stderr.splitlines()
    assert "`culturecode llm serve` is now `culturecode llm test-server`" in _note(old)


def test_annotators_take_names_or_emails() -> None:
    settings = Settings()
    domain = settings.studio.annotator_domain
    assert annotator_emails("alice, Bob@Example.org", settings) == [f"alice@{domain}", "Bob@Example.org"]
    assert annotator_emails("", settings) is None


def test_agreement_annotators_by_name_as_by_email(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    build_workspace(workspace).close()
    config = tmp_path / "team.yaml"
    config.write_text("studio:\n  annotator_domain: example.org\n", encoding="utf-8")
    names = ",".join(a.split("@")[0] for a in ANNOTATORS[:2])
    common = ("-w", workspace, "-c", config, "--codebook", SMALL_CODEBOOK, "--json", "--bootstrap", "0")
    by_name = run("agreement", "--annotators", names, *common)
    by_email = run("agreement", "--annotators", ",".join(ANNOTATORS[:2]), *common)
    assert by_name.exit_code == by_email.exit_code == 0, by_name.output
    assert json.loads(by_name.stdout)["annotators"] == json.loads(by_email.stdout)["annotators"] == ANNOTATORS[:2]
    listed = run("disagreements", "--annotators", names, *common[:-2])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == json.loads(
        run("disagreements", "--annotators", ",".join(ANNOTATORS[:2]), *common[:-2]).stdout
    )


def test_plan_is_now_reliability() -> None:
    assert _hidden("plan") and not _hidden("reliability")
    args = ("--alpha-min", "0.8", "--smallest-share", "0.25", "--json")
    old, new = run("plan", *args), run("reliability", *args)
    assert old.exit_code == new.exit_code == 0, old.output
    assert json.loads(old.stdout) == json.loads(new.stdout)
    assert "`culturecode plan` is now `culturecode reliability`" in _note(old)
    assert "reliability" in run("--help").stdout and " plan " not in run("--help").stdout
