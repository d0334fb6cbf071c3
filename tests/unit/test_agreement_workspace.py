"""Builds small workspaces with 3+ annotators directly in the store (no Label Studio needed).

Imported by the other test_agreement*.py and test_gold*.py modules; its own tests check the
builder and how annotations are read back (filters, latest edit wins, review and skipped ones left out).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import PROJECT_ROOT, load_codebook
from pipeline.store import Store
from tests.factory import EDITED_AT, add_annotation, add_documents, add_model, add_project, make_workspace

SMALL_CODEBOOK = PROJECT_ROOT / "tests" / "fixtures" / "codebook_small.yaml"
ANNOTATORS = ["ana@example.org", "bo@example.org", "cy@example.org"]
HOSTILE = "<script>window.__pwned = 1</script> & <b>bold</b>"

# per document, per segment: the codes each annotator chose (None = did not annotate)
DECISIONS = {
    "doc_a": [
        (["carrot"], ["carrot"], ["carrot"]),
        (["stick"], ["stick"], ["carrot", "stick"]),
        ([], [], []),
        (["carrot"], [], ["carrot"]),
        (["stick"], ["stick"], None),
        (["carrot", "stick"], ["carrot", "stick"], ["carrot", "stick"]),
    ],
    "doc_b": [
        ([], ["stick"], []),
        (["carrot"], ["carrot"], ["carrot"]),
        (["stick"], ["stick"], ["stick"]),
        ([], [], ["carrot"]),
        (["carrot"], ["stick"], ["carrot", "stick"]),
        ([], [], []),
    ],
    "doc_c": [
        (["stick"], ["stick"], ["stick"]),
        (["carrot"], ["carrot"], []),
        ([], [], []),
        (["carrot"], ["carrot"], ["carrot"]),
        (["stick"], None, ["stick"]),
        (["carrot"], ["carrot"], ["carrot"]),
    ],
}


def segment_text(doc: str, position: int) -> str:
    if (doc, position) == ("doc_b", 4):
        return HOSTILE
    return f"Turn {position} of {doc}: we talked about housing and recall."


def build_workspace(
    path: Path,
    codebook_path: Path = SMALL_CODEBOOK,
    model: bool = True,
    decisions: dict | None = None,
    edited_at: dict[str, str] | None = None,
) -> Store:
    """A workspace with 3 documents x 6 segments, 3 annotators, one model version, a review project.

    `edited_at` gives the annotations of some documents another edit time than EDITED_AT."""
    book = load_codebook(codebook_path)
    store = make_workspace(path, book)
    ann_id = 0
    with store.transaction():
        for j, annotator in enumerate(ANNOTATORS):
            add_project(store, j + 1, annotator, book, title=f"p{j}")
        add_project(store, 99, None, book, role="review", title="review")
        predicted: dict[str, list[str]] = {}
        for doc, rows in (decisions or DECISIONS).items():
            segs = add_documents(store, {doc: [segment_text(doc, p) for p in range(len(rows))]})
            for seg, coded in zip(segs, rows, strict=True):
                predicted[seg.id] = coded[0] if coded[0] is not None else []
                for j, codes in enumerate(coded):
                    if codes is None:
                        continue
                    ann_id += 1
                    stamp = (edited_at or {}).get(doc, EDITED_AT)
                    add_annotation(
                        store,
                        ann_id,
                        j + 1,
                        seg.id,
                        ANNOTATORS[j],
                        codes,
                        book,
                        "v1" if model else None,
                        updated_at=stamp,
                    )
        if model:
            add_model(store, "v1", book, predicted, code_ids=book.code_ids)
    return store


def insert_annotation(
    store: Store,
    ann_id: int,
    project: int,
    segment_id: str,
    annotator: str,
    codes: list[str],
    codebook_hash: str,
    version: str | None = None,
    cancelled: bool = False,
    updated_at: str = EDITED_AT,
) -> None:
    add_annotation(store, ann_id, project, segment_id, annotator, codes, codebook_hash, version, cancelled, updated_at)


# --------------------------------------------------------------------------- tests of the builder and the reader


def test_builder_and_reader(tmp_path: Path) -> None:
    from pipeline.agreement import load_ratings

    with build_workspace(tmp_path / "ws") as store:
        book = load_codebook(SMALL_CODEBOOK)
        ratings = load_ratings(store, book)
        assert ratings.annotators == ANNOTATORS
        assert ratings.n_items == 18
        assert int(ratings.rated.sum()) == 52  # 54 cells, two left empty
        assert ratings.labels[ratings.items.index("doc_a-1"), 2].tolist() == [True, True]


def test_review_skipped_and_edited_annotations(tmp_path: Path) -> None:
    from pipeline.agreement import load_ratings

    with build_workspace(tmp_path / "ws") as store:
        book = load_codebook(SMALL_CODEBOOK)
        with store.transaction():
            # an adjudicator's review decision is not a rater's annotation
            insert_annotation(store, 1001, 99, "doc_a-3", "judge@example.org", ["stick"], book.content_hash)
            # a skipped task is not an annotation
            insert_annotation(store, 1002, 1, "doc_a-4", ANNOTATORS[2], ["carrot"], book.content_hash, cancelled=True)
            # ana edits doc_a-0 later: the latest annotation wins
            insert_annotation(
                store,
                1003,
                1,
                "doc_a-0",
                ANNOTATORS[0],
                ["stick"],
                book.content_hash,
                updated_at="2026-02-01T10:00:00+00:00",
            )
        ratings = load_ratings(store, book)
        assert "judge@example.org" not in ratings.annotators
        assert not ratings.rated[ratings.items.index("doc_a-4"), 2]
        assert ratings.labels[ratings.items.index("doc_a-0"), 0].tolist() == [False, True]
        recent = load_ratings(store, book, since="2026-01-15")
        assert recent.items == ["doc_a-0"] and recent.annotators == [ANNOTATORS[0]]
        only_b = load_ratings(store, book, documents=["doc_b"], annotators=ANNOTATORS[:2])
        assert {i.split("-")[0] for i in only_b.items} == {"doc_b"} and only_b.annotators == ANNOTATORS[:2]
