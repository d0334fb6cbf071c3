"""Each transcript format becomes the expected speaker-turn segments."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import docx
import pytest

from pipeline.config import IngestSettings
from pipeline.ingest import ingest
from pipeline.ingest.segmenter import split_turn
from pipeline.store import Store


def _ingest(tmp_path: Path, *files: Path, **settings) -> Store:
    store = Store(tmp_path / "ws")
    ingest(store, files, IngestSettings(**settings), show_progress=False)
    return store


def _rows(store: Store, doc: str) -> list[tuple]:
    return [(s.speaker, s.text, s.start_time, s.end_time) for s in store.segments(doc)]


def test_txt_speaker_turns_with_header_and_continuation_lines(tmp_path):
    path = tmp_path / "interview_a.txt"
    path.write_text(
        "# site: Harbridge hub\n# interview_date: 2024-03-02\n"
        "R: How did the home visit go?\n"
        "OM2: He was in, for once.\nThe flat was tidy.\n\n"
        "R: And the curfew?\n",
        encoding="utf-8",
    )
    store = _ingest(tmp_path, path)
    assert _rows(store, "interview_a") == [
        ("R", "How did the home visit go?", None, None),
        ("OM2", "He was in, for once. The flat was tidy.", None, None),
        ("R", "And the curfew?", None, None),
    ]
    assert store.document("interview_a").metadata == {"site": "Harbridge hub", "interview_date": "2024-03-02"}
    assert store.segments("interview_a")[1].metadata["line"] == 4


def test_txt_field_notes_become_paragraph_segments(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(
        "Morning briefing ran late.\nThe sergeant read out the list.\n\nAfterwards two officers drove to the hostel.\n",
        encoding="utf-8",
    )
    store = _ingest(tmp_path, path)
    assert [s.text for s in store.segments("notes")] == [
        "Morning briefing ran late. The sergeant read out the list.",
        "Afterwards two officers drove to the hostel.",
    ]
    assert all(s.speaker is None for s in store.segments("notes"))


def test_vtt_voice_tags_and_times(tmp_path):
    path = tmp_path / "meeting.vtt"
    path.write_text(
        "WEBVTT\n\nNOTE recorded at the hub\n\n"
        "1\n00:00:01.000 --> 00:00:04.500\n<v Sgt Hale>Right, first name on the list.\n\n"
        "00:00:05.000 --> 00:00:09.250\n<v PC Moss>He missed his drugs appointment\nagain on Tuesday.\n",
        encoding="utf-8",
    )
    store = _ingest(tmp_path, path)
    assert _rows(store, "meeting") == [
        ("Sgt Hale", "Right, first name on the list.", 1.0, 4.5),
        ("PC Moss", "He missed his drugs appointment again on Tuesday.", 5.0, 9.25),
    ]


def test_srt_speaker_prefix_and_times(tmp_path):
    path = tmp_path / "call.srt"
    path.write_text(
        "1\n00:00:01,000 --> 00:00:03,000\nPO Grant: Is he engaging?\n\n"
        "2\n00:01:02,500 --> 00:01:05,000\nDC Reid: Not really.\n",
        encoding="utf-8",
    )
    store = _ingest(tmp_path, path)
    assert _rows(store, "call") == [("PO Grant", "Is he engaging?", 1.0, 3.0), ("DC Reid", "Not really.", 62.5, 65.0)]


def test_csv_and_tsv_with_configurable_columns(tmp_path):
    path = tmp_path / "survey.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["who", "utterance", "start", "end", "site"])
        writer.writerow(["PC Ward", 'He said "never again", as usual.', "00:01:05", "70.5", "north"])
        writer.writerow(["R", "Why?", "", "", "north"])
    store = _ingest(tmp_path, path, csv={"text_column": "utterance", "speaker_column": "who"})
    assert _rows(store, "survey") == [
        ("PC Ward", 'He said "never again", as usual.', 65.0, 70.5),
        ("R", "Why?", None, None),
    ]
    assert store.segments("survey")[0].metadata["site"] == "north"
    tsv = tmp_path / "tabbed.tsv"
    tsv.write_text("speaker\ttext\nOM1\tChecked his address twice.\n", encoding="utf-8")
    ingest(store, [tsv], IngestSettings(), show_progress=False)
    assert _rows(store, "tabbed") == [("OM1", "Checked his address twice.", None, None)]


def test_jsonl_keeps_metadata(tmp_path):
    path = tmp_path / "turns.jsonl"
    path.write_text(
        json.dumps(
            {
                "speaker": "DS Khan",
                "text": "We put a marker on the address.",
                "start": 3,
                "end": 8,
                "meta": {"tape": "B"},
            }
        )
        + "\n\n"
        + json.dumps({"text": "No speaker here.", "mood": "tired"})
        + "\n",
        encoding="utf-8",
    )
    store = _ingest(tmp_path, path)
    segs = store.segments("turns")
    assert _rows(store, "turns") == [
        ("DS Khan", "We put a marker on the address.", 3.0, 8.0),
        (None, "No speaker here.", None, None),
    ]
    assert segs[0].metadata["tape"] == "B" and segs[1].metadata["mood"] == "tired"


def test_docx_paragraphs_as_speaker_turns(tmp_path):
    path = tmp_path / "word.docx"
    document = docx.Document()
    for line in ["R: What is the job for?", "PC Lowe: Locking up the ones who hurt people.", ""]:
        document.add_paragraph(line)
    document.save(path)
    store = _ingest(tmp_path, path)
    assert _rows(store, "word") == [
        ("R", "What is the job for?", None, None),
        ("PC Lowe", "Locking up the ones who hurt people.", None, None),
    ]


def test_cp1252_text_is_decoded(tmp_path):
    path = tmp_path / "legacy.txt"
    path.write_bytes("R: Was the caf\u00e9 open?\nOM3: It cost \u00a340 \u2013 no chance.\n".encode("cp1252"))
    store = _ingest(tmp_path, path)
    assert [s.text for s in store.segments("legacy")] == [
        "Was the caf\u00e9 open?",
        "It cost \u00a340 \u2013 no chance.",
    ]


def test_long_turns_split_at_sentence_boundaries(tmp_path):
    sentences = [f"Sentence number {i} talks about the weekly tasking meeting at length." for i in range(12)]
    path = tmp_path / "long.txt"
    path.write_text("PC Long: " + " ".join(sentences) + "\nR: Thanks.\n", encoding="utf-8")
    store = _ingest(tmp_path, path, max_segment_chars=200)
    pieces = [s for s in store.segments("long") if s.speaker == "PC Long"]
    assert len(pieces) > 1
    assert all(len(p.text) <= 200 for p in pieces)
    assert all(p.text.endswith(".") for p in pieces)  # cut between sentences, never inside one
    assert " ".join(p.text for p in pieces) == " ".join(sentences)
    assert pieces[0].metadata["part"] == f"1/{len(pieces)}"


@pytest.mark.parametrize("text,limit", [("word " * 300, 100), ("x" * 1000, 120)])
def test_split_turn_never_exceeds_the_limit(text, limit):
    pieces = split_turn(text, limit)
    assert pieces and all(len(p) <= limit for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_utf16_with_bom_is_decoded(tmp_path):
    path = tmp_path / "exported.txt"
    path.write_bytes("R: Was the caf\u00e9 open?\nOM3: It cost \u00a340.\n".encode("utf-16"))
    store = _ingest(tmp_path, path)
    assert [s.text for s in store.segments("exported")] == ["Was the caf\u00e9 open?", "It cost \u00a340."]
