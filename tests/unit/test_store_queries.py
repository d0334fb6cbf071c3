"""The store's central rules, each written once: which annotations count, which model is current,
what is left to pre-label, how gold is replaced, what the status counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_codebook
from pipeline.status import workspace_status
from pipeline.store import Store
from pipeline.store.annotations import live_annotations, mark_deleted, review_annotations, unannotated_segment_ids
from pipeline.store.gold import gold_segments
from pipeline.store.llm_cache import CachedAnswer, cache_answer, cached_answer, cached_keys
from pipeline.store.models import current_model, list_models, promote_model
from pipeline.store.predictions import delete_predictions, predictions_of
from pipeline.store.segments import count_segments_without_prediction, segments_without_prediction
from tests.factory import SERVER, add_annotation, add_documents, add_gold, add_model, add_project, make_workspace

ANA, BO, JUDGE = "ana@example.org", "bo@example.org", "judge@example.org"


@pytest.fixture
def book(small_codebook: Path):
    return load_codebook(small_codebook)


@pytest.fixture
def store(tmp_path: Path, book):
    docs = {"d1": ["One.", "Two.", "Three."], "d2": ["Four.", "Five."]}
    with make_workspace(tmp_path / "ws", book, docs) as store:
        add_project(store, 1, ANA, book)
        add_project(store, 2, BO, book)
        add_project(store, 9, None, book, role="review")
        yield store


def test_live_annotations_leave_out_deleted_skipped_and_review_rows(store: Store, book) -> None:
    add_annotation(store, 1, 1, "d1-0", ANA, ["carrot"], book)
    add_annotation(store, 2, 1, "d1-1", ANA, ["stick"], book, cancelled=True)  # skipped
    add_annotation(store, 3, 2, "d1-0", BO, ["stick"], book)
    add_annotation(store, 4, 9, "d1-0", JUDGE, ["carrot"], book)  # an adjudicator's decision
    add_annotation(store, 5, 2, "d2-0", BO, [], book)
    with store.transaction():
        mark_deleted(store, SERVER, [5])  # gone from the server
    live = live_annotations(store)
    assert [a.annotation_id for a in live] == [1, 3]
    assert (live[0].segment_id, live[0].annotator, live[0].codes, live[0].document_id, live[0].text) == (
        "d1-0",
        ANA,
        ["carrot"],
        "d1",
        "One.",
    )
    assert [(a.annotation_id, a.annotator) for a in review_annotations(store)] == [(4, JUDGE)]
    assert unannotated_segment_ids(store) == ["d1-1", "d1-2", "d2-0", "d2-1"]  # skipped and deleted don't count


def test_live_annotations_come_oldest_edit_first_and_filter(store: Store, book) -> None:
    add_annotation(store, 1, 1, "d1-0", ANA, ["carrot"], book, updated_at="2026-03-01T00:00:00+00:00")
    add_annotation(store, 2, 1, "d2-0", ANA, ["stick"], book, updated_at="2026-01-01T00:00:00+00:00")
    add_annotation(store, 3, 2, "d1-0", BO, [], "another-codebook", updated_at="2026-02-01T00:00:00+00:00")
    assert [a.annotation_id for a in live_annotations(store)] == [2, 3, 1]
    assert [a.annotation_id for a in live_annotations(store, annotators=[ANA])] == [2, 1]
    assert [a.annotation_id for a in live_annotations(store, documents=["d1"])] == [3, 1]
    assert [a.annotation_id for a in live_annotations(store, since="2026-02-01")] == [3, 1]
    assert [a.annotation_id for a in live_annotations(store, codebook_hash=book.content_hash)] == [2, 1]


def test_current_model_per_kind_prefers_a_classifier(store: Store, book) -> None:
    assert current_model(store) is None
    add_model(store, "llm-a", book, kind="llm", created_at="2026-01-02T00:00:00+00:00")
    assert current_model(store) == "llm-a" and current_model(store, "classifier") is None  # a cold start
    add_model(store, "clf-001", book, created_at="2000-01-01T00:00:00+00:00")
    assert current_model(store) == "clf-001"  # older, but a classifier
    assert current_model(store, "llm") == "llm-a"
    add_model(store, "clf-002", book, current=False)
    assert current_model(store, "classifier") == "clf-001"
    with store.transaction():
        promote_model(store, "clf-002", "classifier")
    assert current_model(store) == "clf-002" and current_model(store, "llm") == "llm-a"
    assert [(m["version"], m["is_current"]) for m in list_models(store, "classifier")] == [
        ("clf-001", False),
        ("clf-002", True),
    ]


def test_segments_without_prediction(store: Store, book) -> None:
    add_model(store, "v1", book, {"d1-0": ["carrot"], "d2-1": []})
    add_model(store, "v2", book, {"d1-1": ["stick"]})
    todo = [s.id for chunk in segments_without_prediction(store, "v1", chunk_size=2) for s in chunk]
    assert todo == ["d1-1", "d1-2", "d2-0"] and count_segments_without_prediction(store, "v1") == 3
    assert count_segments_without_prediction(store, "v1", ids=["d1-0", "d1-2"]) == 1
    assert [[s.id for s in c] for c in segments_without_prediction(store, "v1", ids=["d1-0", "d1-2"])] == [["d1-2"]]


def test_delete_predictions_by_version_and_segment(store: Store, book) -> None:
    add_model(store, "v1", book, {"d1-0": ["carrot"], "d1-1": [], "d2-0": ["stick"]})
    add_model(store, "v2", book, {"d1-0": [], "d1-1": ["stick"]})
    assert delete_predictions(store, "v1", ["d1-0", "d2-0", "nowhere"]) == 2
    assert set(predictions_of(store, "v1")) == {"d1-1"} and set(predictions_of(store, "v2")) == {"d1-0", "d1-1"}
    assert delete_predictions(store, segment_ids=["d1-1"]) == 2
    assert set(predictions_of(store, "v2")) == {"d1-0"}
    assert delete_predictions(store) == 1 and not predictions_of(store, "v1") and not predictions_of(store, "v2")


def test_gold_is_replaced_whole_and_read_in_document_order(store: Store, book) -> None:
    add_gold(store, {"d2-0": ["stick"], "d1-2": []}, book)
    add_gold(store, {"d2-1": ["carrot"], "d1-0": ["stick"]}, book, method="adjudicator")
    rows = gold_segments(store)
    assert [(g.segment_id, g.codes, g.method, g.text) for g in rows] == [
        ("d1-0", ["stick"], "adjudicator", "One."),
        ("d2-1", ["carrot"], "adjudicator", "Five."),
    ]


def test_status_counts(store: Store, book) -> None:
    add_documents(store, {"d3": ["Six."]})
    add_model(store, "v1", book, {"d1-0": ["carrot"], "d1-1": ["carrot", "stick"]})
    add_annotation(store, 1, 1, "d1-0", ANA, ["carrot"], book)
    add_annotation(store, 2, 2, "d1-0", BO, ["stick"], book)
    add_annotation(store, 3, 2, "d1-1", BO, [], book, cancelled=True)
    add_annotation(store, 4, 9, "d1-1", JUDGE, ["stick"], book)
    add_gold(store, {"d1-0": ["carrot"]}, book)
    status = workspace_status(store, book)
    counts = status.as_dict()["counts"]
    assert counts == {
        "documents": 3,
        "segments": 6,
        "predicted_segments": 2,
        "tasks": 0,
        "annotations": 3,
        "skipped": 1,
        "annotated_segments": 2,
        "annotators": 3,
        "gold": 1,
        "models": 1,
        "superseded_segments": 0,
        "superseded_annotations": 0,
    }
    assert status.as_dict()["per_code"] == {
        "carrot": {"predicted": 2, "annotated": 1, "gold": 1},
        "stick": {"predicted": 1, "annotated": 2, "gold": 0},
    }
    assert status.current_model == "v1" and list(status.as_dict()) == [
        "workspace",
        "schema_version",
        "codebook_hash",
        "current_model",
        "counts",
        "per_code",
        "last_runs",
        "thresholds",
    ]


def test_llm_cache_round_trip(store: Store) -> None:
    answer = CachedAnswer(
        "k1",
        "local",
        "qwen",
        "p1",
        "d1-0",
        "h",
        {"temperature": 0},
        '{"codes": []}',
        ['{"codes": []}'],
        None,
        10,
        5,
        1.5,
    )
    with store.transaction():
        cache_answer(store, answer)
    assert cached_answer(store, "k1") == answer and cached_answer(store, "k2") is None
    assert cached_keys(store, ["k1", "k2"]) == {"k1"}


def test_count_refuses_an_unknown_table(store: Store) -> None:
    assert store.count("segments") == 5
    with pytest.raises(ValueError, match="no table 'segments; DROP'"):
        store.count("segments; DROP")
