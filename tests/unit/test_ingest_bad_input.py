"""Bad input: a one-line error naming the file (and line), exit code 2, database unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import table_dump

GOOD = "R: A first good turn.\nOM1: A second good turn.\n"


@pytest.fixture
def workspace(tmp_path, cli, small_codebook):
    """A workspace that already holds one good document."""
    good = tmp_path / "good.txt"
    good.write_text(GOOD, encoding="utf-8")
    ws = tmp_path / "ws"
    assert cli("ingest", good, "-w", ws, "--codebook", small_codebook).exit_code == 0
    return ws


def _fails(cli, ws, codebook, *paths, expect: str, extra=()):
    before = table_dump(ws / "culturecode.db")
    result = cli("ingest", *paths, "-w", ws, "--codebook", codebook, *extra)
    assert result.exit_code == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("Error: ") and "Traceback" not in message
    assert expect in message, message
    assert table_dump(ws / "culturecode.db") == before
    return message


def _make(tmp_path, name, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_empty_file(tmp_path, cli, workspace, small_codebook):
    path = _make(tmp_path, "empty.txt", "  \n")
    assert str(path) in _fails(cli, workspace, small_codebook, path, expect="empty")


def test_binary_file(tmp_path, cli, workspace, small_codebook):
    path = _make(tmp_path, "audio.txt", bytes(range(256)) * 20)
    _fails(cli, workspace, small_codebook, path, expect="binary")


def test_undecodable_text(tmp_path, cli, workspace, small_codebook):
    path = _make(tmp_path, "odd.txt", b"R: caf\xe9 \x81\x8d\x8f\x90\x9d\xff\xfe\x00" * 3)
    _fails(cli, workspace, small_codebook, path, expect=str(path))


@pytest.mark.parametrize(
    "name,content,expect",
    [
        ("broken.vtt", "WEBVTT\n\n00:00:01.000 --> 00:0x:04.000\n<v A>Hi\n", "broken.vtt:3: broken cue timestamp"),
        (
            "order.vtt",
            "WEBVTT\n\n00:00:05.000 --> 00:00:06.000\n<v A>Hi\n\n00:00:01.000 --> 00:00:02.000\n<v B>Yo\n",
            "order.vtt:6: cue is out of order",
        ),
        ("nohdr.vtt", "00:00:01.000 --> 00:00:02.000\nHi\n", "nohdr.vtt:1: a WebVTT file must start with 'WEBVTT'"),
        ("broken.srt", "1\n00:00:01,000 --> 00:00:0,000\nA: Hi\n", "broken.srt:2: broken cue timestamp"),
        ("back.srt", "1\n00:00:03,000 --> 00:00:01,000\nA: Hi\n", "back.srt:2: cue ends before it starts"),
    ],
)
def test_broken_subtitles(tmp_path, cli, workspace, small_codebook, name, content, expect):
    path = _make(tmp_path, name, content)
    _fails(cli, workspace, small_codebook, path, expect=expect)


def test_csv_without_text_column(tmp_path, cli, workspace, small_codebook):
    path = _make(tmp_path, "sheet.csv", "speaker,utterance\nA,hello\n")
    _fails(cli, workspace, small_codebook, path, expect="no 'text' column (found: speaker, utterance)")


def test_jsonl_bad_line_names_line_and_skip_bad_continues(tmp_path, cli, workspace, small_codebook):
    lines = [
        json.dumps({"speaker": "A", "text": "one"}),
        "{not json",
        json.dumps({"speaker": "B"}),
        json.dumps({"speaker": "C", "text": "four"}),
    ]
    path = _make(tmp_path, "turns.jsonl", "\n".join(lines) + "\n")
    _fails(cli, workspace, small_codebook, path, expect="turns.jsonl:2: not valid JSON")
    result = cli("ingest", path, "-w", workspace, "--codebook", small_codebook, "--skip-bad")
    assert result.exit_code == 0, result.stderr
    assert "turns.jsonl:2" in result.stdout and "turns.jsonl:3" in result.stdout
    segs = json.loads(cli("segments", "--doc", "turns", "-w", workspace, "--json").stdout)
    assert [s["text"] for s in segs] == ["one", "four"]


def test_unknown_extension(tmp_path, cli, workspace, small_codebook):
    path = _make(tmp_path, "notes.pdf", "%PDF-1.4")
    _fails(cli, workspace, small_codebook, path, expect="unknown file type '.pdf'")


def test_folder_without_transcripts(tmp_path, cli, workspace, small_codebook):
    folder = tmp_path / "nothing"
    folder.mkdir()
    _make(folder, "readme.pdf", "x")
    _fails(cli, workspace, small_codebook, folder, expect="no transcripts found")


def test_duplicate_document_names_from_different_folders(tmp_path, cli, workspace, small_codebook):
    for sub in ("site_a", "site_b"):
        (tmp_path / sub).mkdir()
        _make(tmp_path / sub, "interview.txt", f"R: from {sub}\n")
    _fails(
        cli,
        workspace,
        small_codebook,
        tmp_path / "site_a",
        tmp_path / "site_b",
        expect="document name 'interview' is also used by",
    )


def test_bad_file_among_good_ones_rolls_back_everything(tmp_path, cli, workspace, small_codebook):
    ok = _make(tmp_path, "fine.txt", "R: fine\n")
    bad = _make(tmp_path, "zbad.srt", "1\n00:00:0x,000 --> 00:00:01,000\nA: Hi\n")
    _fails(cli, workspace, small_codebook, ok, bad, expect="zbad.srt:2")


@pytest.mark.slow
def test_100mb_transcript_streams_in_bounded_memory(tmp_path):
    """Ingest a 100 MB file in a child process and check its peak RSS stays far below the file size."""
    big = tmp_path / "big.txt"
    turn = "OM{n}: We went round to the address again and he was not in, so we left a card. " * 2
    with big.open("w", encoding="utf-8") as fh:
        n = 0
        while fh.tell() < 100 * 1024 * 1024:
            fh.write(turn.format(n=n % 7) + f"number {n}\n")
            n += 1
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (pytest) across fork+exec
    code = (
        "import sys, re; from pipeline.store import Store; from pipeline.ingest import ingest;"
        "r = ingest(Store(sys.argv[2]), [sys.argv[1]], show_progress=False);"
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1);"
        "print(r.segments_added, hwm)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(big), str(tmp_path / "ws")], capture_output=True, text=True, check=True
    ).stdout.split()
    segments, peak_kb = int(out[0]), int(out[1])
    assert segments == n
    assert peak_kb < 400 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB for a 100 MB file"
