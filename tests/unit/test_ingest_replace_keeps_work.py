"""`ingest --replace` after a transcript was edited keeps people's work (issue 12, defect 6).

A segment that vanished from the new text while it held annotations, gold or Label Studio tasks is
kept as superseded (out of every count and stage); a small edit carries its annotations and gold
over to the edited segment; segments without any work may go.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from pipeline.config import IngestSettings, load_codebook
from pipeline.ingest import ingest
from pipeline.ingest.carry import match_successors
from pipeline.status import workspace_status
from pipeline.store import MIGRATIONS, Segment, Store
from pipeline.store.annotations import live_annotations, record_tasks, unannotated_segment_ids
from pipeline.store.gold import GoldLabel, count_gold, gold_segments, replace_gold
from pipeline.store.segments import count_segments_without_prediction, superseded_segments
from tests.conftest import FIXTURES, table_dump
from tests.factory import SERVER, add_annotation, add_gold, add_model, add_project

ANA, BEA = "ana@example.org", "bea@example.org"
BEFORE = (
    "R: How did the visit go last Tuesday?\n"
    "PC Dawes: I think the sergeant was right about that.\n"
    "R: And the hostel?\n"
    "PC Dawes: He got a bed at the hostel, nothing more.\n"
    "R: Anything else to add?\n"
)
# line 2: one word changed (carried over); line 3: rewritten (kept as superseded);
# line 4: rewritten, no work on it (deleted); line 5: rewritten, pushed to Label Studio (kept)
AFTER = (
    "R: How did the visit go last Tuesday?\n"
    "PC Dawes: I think the sergeant was wrong about that.\n"
    "R: What happened at the place where he sleeps now?\n"
    "PC Dawes: Nothing at all.\n"
    "R: Is there something you would like to say?\n"
)


@pytest.fixture
def book():
    return load_codebook(FIXTURES / "codebook_small.yaml")


def _labelled(tmp_path, book):
    """A workspace with BEFORE ingested: two annotators on turns 1-3, gold on 1-3, a task on turn 5."""
    src = tmp_path / "int.txt"
    src.write_text(BEFORE, encoding="utf-8")
    store = Store(tmp_path / "ws")
    with store.transaction():
        store.record_codebook(book)
    ingest(store, [src], show_progress=False)
    segs = store.segments()
    add_project(store, 1, ANA, book)
    add_project(store, 2, BEA, book)
    for n, seg in enumerate(segs[:3]):
        add_annotation(store, 10 + n, 1, seg.id, ANA, ["carrot"], book)
        add_annotation(store, 20 + n, 2, seg.id, BEA, ["stick"], book)
    add_gold(store, {segs[0].id: ["carrot"], segs[1].id: ["carrot"], segs[2].id: ["stick"]}, book)
    with store.transaction():
        record_tasks(store, SERVER, 1, [(99, segs[4].id, None)])
    return src, store, segs


def test_replace_carries_a_small_edit_and_keeps_a_rewrite(tmp_path, book):
    src, store, old = _labelled(tmp_path, book)
    rows_before = store.count("annotations")
    src.write_text(AFTER, encoding="utf-8")

    report = ingest(store, [src], replace=True, show_progress=False)

    new = store.segments()
    assert [s.text for s in new] == [line.split(": ", 1)[1] for line in AFTER.splitlines()]
    assert new[0].id == old[0].id  # untouched turn, untouched work
    fates = {s.segment_id: s for s in report.superseded}
    assert set(fates) == {old[1].id, old[2].id, old[4].id}
    assert fates[old[1].id].carried_to == new[1].id and fates[old[1].id].similarity >= 0.9
    assert (fates[old[1].id].annotations, fates[old[1].id].gold) == (2, 1)
    assert fates[old[2].id].carried_to is None and (fates[old[2].id].annotations, fates[old[2].id].gold) == (2, 1)
    assert fates[old[4].id].tasks == 1 and fates[old[4].id].carried_to is None
    assert report.segments_deleted == 1 and report.carried_over == 1  # turn 4 had nothing on it

    # the ratings: the edited turn keeps both annotators' codes; the rewritten turn counts nowhere
    ratings = {(a.segment_id, a.annotator): a.codes for a in live_annotations(store)}
    assert ratings == {
        (new[0].id, ANA): ["carrot"],
        (new[0].id, BEA): ["stick"],
        (new[1].id, ANA): ["carrot"],
        (new[1].id, BEA): ["stick"],
    }
    assert {g.segment_id: g.codes for g in gold_segments(store)} == {new[0].id: ["carrot"], new[1].id: ["carrot"]}
    # ... and nothing was deleted: the originals stay on the superseded segments, copies were added
    assert store.count("annotations") == rows_before + 2 and store.count("gold") == 3 + 1
    kept = {s.id: s for s in superseded_segments(store)}
    assert kept[old[2].id].text == "And the hostel?" and kept[old[2].id].former_position == 2
    assert unannotated_segment_ids(store) == [s.id for s in new[2:]]
    assert count_segments_without_prediction(store, "v-none") == len(new)  # prelabel sees the active text only


def test_status_counts_the_active_text_and_reports_what_is_kept(tmp_path, book):
    src, store, old = _labelled(tmp_path, book)
    add_model(store, "v1", book, {s.id: ["carrot"] for s in old})
    src.write_text(AFTER, encoding="utf-8")
    ingest(store, [src], replace=True, show_progress=False)
    counts = workspace_status(store, book).counts
    assert (counts.segments, counts.superseded_segments) == (5, 3)
    assert counts.predicted_segments == 1  # predictions of text no longer in the document are dropped
    assert (counts.annotations, counts.annotated_segments, counts.gold) == (4, 2, 2)
    assert counts.superseded_annotations == 2  # the rewritten turn's; the edited turn's count through their copies
    per_code = workspace_status(store, book).per_code
    assert (per_code["carrot"].annotated, per_code["stick"].annotated) == (2, 2)


def test_rerun_and_second_replace_change_nothing(tmp_path, book):
    src, store, _ = _labelled(tmp_path, book)
    src.write_text(AFTER, encoding="utf-8")
    ingest(store, [src], replace=True, show_progress=False)
    before = table_dump(store.path)
    again = ingest(store, [src], replace=True, show_progress=False)
    assert again.unchanged == ["int"] and again.superseded == [] and again.segments_added == 0
    assert table_dump(store.path) == before


def test_reverting_an_edit_brings_the_original_back_without_duplicates(tmp_path, book):
    src, store, old = _labelled(tmp_path, book)
    src.write_text(BEFORE.replace("right", "wrong"), encoding="utf-8")
    ingest(store, [src], replace=True, show_progress=False)
    src.write_text(BEFORE, encoding="utf-8")
    report = ingest(store, [src], replace=True, show_progress=False)
    assert [s.id for s in store.segments()] == [s.id for s in old]
    (edited,) = report.superseded  # the edited text, holding only copies, points back at the original
    assert edited.carried_to == old[1].id
    ratings = [(a.segment_id, a.annotator) for a in live_annotations(store) if a.segment_id == old[1].id]
    assert sorted(ratings) == [(old[1].id, ANA), (old[1].id, BEA)]
    assert count_gold(store) == 3


def test_adjudication_rewrites_only_the_active_gold(tmp_path, book):
    src, store, old = _labelled(tmp_path, book)
    src.write_text(AFTER, encoding="utf-8")
    ingest(store, [src], replace=True, show_progress=False)
    with store.transaction():
        replace_gold(store, [GoldLabel(old[0].id, ["stick"], "majority")], book.content_hash)
    assert count_gold(store) == 1 and store.count("gold") == 1 + 2  # the superseded segments keep theirs


def test_carry_threshold_is_a_setting(tmp_path, book):
    src, store, old = _labelled(tmp_path, book)
    src.write_text(AFTER, encoding="utf-8")
    report = ingest(store, [src], IngestSettings(carry_over_similarity=1.0), replace=True, show_progress=False)
    assert report.carried_over == 0 and len(report.superseded) == 3
    assert [a.segment_id for a in live_annotations(store)] == [old[0].id, old[0].id]


def _seg(id_: str, position: int, text: str, speaker: str = "R") -> Segment:
    return Segment(id_, "d", position, text, speaker)


def test_successors_follow_the_document_alignment():
    old = [_seg("a", 0, "Hello there."), _seg("b", 1, "It was quiet that night."), _seg("c", 2, "Yes.")]
    new = [
        _seg("z", 0, "A new first turn."),
        _seg("a", 1, "Hello there."),
        _seg("b2", 2, "It was quiet that night!"),
        _seg("c2", 3, "No."),
    ]
    found = match_successors(old, new, ["b", "c"], 0.9)
    assert set(found) == {"b"} and found["b"].segment_id == "b2"
    # an unchanged turn is never a successor, however alike
    assert match_successors(old, [_seg("b", 0, "It was quiet that night.")], ["a"], 0.5) == {}


def test_cli_replace_says_what_happened(tmp_path, book, cli, small_codebook):
    src, store, _ = _labelled(tmp_path, book)
    store.close()
    ws = tmp_path / "ws"
    src.write_text(AFTER, encoding="utf-8")
    result = cli("ingest", src, "--replace", "--workspace", ws, "--codebook", small_codebook, "--quiet")
    assert result.exit_code == 0, result.output
    assert "3 changed segment(s) held annotations, gold or Label Studio tasks" in result.stdout
    assert "1 carried over to the edited text, 2 kept as superseded" in result.stdout
    assert "culturecode segments --superseded" in result.stdout

    listed = json.loads(cli("segments", "--superseded", "--workspace", ws, "--json").stdout)
    assert sorted(s["annotations"] for s in listed) == [0, 2, 2] and sum(s["gold"] for s in listed) == 2
    status = json.loads(cli("status", "--workspace", ws, "--codebook", small_codebook, "--json").stdout)
    assert status["counts"]["segments"] == 5 and status["counts"]["superseded_segments"] == 3

    before = table_dump(ws / "culturecode.db")
    again = cli("ingest", src, "--replace", "--workspace", ws, "--codebook", small_codebook, "--json", "--quiet")
    assert again.exit_code == 0 and json.loads(again.stdout)["superseded"] == []
    assert table_dump(ws / "culturecode.db") == before


def test_migration_keeps_annotations_and_gold_of_a_schema_2_workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    conn = sqlite3.connect(ws / "culturecode.db")
    conn.executescript(MIGRATIONS[0] + ";" + MIGRATIONS[1] + "; PRAGMA user_version = 2;")
    conn.executescript(
        "INSERT INTO documents VALUES ('d', 'd.txt', 'txt', 'h', '{}', 'now');"
        "INSERT INTO segments(id, document_id, position, text) VALUES ('s1', 'd', 0, 'Hello.');"
        "INSERT INTO annotations(server_url, project_id, annotation_id, task_id, segment_id, annotator, codes, "
        "codebook_hash, pulled_at) VALUES ('u', 1, 7, 3, 's1', 'ana', '[\"carrot\"]', 'h', 'now');"
        "INSERT INTO gold VALUES ('s1', '[\"carrot\"]', 'majority', '{}', 'h', 'now');"
    )
    conn.commit()
    conn.close()
    store = Store(ws)
    assert store.schema_version == len(MIGRATIONS)
    (ann,) = live_annotations(store)
    assert (ann.annotation_id, ann.segment_id, ann.codes) == (7, "s1", ["carrot"])
    assert [g.segment_id for g in gold_segments(store)] == ["s1"]
