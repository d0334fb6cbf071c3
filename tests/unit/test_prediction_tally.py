"""The prediction tallies of schema 4 (issue 16: `status` instant at a million segments).

`status` reads predictions per model version and per code from two small tables kept by triggers; whatever
writes or deletes predictions, the tallies must equal a recount of the rows themselves.
"""

from __future__ import annotations

import sqlite3

import pytest

from pipeline.config import load_codebook
from pipeline.ingest import ingest
from pipeline.status import workspace_status
from pipeline.store import MIGRATIONS, Document, Segment, Store
from pipeline.store.annotations import record_tasks
from pipeline.store.predictions import (
    PredictionRow,
    count_predictions,
    delete_predictions,
    predicted_per_code,
    prediction_tallies,
    recount_predictions,
    write_predictions,
)
from tests.conftest import FIXTURES
from tests.factory import SERVER, add_model, make_workspace


@pytest.fixture
def book():
    return load_codebook(FIXTURES / "codebook_small.yaml")


def _exact(store: Store) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """The tallies, asserted equal to a recount of the prediction rows."""
    tallies = prediction_tallies(store)
    assert tallies == recount_predictions(store)
    return tallies


def _write(store: Store, version: str, codes: dict[str, list[str]]) -> None:
    rows = [PredictionRow(seg, version, {c: 0.9 for c in chosen}, chosen) for seg, chosen in codes.items()]
    with store.transaction():
        write_predictions(store, rows, "h")


def _workspace(tmp_path, book, n: int = 4) -> Store:
    return make_workspace(tmp_path / "ws", book, {"d": [f"Turn {i}." for i in range(n)]})


def test_writes_are_tallied_per_version_and_code(tmp_path, book):
    store = _workspace(tmp_path, book)
    _write(store, "v1", {"d-0": ["carrot"], "d-1": ["carrot", "stick"], "d-2": []})
    _write(store, "v2", {"d-0": ["stick"]})
    per_version, per_code = _exact(store)
    assert per_version == {"v1": 3, "v2": 1}
    assert per_code == {("v1", "carrot"): 2, ("v1", "stick"): 1, ("v2", "stick"): 1}
    assert predicted_per_code(store, "v1") == {"carrot": 2, "stick": 1}
    assert (count_predictions(store, "v1"), count_predictions(store, "v3"), count_predictions(store)) == (3, 0, 4)


def test_a_rewrite_of_the_same_segment_and_version_moves_its_codes(tmp_path, book):
    store = _workspace(tmp_path, book)
    _write(store, "v1", {"d-0": ["carrot"], "d-1": ["carrot"]})
    _write(store, "v1", {"d-0": ["stick"], "d-1": ["carrot"]})  # the upsert of write_predictions
    assert _exact(store) == ({"v1": 2}, {("v1", "carrot"): 1, ("v1", "stick"): 1})
    with store.transaction():  # a plain INSERT OR REPLACE drops the old row: its codes leave the tally
        store.conn.execute(
            "INSERT OR REPLACE INTO predictions(segment_id, model_version, scores, codes, codebook_hash, created_at) "
            "VALUES ('d-1', 'v1', '{}', '[\"stick\", \"stick\"]', 'h', 'now')"
        )
    assert _exact(store) == ({"v1": 2}, {("v1", "stick"): 3})
    with store.transaction():
        store.conn.execute("UPDATE predictions SET model_version = 'v2' WHERE segment_id = 'd-0'")
    assert _exact(store) == ({"v1": 1, "v2": 1}, {("v1", "stick"): 2, ("v2", "stick"): 1})


def test_deletes_leave_no_stale_rows(tmp_path, book):
    store = _workspace(tmp_path, book)
    _write(store, "v1", {"d-0": ["carrot"], "d-1": ["stick"], "d-2": ["carrot", "stick"]})
    _write(store, "v2", {"d-0": ["carrot"]})
    with store.transaction():
        assert delete_predictions(store, "v1", ["d-0", "d-2"]) == 2
    assert _exact(store) == ({"v1": 1, "v2": 1}, {("v1", "stick"): 1, ("v2", "carrot"): 1})
    with store.transaction():
        delete_predictions(store, "v1")
    assert _exact(store) == ({"v2": 1}, {("v2", "carrot"): 1})
    with store.transaction():
        delete_predictions(store)
    assert _exact(store) == ({}, {})
    assert workspace_status(store, book).per_code["carrot"].predicted == 0


def test_segments_and_documents_deleted_take_their_predictions_out(tmp_path, book):
    store = _workspace(tmp_path, book)
    _write(store, "v1", {f"d-{i}": ["carrot"] for i in range(4)})
    segs = [Segment(id=f"d-{i}", document_id="d", position=i, text=f"Turn {i}.") for i in range(2)]
    with store.transaction():  # turns 2 and 3 vanish with no work on them: deleted, predictions cascade
        store.put_document(Document("d", "d.txt", "txt", "d2"), segs)
    assert _exact(store) == ({"v1": 2}, {("v1", "carrot"): 2})
    with store.transaction():
        store.conn.execute("DELETE FROM documents WHERE id = 'd'")
    assert _exact(store) == ({}, {})


def test_ingest_replace_supersedes_segments_and_drops_their_predictions(tmp_path, book):
    src = tmp_path / "int.txt"
    src.write_text("R: How did it go?\nPC: Fine.\nR: And then?\n", encoding="utf-8")
    store = Store(tmp_path / "ws")
    with store.transaction():
        store.record_codebook(book)
    ingest(store, [src], show_progress=False)
    old = store.segments()
    add_model(store, "v1", book, {s.id: ["carrot"] for s in old})
    with store.transaction():  # a task keeps the last turn as superseded rather than deleted
        record_tasks(store, SERVER, 1, [(9, old[2].id, None)])
    src.write_text("R: How did it go?\nPC: Fine.\nR: Something else entirely now.\n", encoding="utf-8")

    report = ingest(store, [src], replace=True, show_progress=False)

    assert [s.segment_id for s in report.superseded] == [old[2].id]
    assert _exact(store) == ({"v1": 2}, {("v1", "carrot"): 2})
    status = workspace_status(store, book)
    assert status.counts.predicted_segments == 2 and status.per_code["carrot"].predicted == 2


def test_migration_fills_the_tallies_of_a_schema_3_workspace(tmp_path, book):
    ws = tmp_path / "ws"
    ws.mkdir()
    conn = sqlite3.connect(ws / "culturecode.db")
    conn.executescript(";".join(MIGRATIONS[:3]) + "; PRAGMA user_version = 3;")
    conn.executescript(
        "INSERT INTO documents VALUES ('d', 'd.txt', 'txt', 'h', '{}', 'now');"
        "INSERT INTO segments(id, document_id, position, text) VALUES ('s1', 'd', 0, 'Hello.'), ('s2', 'd', 1, 'Hi.');"
        "INSERT INTO models(version, codebook_hash, is_current, created_at) VALUES ('v1', 'h', 1, 'now');"
        "INSERT INTO predictions(segment_id, model_version, scores, codes, codebook_hash, created_at) VALUES "
        "('s1', 'v1', '{}', '[\"carrot\", \"stick\"]', 'h', 'now'), ('s2', 'v1', '{}', '[\"carrot\"]', 'h', 'now'), "
        "('s2', 'v0', '{}', '[]', 'h', 'now');"
    )
    conn.commit()
    conn.close()

    store = Store(ws)

    assert store.schema_version == len(MIGRATIONS)
    assert _exact(store) == ({"v1": 2, "v0": 1}, {("v1", "carrot"): 2, ("v1", "stick"): 1})
    status = workspace_status(store, book)
    assert status.counts.predicted_segments == 2
    assert {c: n.predicted for c, n in status.per_code.items()} == {"carrot": 2, "stick": 1}
    _write(store, "v1", {"s1": []})  # and the triggers keep them from there
    assert _exact(store) == ({"v1": 2, "v0": 1}, {("v1", "carrot"): 1})
