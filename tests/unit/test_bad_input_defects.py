"""Issue 12, defects 1, 2, 3, 5 and parts of 9: each test failed before its fix.

1. gold and agreement files that are not UTF-8 (or binary) gave a UnicodeDecodeError traceback;
2. `agreement --input` silently accepted a blank annotator, a second opinion of the same annotator and
   a row without its codes cell;
3. `export --out` (and `agreement --out`) to an impossible path gave tracebacks, and a failed write could
   leave half a dataset;
5. a 5 MB code id was echoed whole in the error;
9. `config check` refused --workspace; `agreement --input` ignored -w for its report folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import CultureCodeError
from tests.unit.test_agreement_workspace import SMALL_CODEBOOK, build_workspace

runner = CliRunner()
GOLD_LINE = '{"text": "A line.", "codes": ["carrot"], "document": "d1"}\n'


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *expected: str) -> str:
    message = result.stderr.strip()
    assert result.exit_code == 2, (result.exit_code, message, result.exception)
    assert len(message.splitlines()) == 1 and message.startswith("Error: "), message
    assert "Traceback" not in result.output + result.stderr
    for text in expected:
        assert text in message, message
    return message


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- 1: not UTF-8, binary


def test_read_lines_names_the_line_that_is_not_utf8(tmp_path: Path) -> None:
    from pipeline.ingest.text import read_lines

    path = tmp_path / "gold.jsonl"
    path.write_bytes(b"\xef\xbb\xbffirst\r\nsecond\ncaf\xe9\n")
    lines = read_lines(path, "gold file")
    assert next(lines) == (1, "first") and next(lines) == (2, "second")  # BOM and line ends dropped
    with pytest.raises(CultureCodeError, match=rf"{path}:3: not UTF-8 text \(byte 0xe9 at position 4"):
        next(lines)


def test_read_lines_refuses_binary_folders_and_missing_files(tmp_path: Path) -> None:
    from pipeline.ingest.text import read_lines

    (tmp_path / "x.bin").write_bytes(bytes(range(256)))
    with pytest.raises(CultureCodeError, match="looks like a binary file"):
        list(read_lines(tmp_path / "x.bin", "gold file"))
    with pytest.raises(CultureCodeError, match="is a folder"):
        list(read_lines(tmp_path, "gold file"))
    with pytest.raises(CultureCodeError, match="gold file not found"):
        list(read_lines(tmp_path / "nope", "gold file"))


def test_train_gold_in_latin1_is_a_one_line_error_with_the_line(tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_bytes(GOLD_LINE.encode() + '{"text": "caf\xe9", "codes": [], "document": "d2"}\n'.encode("latin-1"))
    result = run("train", "--gold", gold, "-w", tmp_path / "ws", "--codebook", SMALL_CODEBOOK)
    one_line_error(result, f"{gold}:2: not UTF-8 text")


def test_evaluate_gold_that_is_binary_is_refused_before_any_model_is_needed(tmp_path: Path) -> None:
    build_workspace(tmp_path / "ws").close()  # no model version: the file is checked first
    gold = tmp_path / "gold.jsonl"
    gold.write_bytes(bytes(range(256)) * 10)
    result = run("evaluate", "--gold", gold, "-w", tmp_path / "ws", "--codebook", SMALL_CODEBOOK)
    one_line_error(result, str(gold), "binary")


@pytest.mark.parametrize("name", ["ratings.csv", "ratings.jsonl"])
def test_agreement_input_that_is_binary_is_a_one_line_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 10)
    one_line_error(run("agreement", "--input", path, "-o", tmp_path / "r"), str(path), "binary")


def test_agreement_input_in_latin1_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_bytes("item,annotator,codes\ns1,ana,carrot\ns1,b\xe9a,stick\n".encode("latin-1"))
    one_line_error(run("agreement", "--input", path, "-o", tmp_path / "r"), f"{path}:3: not UTF-8")


# --------------------------------------------------------------------------- 2: rows that change the figures


@pytest.mark.parametrize(
    "rows,expected",
    [
        ("s1,ana,carrot\ns1,,stick\n", ":3: the 'annotator' cell is blank"),
        ("s1,ana,carrot\n ,bea,stick\n", ":3: the 'item' cell is blank"),
        ("s1,ana,carrot\ns1,bea,stick\ns1,ana,stick\n", ":4: annotator 'ana' coded item 's1' again"),
        ("s1,ana,carrot\ns1,bea\n", ":3: 2 cell(s) where the header has 3"),
        ("s1,ana,carrot\ns1,bea,stick,extra\n", ":3: 4 cell(s) where the header has 3"),
    ],
    ids=["blank-annotator", "blank-item", "second-opinion", "no-codes-cell", "extra-cell"],
)
def test_agreement_input_refuses_rows_that_would_change_the_figures(tmp_path: Path, rows: str, expected: str) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("item,annotator,codes\n" + rows, encoding="utf-8")
    one_line_error(run("agreement", "--input", path, "-o", tmp_path / "r"), f"{path}{expected}")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.mark.parametrize(
    "line,expected",
    [
        ('{"item": "s1", "annotator": "", "codes": []}', "the 'annotator' cell is blank"),
        ('{"item": "s1", "annotator": "ana", "codes": null}', "'codes' is null"),
        ('{"item": "s1", "annotator": "ana", "codes": {"carrot": 1}}', "'codes' is a dict"),
        ('{"item": "s1", "annotator": ["ana"], "codes": []}', "'annotator' must be a text, not list"),
        ('{"item": "s1", "annotator": "ana", "codes": [1]}', "'codes' must be a list of code ids"),
    ],
)
def test_agreement_jsonl_rows_of_the_wrong_type_are_refused(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "ratings.jsonl"
    path.write_text('{"item": "s0", "annotator": "bea", "codes": ["carrot"]}\n' + line + "\n", encoding="utf-8")
    one_line_error(run("agreement", "--input", path, "-o", tmp_path / "r"), f"{path}:2: {expected}")


def test_an_exact_repeated_row_counts_once(tmp_path: Path) -> None:
    rows = "item,annotator,codes\ns1,ana,carrot\ns1,bea,carrot\ns2,ana,stick\ns2,bea,\n"
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    once.write_text(rows, encoding="utf-8")
    twice.write_text(rows + "s1,ana,carrot\n", encoding="utf-8")
    reports = [
        run("agreement", "--input", p, "-o", tmp_path / p.stem, "--json", "--bootstrap", "0") for p in (once, twice)
    ]
    assert [r.exit_code for r in reports] == [0, 0], [r.stderr for r in reports]
    first, second = (json.loads(r.stdout) for r in reports)
    assert first["codes"] == second["codes"] and first["n_items"] == second["n_items"] == 2


# --------------------------------------------------------------------------- 3: --out that cannot be written


@pytest.fixture
def gold_workspace(tmp_path: Path) -> Path:
    from pipeline.config import load_codebook
    from pipeline.gold import adjudicate

    with build_workspace(tmp_path / "ws") as store:
        adjudicate(store, load_codebook(SMALL_CODEBOOK))
    return tmp_path / "ws"


@pytest.mark.parametrize("kind", ["existing-file", "under-a-file", "dev-null"])
def test_export_to_an_impossible_folder_is_a_one_line_error(tmp_path: Path, gold_workspace: Path, kind: str) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file")
    out = {"existing-file": taken, "under-a-file": taken / "x", "dev-null": Path("/dev/null/x")}[kind]
    before = digest(gold_workspace / "culturecode.db")
    result = run("export", "--out", out, "-f", "jsonl", "-w", gold_workspace, "--codebook", SMALL_CODEBOOK)
    one_line_error(result, str(out if kind == "existing-file" else out.parent if kind == "dev-null" else out))
    assert digest(gold_workspace / "culturecode.db") == before
    assert taken.read_text() == "a file"


def test_a_failed_export_leaves_no_half_written_dataset(tmp_path: Path, gold_workspace: Path, monkeypatch) -> None:
    import importlib

    export_module = importlib.import_module("pipeline.gold.export")  # the package re-exports the function `export`
    real = export_module.write_files

    def full_disk(rows, codebook, formats, out):
        real(rows, codebook, ["jsonl"], out)  # one file made it, then the disk filled up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "write_files", full_disk)
    out = tmp_path / "out"
    out.mkdir()
    (out / "gold.jsonl").write_text("the previous export\n")
    before = digest(gold_workspace / "culturecode.db")
    result = run("export", "--out", out, "-w", gold_workspace, "--codebook", SMALL_CODEBOOK)
    one_line_error(result, str(out), "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == ["gold.jsonl"]  # no temporary folder left behind
    assert (out / "gold.jsonl").read_text() == "the previous export\n"
    assert digest(gold_workspace / "culturecode.db") == before


def test_agreement_out_that_is_a_file_fails_before_anything_is_recorded(tmp_path: Path, gold_workspace: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file")
    before = digest(gold_workspace / "culturecode.db")
    result = run("agreement", "--out", taken, "-w", gold_workspace, "--codebook", SMALL_CODEBOOK, "--bootstrap", "0")
    one_line_error(result, str(taken), "is a file, not a folder")
    assert digest(gold_workspace / "culturecode.db") == before


# --------------------------------------------------------------------------- 5: values are truncated


def test_shorten_keeps_short_values_and_cuts_long_ones() -> None:
    from pipeline.errors import shorten

    assert shorten("carrot") == "carrot"
    assert shorten("two\nlines") == "two lines"
    cut = shorten("c" * 5_000_000)
    assert len(cut) < 100 and cut.endswith("(5,000,000 characters)")


def test_a_5mb_code_id_is_not_echoed_whole(tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"text": "A line.", "codes": ["' + "c" * 5_000_000 + '"], "document": "d1"}\n')
    result = run("train", "--gold", gold, "-w", tmp_path / "ws", "--codebook", SMALL_CODEBOOK)
    message = one_line_error(result, f"{gold}:1: unknown code(s)", "5,000,000 characters")
    assert len(message) < 400


def test_the_cli_caps_any_message_that_quotes_a_value_whole(tmp_path: Path, monkeypatch) -> None:
    from pipeline.commands import core

    def flood(*args, **kwargs):
        raise CultureCodeError("bad value " + "x" * 100_000)

    monkeypatch.setattr(core, "settings_for", flood)
    message = one_line_error(run("status"), "bad value")
    assert len(message) < 600


# --------------------------------------------------------------------------- 9: --workspace everywhere


def test_every_command_but_the_llm_test_server_takes_workspace_and_config() -> None:
    import typer

    def leaves(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from leaves(sub, [*path, name])
        else:
            yield " ".join(path), {opt for p in cmd.params for opt in p.opts}

    for name, options in leaves(typer.main.get_command(app), []):
        assert "--config" in options, name
        # the LLM test server (`llm serve` is its old name) uses no workspace
        assert ("--workspace" in options) == (name not in ("llm test-server", "llm serve")), name


def test_config_check_takes_the_workspace(tmp_path: Path) -> None:
    result = run("config", "check", "--workspace", tmp_path / "ws", "--codebook", SMALL_CODEBOOK, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["workspace"] == str(tmp_path / "ws")


def test_a_workspace_that_is_a_file_is_refused_by_every_command(tmp_path: Path) -> None:
    taken = tmp_path / "ws"
    taken.write_text("not a folder")
    for args in (["config", "check"], ["config", "show"], ["studio", "status"], ["status"]):
        one_line_error(run(*args, "-w", taken), f"{taken}: is a file, not a workspace folder")


def test_agreement_input_writes_its_report_into_the_workspace_given(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ratings.csv"
    path.write_text("item,annotator,codes\ns1,ana,carrot\ns1,bea,carrot\ns2,ana,\ns2,bea,stick\n")
    result = run("agreement", "--input", path, "-w", tmp_path / "ws", "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    assert sorted(p.suffix for p in (tmp_path / "ws" / "reports").iterdir()) == [".html", ".json", ".md"]
    assert not (tmp_path / "reports").exists()
    result = run("agreement", "--input", path, "--bootstrap", "0")  # no -w: ./reports, as before
    assert result.exit_code == 0 and (tmp_path / "reports").is_dir()
