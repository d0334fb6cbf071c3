"""The bad-input harness (issue 12): every command that reads a file or a setting, fed each kind of bad input.

Each row names a command, the option (or argument) that gets the bad input, the kind of bad input and a
builder that writes it. For every row the harness asserts: exit code 2; exactly one line on stderr,
starting with 'Error:', naming the file (and the line where there is one) and short (values are
truncated); no traceback; the workspace database byte-identical before and after.

A meta-test walks the click command tree: a command with a Path-typed option or argument that has no
row here fails it, so new commands join the table when they are added.

Nothing here starts Label Studio or trains on more than a few lines: a server URL points at a closed
port with retries off, and bad files are refused before any server is contacted or model loaded.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from pipeline.cli import app
from pipeline.config import load_codebook
from tests.factory import add_annotation, add_gold, add_project, make_workspace

FIXTURES = Path(__file__).parent.parent / "fixtures"
SMALL_CODEBOOK = FIXTURES / "codebook_small.yaml"
CLOSED_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
OPENAI = ("--llm", "openai", "--llm-model", "m", "--base-url", CLOSED_URL + "/v1")  # loads no model
MAX_MESSAGE = 600  # a one-line error is short: values quoted from files are truncated
MB = 1 << 20


@functools.cache
def _options_of(command: str) -> frozenset[str]:
    cmd = typer.main.get_command(app)
    for name in command.split():
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return frozenset(opt for p in cmd.params for opt in p.opts)


# --------------------------------------------------------------------------- builders of bad input
# Each builder gets an empty folder and returns the value to pass (usually a path it wrote there).

Builder = Callable[[Path], str]


def write(name: str, content: bytes | str) -> Builder:
    def build(folder: Path) -> str:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(path)

    return build


def missing(name: str) -> Builder:
    return lambda folder: str(folder / name)


def empty_dir(name: str) -> Builder:
    def build(folder: Path) -> str:
        (folder / name).mkdir()
        return str(folder / name)

    return build


def read_only_dir(name: str) -> Builder:
    def build(folder: Path) -> str:
        path = folder / name
        path.mkdir()
        path.chmod(0o555)
        return str(path / "out")

    return build


def fixed(value: str) -> Builder:
    return lambda folder: value


BINARY = bytes(range(256)) * 40
LATIN1_SECOND_LINE = (
    '{"text": "A good line.", "codes": ["carrot"], "document": "d1"}\n'
    '{"text": "caf\xe9 au lait", "codes": [], "document": "d2"}\n'
).encode("latin-1")
HUGE_LINE = b"{" + b"x" * (2 * MB) + b"\n"
HUGE_CODE = '{"text": "A line.", "codes": ["' + "c" * (5 * MB) + '"], "document": "d1"}\n'
GOOD_GOLD = '{"text": "A good line.", "codes": ["carrot"], "document": "d1"}\n'


def gold_line(line: str) -> str:
    return GOOD_GOLD + line + "\n"


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    command: str  # as typed: "train", "models show", ...
    option: str  # the Path option that gets the bad input ("PATHS" for ingest's argument), or a setting
    kind: str
    build: Builder
    line: int | None = None  # the line the message must point at
    args: tuple[str | Builder, ...] = ()  # further arguments the command needs ("@transcript": a good one)
    names: str | None = None  # text the message must contain instead of the value passed

    @property
    def id(self) -> str:
        return f"{self.command.replace(' ', '-')}:{self.option}:{self.kind}"


GOLD_KINDS: list[tuple[str, Builder, int | None]] = [
    ("missing", missing("nope.jsonl"), None),
    ("empty", write("empty.jsonl", ""), None),
    ("binary", write("bin.jsonl", BINARY), None),
    ("not-utf8", write("latin1.jsonl", LATIN1_SECOND_LINE), 2),
    ("huge-line", write("huge.jsonl", HUGE_LINE), 1),
    ("huge-field", write("bigcode.jsonl", HUGE_CODE), 1),
    ("wrong-type", write("type.jsonl", gold_line('{"text": "x", "codes": "carrot", "document": "d"}')), 2),
    ("wrong-shape", write("shape.jsonl", gold_line('["x", ["carrot"], "d"]')), 2),
    ("bad-json", write("broken.jsonl", gold_line('{"text": "x", "codes": [}')), 2),
    ("unknown-code", write("unknown.jsonl", gold_line('{"text": "x", "codes": ["turnip"], "document": "d"}')), 2),
    ("empty-folder", empty_dir("golddir"), None),
]

GOLD_COMMANDS = {
    "train": ("--gold", ()),
    "evaluate": ("--gold", ()),
    "retrain": ("--gold", ("--no-push",)),
    "llm plan": ("--examples", ("--prompt", "few_shot")),
    "llm label": ("--examples", ("--prompt", "few_shot", *OPENAI)),
}

AGREEMENT_HEADER = "item,annotator,codes\n"
AGREEMENT_ROWS: list[tuple[str, Builder, int | None]] = [
    ("missing", missing("nope.csv"), None),
    ("empty", write("empty.csv", ""), None),
    ("binary", write("bin.csv", BINARY), None),
    ("binary-jsonl", write("bin.jsonl", BINARY), None),
    ("not-utf8", write("latin1.csv", (AGREEMENT_HEADER + "s1,ana,carrot\ns1,b\xe9a,stick\n").encode("latin-1")), 3),
    ("huge-line", write("huge.csv", AGREEMENT_HEADER + "s1,ana," + "c" * (2 * MB) + "\n"), 2),
    (
        "huge-field",
        write("bigitem.jsonl", '{"item": "s1", "annotator": "ana", "codes": ["' + "c" * 5 * MB + '"]}\n'),
        1,
    ),
    ("wrong-type", write("type.jsonl", '{"item": "s1", "annotator": "ana", "codes": {"carrot": 1}}\n'), 1),
    ("wrong-type-annotator", write("who.jsonl", '{"item": "s1", "annotator": ["ana"], "codes": []}\n'), 1),
    ("wrong-shape", write("shape.jsonl", '["s1", "ana", ["carrot"]]\n'), 1),
    ("no-columns", write("cols.csv", "segment,coder,labels\ns1,ana,carrot\n"), None),
    ("blank-annotator", write("blank.csv", AGREEMENT_HEADER + "s1,ana,carrot\ns1,,stick\n"), 3),
    ("blank-item", write("blankitem.csv", AGREEMENT_HEADER + "s1,ana,carrot\n,bea,stick\n"), 3),
    ("duplicate", write("dup.csv", AGREEMENT_HEADER + "s1,ana,carrot\ns1,bea,carrot\ns1,ana,stick\n"), 4),
    ("no-codes-cell", write("short.csv", AGREEMENT_HEADER + "s1,ana,carrot\ns1,bea\n"), 3),
    ("extra-cells", write("long.csv", AGREEMENT_HEADER + "s1,ana,carrot\ns1,bea,stick,extra\n"), 3),
    ("bad-json", write("broken.jsonl", '{"item": "s1", "annotator": "ana", "codes": []}\n{"item": \n'), 2),
    ("wrong-suffix", write("ratings.txt", AGREEMENT_HEADER), None),
    ("folder", empty_dir("ratings.csv"), None),
]

OUT_KINDS: list[tuple[str, Builder, str | None]] = [
    ("existing-file", write("taken", "not a folder"), None),
    ("under-a-file", fixed("/dev/null/x"), "/dev/null"),
    ("read-only-folder", read_only_dir("locked"), "locked"),
    ("read-only-filesystem", fixed("/proc/culturecode-out"), "/proc/culturecode-out"),
]

CONFIG_KINDS: list[tuple[str, Builder, int | None]] = [
    ("missing", missing("nope.yaml"), None),
    ("corrupt-yaml", write("corrupt.yaml", "studio:\n  retries: 0\n  port: [1, 2\n"), 4),
    ("binary", write("bin.yaml", BINARY), None),
    ("not-utf8", write("latin1.yaml", "workspace: caf\xe9\n".encode("latin-1")), None),
    ("wrong-shape", write("list.yaml", "- studio\n- classifier\n"), None),
    ("wrong-type", write("type.yaml", "classifier:\n  epochs: many\n"), None),
    ("unknown-setting", write("unknown.yaml", "classifer:\n  epochs: 3\n"), None),
    ("folder", empty_dir("configdir"), None),
]

CODEBOOK_KINDS: list[tuple[str, Builder, int | None]] = [
    ("missing", missing("nope.yaml"), None),
    ("corrupt-yaml", write("corrupt.yaml", "id: x\ncodes: [\n  - id: a\n"), None),
    ("binary", write("bin.yaml", BINARY), None),
    ("wrong-shape", write("list.yaml", "- carrot\n- stick\n"), None),
    ("wrong-type", write("type.yaml", "id: x\nname: y\ncodes: 3\n"), None),
    ("folder", empty_dir("bookdir"), None),
]

WORKSPACE_KINDS: list[tuple[str, Builder, int | None]] = [
    ("a-file", write("wsfile", "not a workspace"), None),
    ("missing", missing("nowhere"), None),
]

# Every command, with the arguments it needs to get as far as reading its settings.
TRANSCRIPT = "R: A first good turn.\nOM1: A second good turn.\n"
COMMANDS: dict[str, tuple[str, ...]] = {
    "ingest": ("@transcript",),
    "status": (),
    "segments": (),
    "agreement": (),
    "disagreements": (),
    "adjudicate": (),
    "export": (),
    "train": (),
    "prelabel": (),
    "evaluate": (),
    "retrain": ("--no-push",),
    "push": (),
    "pull": (),
    "distill": (),
    "config show": (),
    "config check": (),
    "models list": (),
    "models show": (),
    "models promote": ("--model-version", "v1"),
    "models prune": ("--dry-run",),
    "studio start": (),
    "studio status": (),
    "studio stop": (),
    "annotators add": ("alice",),
    "llm plan": (),
    "llm label": OPENAI,
    "llm evaluate": (),
    "llm test-server": ("--port", "9"),  # was `llm serve` (a hidden alias now)
    "admission": (),
    "restore": (),
    "next": (),
    "reliability": (),  # was `plan`
    "appendix": (),
    "recode": ("--dry-run",),
    "loop status": (),
    "serve": ("--port", "9"),
    "calibrate": ("--dry-run",),
    "findings": (),
    "meta show": (),
    "meta set": ("--file", write("people.csv", "speaker,role\nR,researcher\n")),
}
# Path options a command takes but does not read: no bad input can reach them (keep the reason)
NOT_READ = {
    ("config show", "--codebook"): "config show prints the codebook's path; `config check` reads the file",
}
# where a missing workspace is fine (the command creates it), the row feeds a file instead
CREATES_WORKSPACE = {"ingest", "train", "config show", "config check", "studio start", "studio stop", "studio status"}


def _rotate(kinds: list, index: int, count: int) -> list:
    return [kinds[(index * count + k) % len(kinds)] for k in range(count)]


def _setting_rows() -> list[Row]:
    """--config, --codebook and --workspace for every command: two or three kinds each, rotating so that
    every kind is fed to several commands (they share one settings loader)."""
    rows = []
    for i, (command, args) in enumerate(COMMANDS.items()):
        for kind, build, line in _rotate(CONFIG_KINDS, i, 3):
            rows.append(Row(command, "--config", kind, build, line, args))
        options = _options_of(command)
        if "--codebook" in options and (command, "--codebook") not in NOT_READ:
            for kind, build, line in _rotate(CODEBOOK_KINDS, i, 2):
                rows.append(Row(command, "--codebook", kind, build, line, args))
        if "--workspace" in options:
            for kind, build, line in WORKSPACE_KINDS:
                if kind == "missing" and command in CREATES_WORKSPACE:
                    continue
                rows.append(Row(command, "--workspace", kind, build, line, args))
    return rows


PSEUDO = ("@transcript", "--pseudonymise")
GOOD_INPUT = write("good.csv", AGREEMENT_HEADER + "s1,ana,carrot\ns1,bea,stick\ns2,ana,\ns2,bea,\n")


def _file_rows() -> list[Row]:
    rows = []
    for command, (option, args) in GOLD_COMMANDS.items():
        rows += [Row(command, option, kind, build, line, args) for kind, build, line in GOLD_KINDS]
    rows += [Row("agreement", "--input", kind, build, line) for kind, build, line in AGREEMENT_ROWS]
    rows += [
        Row("meta set", "--file", "missing", missing("people.csv")),
        Row("meta set", "--file", "empty", write("people.csv", "")),
        Row("meta set", "--file", "binary", write("people.csv", BINARY)),
        Row("meta set", "--file", "no-key-column", write("people.csv", "name,role\nR,researcher\n"), 1),
        Row("meta set", "--file", "unknown-speaker", write("people.csv", "speaker,role\nNobody,police\n"), 2),
        Row("meta set", "--file", "bad-json", write("people.jsonl", '{"speaker": "R", "role": \n'), 1),
        Row("meta set", "--file", "folder", empty_dir("people")),
    ]
    for kind, build, names in OUT_KINDS:
        rows.append(Row("export", "--out", kind, build, names=names))
        rows.append(Row("agreement", "--out", kind, build, names=names))
        rows.append(Row("appendix", "--out", kind, build, names=names))
        rows.append(Row("agreement", "--out", f"{kind}-with-input", build, names=names, args=("--input", GOOD_INPUT)))
    rows += [
        Row("ingest", "PATHS", "missing", missing("nope.txt")),
        Row("ingest", "PATHS", "empty", write("empty.txt", " \n")),
        Row("ingest", "PATHS", "binary", write("audio.txt", BINARY)),
        Row("ingest", "PATHS", "undecodable", write("odd.txt", b"R: caf\xe9 \x81\x8d\x8f\x90\x9d\xff\xfe\x00" * 3)),
        Row("ingest", "PATHS", "wrong-shape", write("sheet.csv", "speaker,utterance\nA,hello\n")),
        Row("ingest", "PATHS", "wrong-type", write("turns.jsonl", '{"speaker": "A", "text": 5}\n'), 1),
        Row("ingest", "PATHS", "huge-line", write("huge.jsonl", HUGE_LINE.decode()), 1),
        Row("ingest", "PATHS", "empty-folder", empty_dir("nothing_here")),
        Row("ingest", "--names", "missing", missing("names.txt"), args=PSEUDO),
        Row("ingest", "--names", "binary", write("names.txt", BINARY), args=PSEUDO),
        Row("ingest", "--names", "not-utf8", write("names.txt", "Ana\nJos\xe9\n".encode("latin-1")), 2, PSEUDO),
        Row("ingest", "--names", "folder", empty_dir("namesdir"), args=PSEUDO),
        Row("ingest", "--names", "without-pseudonymise", write("names.txt", "Ana\n"), args=("@transcript",)),
    ]
    return rows


def _url_rows() -> list[Row]:
    """Commands that talk to Label Studio: an unreachable --url fails fast with one line."""
    closed = fixed(CLOSED_URL)
    return [
        Row("push", "--url", "unreachable", closed),
        Row("pull", "--url", "unreachable", closed),
        Row("annotators add", "--url", "unreachable", closed, args=("alice",)),
    ]


# Corrupt workspace databases (bad header, truncated, random bytes, zero bytes): filled in by the
# database-safety work (R2). Each row: Row(command, "--workspace", kind, builder, ...), where the builder
# returns a workspace folder holding the corrupted culturecode.db.
# >>> R2: corrupt-database rows
def corrupt_database(kind: str) -> Builder:
    """A workspace with a backup, whose culturecode.db is then damaged; the command gets it as --workspace. The
    message must name `culturecode restore` (row.names), and the damaged file stays byte-identical."""

    def build(folder: Path) -> str:
        from pipeline.store.backup import take_backup

        ws = folder / "damaged_ws"
        turns = {"doc_a": [f"Turn {p} of a document." for p in range(60)]}
        store = make_workspace(ws, load_codebook(SMALL_CODEBOOK), turns)
        take_backup(store.conn, store.path, keep=7)
        store.close()  # checkpoints: the whole database is in culturecode.db
        db = ws / "culturecode.db"
        data = db.read_bytes()
        damaged = {
            "bad-header": b"Not SQLite at all" + data[17:],
            "truncated": data[: len(data) // 2],
            "random-bytes": random.Random(len(data)).randbytes(len(data)),
            "zero-bytes": b"",
        }[kind]
        db.write_bytes(damaged)
        return str(ws)

    return build


DAMAGE_KINDS = ("bad-header", "truncated", "random-bytes", "zero-bytes")
# every kind against the stage commands; two kinds each against the rest of the commands that open the database
DAMAGE_EVERY_KIND = ("status", "segments", "ingest", "prelabel", "export", "agreement", "adjudicate", "push", "pull")
DAMAGE_SOME_KINDS = (
    "disagreements",
    "train",
    "evaluate",
    "retrain",
    "distill",
    "models list",
    "models show",
    "models promote",
    "models prune",
    "studio status",
    "llm plan",
    "llm label",
    "llm evaluate",
    "next",
    "reliability",
    "serve",
)
CORRUPT_DATABASE_ROWS: list[Row] = [
    Row(command, "--workspace", kind, corrupt_database(kind), args=COMMANDS[command], names="culturecode restore")
    for command in DAMAGE_EVERY_KIND
    for kind in DAMAGE_KINDS
] + [
    Row(command, "--workspace", kind, corrupt_database(kind), args=COMMANDS[command], names="culturecode restore")
    for i, command in enumerate(DAMAGE_SOME_KINDS)
    for kind in _rotate(list(DAMAGE_KINDS), i, 2)
]
# <<< R2: corrupt-database rows

ROWS = _file_rows() + _setting_rows() + _url_rows() + CORRUPT_DATABASE_ROWS


# --------------------------------------------------------------------------- the workspace


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A small workspace with documents, two annotators' annotations and gold; plus a quiet settings file."""
    root = tmp_path_factory.mktemp("harness")
    book = load_codebook(SMALL_CODEBOOK)
    docs = {f"doc_{d}": [f"Turn {p} of document {d}." for p in range(4)] for d in "abc"}
    store = make_workspace(root / "ws", book, docs)
    add_project(store, 1, "ana@example.org", book)
    add_project(store, 2, "bea@example.org", book)
    gold = {}
    for n, seg in enumerate(s for d in docs for s in (f"{d}-{p}" for p in range(4))):
        codes = ["carrot"] if n % 2 else ["stick"]
        add_annotation(store, 2 * n + 1, 1, seg, "ana@example.org", codes, book)
        add_annotation(store, 2 * n + 2, 2, seg, "bea@example.org", codes if n % 3 else [], book)
        gold[seg] = codes
    add_gold(store, gold, book)
    store.close()
    settings = root / "harness.yaml"
    settings.write_text(
        "studio:\n  retries: 0\n  timeout: 5\n  start_timeout: 5\n"
        "llm:\n  retries: 0\n  timeout: 5\nagreement:\n  bootstrap: 0\n",
        encoding="utf-8",
    )
    (root / "transcript.txt").write_text(TRANSCRIPT, encoding="utf-8")
    return root


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _arguments(row: Row, value: str, folder: Path, ws: Path, settings: Path, transcript: Path) -> list[str]:
    options = _options_of(row.command)
    args = [a(folder) if callable(a) else str(transcript) if a == "@transcript" else a for a in row.args]
    if row.option == "PATHS":
        args = [value, *args]
    else:
        args += [row.option, value]
    if "--workspace" in options and row.option != "--workspace":
        args += ["--workspace", str(ws)]
    if "--config" in options and row.option != "--config":
        args += ["--config", str(settings)]
    if "--codebook" in options and row.option != "--codebook":
        args += ["--codebook", str(SMALL_CODEBOOK)]
    return [*row.command.split(), *args]


def _expected_where(row: Row, value: str) -> str:
    return row.names if row.names is not None else value


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_line_error(row: Row, template: Path, tmp_path: Path, monkeypatch):
    if row.kind.startswith("read-only-folder") and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    monkeypatch.chdir(tmp_path)  # whatever a command writes by default lands here, not in the checkout
    ws = tmp_path / "ws"
    shutil.copytree(template / "ws", ws)
    bad = tmp_path / "bad"
    bad.mkdir()
    value = row.build(bad)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-real-key")
    monkeypatch.setenv("OPENAI_API_KEY", "not-a-real-key")
    db = (Path(value) if row in CORRUPT_DATABASE_ROWS else ws) / "culturecode.db"  # R2: the damaged one
    before = _digest(db)

    from typer.testing import CliRunner

    result = CliRunner().invoke(
        app, _arguments(row, value, bad, ws, template / "harness.yaml", template / "transcript.txt")
    )

    message = result.stderr.strip()
    shown = (message or result.stdout)[:2000]
    assert result.exit_code == 2, f"exit {result.exit_code}: {shown}\n{result.exception!r}"
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert len(message.splitlines()) == 1 and message.startswith("Error: "), shown
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:300]}..."
    assert _expected_where(row, value) in message, message
    if row.line is not None:
        assert re.search(rf"(:{row.line}\b|line {row.line}\b)", message), message
    assert _digest(db) == before, "the workspace database changed"


def _path_parameters() -> set[tuple[str, str]]:
    """(command, option) for every Path-typed option or argument in the command tree."""
    found: set[tuple[str, str]] = set()

    def walk(cmd, path: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                if not sub.hidden:  # an old spelling (tests/unit/test_cli_aliases.py), the same command
                    walk(sub, [*path, name])
            return
        for param in cmd.params:
            if "Path" in repr(param.type_descriptor.annotation):
                option = param.opts[0] if param.opts[0].startswith("-") else param.name.upper()
                found.add((" ".join(path), option))

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_that_reads_a_path_has_rows():
    covered = {(row.command, row.option) for row in ROWS} | set(NOT_READ)
    missing_rows = sorted(_path_parameters() - covered)
    assert not missing_rows, f"commands with a Path option but no bad-input row: {missing_rows}"


def test_the_table_is_large_and_varied():
    assert len(ROWS) >= 60
    kinds = {row.kind for row in ROWS}
    for needed in ("missing", "empty", "binary", "not-utf8", "huge-line", "huge-field", "wrong-type", "wrong-shape"):
        assert needed in kinds, needed
    assert any(k.startswith("existing-file") for k in kinds) and "corrupt-yaml" in kinds
