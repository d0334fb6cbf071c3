"""Stable IDs, idempotent reruns, changed files, --replace, pseudonymisation, the CLI around ingest."""

from __future__ import annotations

import json
import os
import stat

from pipeline.config import IngestSettings
from pipeline.ingest import ingest
from pipeline.store import Store
from tests.factory import add_gold


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_rerun_adds_nothing_and_ids_are_stable(tmp_path):
    src = _write(tmp_path / "a.txt", "R: Hello.\nOM1: Hi there.\nR: Hello.\n")
    store = Store(tmp_path / "ws")
    first = ingest(store, [src], show_progress=False)
    ids = [s.id for s in store.segments()]
    second = ingest(store, [src], show_progress=False)
    assert first.segments_added == 3 and second.segments_added == 0
    assert second.unchanged == ["a"]
    assert [s.id for s in store.segments()] == ids
    assert len(set(ids)) == 3  # the repeated "Hello." gets its own ID

    other = Store(tmp_path / "ws2")
    ingest(other, [src], show_progress=False)
    assert [s.id for s in other.segments()] == ids  # content hash, not insertion order


def test_changed_file_is_reported_and_only_replaced_with_flag(tmp_path):
    src = _write(tmp_path / "a.txt", "R: One.\nOM1: Two.\n")
    store = Store(tmp_path / "ws")
    ingest(store, [src], show_progress=False)
    kept = {s.text: s.id for s in store.segments()}
    _write(src, "R: Zero.\nR: One.\nOM1: Two, revised.\n")
    report = ingest(store, [src], show_progress=False)
    assert report.changed == ["a"] and report.segments_added == 0
    assert [s.text for s in store.segments()] == ["One.", "Two."]

    report = ingest(store, [src], replace=True, show_progress=False)
    assert report.replaced == ["a"] and report.segments_added == 2
    segs = store.segments("a")
    assert [s.text for s in segs] == ["Zero.", "One.", "Two, revised."]
    assert segs[1].id == kept["One."]  # an unchanged turn keeps its ID when turns are inserted before it


def test_replace_keeps_labels_of_surviving_segments(tmp_path):
    src = _write(tmp_path / "a.txt", "R: One.\nOM1: Two.\n")
    store = Store(tmp_path / "ws")
    ingest(store, [src], show_progress=False)
    one = store.segments()[0].id
    add_gold(store, {one: []}, "h")
    _write(src, "R: One.\nOM1: Three.\n")
    ingest(store, [src], replace=True, show_progress=False)
    assert store.count("gold") == 1
    assert [s.text for s in store.segments()] == ["One.", "Three."]


def test_pseudonymise_speakers_and_listed_names(tmp_path):
    src = _write(tmp_path / "a.txt", "R: Did PC Dawes see Kyle Marsh?\nPC Dawes: Yes, Kyle was home.\n")
    names = _write(tmp_path / "names.txt", "Kyle Marsh\nKyle\n")
    store = Store(tmp_path / "ws")
    settings = IngestSettings(pseudonymise=True, names_file=str(names))
    ingest(store, [src], settings, show_progress=False)
    segs = store.segments()
    mapping = json.loads((tmp_path / "ws" / "pseudonyms.json").read_text())
    assert segs[0].speaker == "R"  # role labels identify nobody
    assert segs[1].speaker == mapping["PC Dawes"]
    stored = " ".join(s.text for s in segs) + " ".join(str(s.speaker) for s in segs)
    for real in ("Dawes", "Kyle", "Marsh"):
        assert real not in stored
    assert mapping["Kyle Marsh"] in segs[0].text
    assert stat.S_IMODE(os.stat(tmp_path / "ws" / "pseudonyms.json").st_mode) == 0o600
    # stable: a second workspace with the same mapping file gives the same pseudonyms
    (tmp_path / "ws3").mkdir()
    (tmp_path / "ws3" / "pseudonyms.json").write_text(json.dumps(mapping))
    again = Store(tmp_path / "ws3")
    ingest(again, [src], settings, show_progress=False)
    assert [s.speaker for s in again.segments()] == [s.speaker for s in segs]


def test_cli_ingest_status_and_segments(tmp_path, cli, small_codebook):
    folder = tmp_path / "interviews"
    folder.mkdir()
    _write(folder / "int1.txt", "R: How was the visit?\nPC Dawes: Quiet.\n")
    _write(folder / "int2.jsonl", json.dumps({"speaker": "OM2", "text": "Recall papers went in."}) + "\n")
    ws = tmp_path / "ws"
    result = cli("ingest", folder, "--workspace", ws, "--codebook", small_codebook)
    assert result.exit_code == 0, result.stderr
    assert "2 new" in result.stdout and "3 new segment(s)" in result.stdout

    status = cli("status", "--workspace", ws, "--codebook", small_codebook, "--json")
    data = json.loads(status.stdout)
    assert data["counts"]["documents"] == 2 and data["counts"]["segments"] == 3
    assert set(data["per_code"]) == {"carrot", "stick"}
    assert data["codebook_hash"] and data["last_runs"][0]["stage"] == "ingest"

    segs = json.loads(cli("segments", "--doc", "int1", "--workspace", ws, "--json").stdout)
    assert [s["speaker"] for s in segs] == ["R", "PC Dawes"]
    missing = cli("segments", "--doc", "nope", "--workspace", ws)
    assert missing.exit_code == 2 and "no document 'nope'" in missing.stderr


def test_help_lists_the_stages(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("ingest", "status", "segments", "config"):
        assert command in result.stdout
