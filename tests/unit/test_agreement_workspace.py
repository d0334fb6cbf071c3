"""Builds small workspaces with 3+ annotators directly in the store (no Label Studio needed).

Imported by the other test_agreement*.py and test_gold*.py modules; its own tests check the
builder and how annotations are read back (filters, latest edit wins, review and skipped ones left out).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import PROJECT_ROOT, load_codebook
from pipeline.store import Document, Segment, Store, dumps, now

SMALL_CODEBOOK = PROJECT_ROOT / "tests" / "fixtures" / "codebook_small.yaml"
SERVER = "http://127.0.0.1:1"
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


def build_workspace(path: Path, codebook_path: Path = SMALL_CODEBOOK, model: bool = True,
                    decisions: dict | None = None) -> Store:
    """A workspace with 3 documents x 6 segments, 3 annotators, one model version, a review project."""
    book = load_codebook(codebook_path)
    store = Store(path)
    ann_id = 0
    with store.transaction():
        store.record_codebook(book)
        for j, annotator in enumerate(ANNOTATORS):
            store.conn.execute(
                "INSERT INTO studio_projects(id, server_url, title, role, annotator, codebook_hash, created_at) "
                "VALUES(?, ?, ?, 'annotation', ?, ?, ?)", (j + 1, SERVER, f"p{j}", annotator, book.content_hash, now()))
        store.conn.execute(
            "INSERT INTO studio_projects(id, server_url, title, role, annotator, codebook_hash, created_at) "
            "VALUES(99, ?, 'review', 'review', NULL, ?, ?)", (SERVER, book.content_hash, now()))
        if model:
            store.conn.execute("INSERT INTO models(version, kind, codebook_hash, is_current, created_at) "
                               "VALUES('v1', 'classifier', ?, 1, ?)", (book.content_hash, now()))
        for doc, rows in (decisions or DECISIONS).items():
            segs = [Segment(id=f"{doc}-{p}", document_id=doc, position=p, text=segment_text(doc, p),
                            speaker="Officer" if p % 2 else "Interviewer") for p in range(len(rows))]
            store.put_document(Document(doc, f"{doc}.txt", "txt", doc), segs)
            for seg, decisions in zip(segs, rows):
                if model:
                    codes = decisions[0] if decisions[0] is not None else []
                    store.conn.execute(
                        "INSERT INTO predictions(segment_id, model_version, scores, codes, codebook_hash, created_at) "
                        "VALUES(?, 'v1', ?, ?, ?, ?)",
                        (seg.id, dumps({c: 0.9 if c in codes else 0.1 for c in book.code_ids}), dumps(codes),
                         book.content_hash, now()))
                for j, codes in enumerate(decisions):
                    if codes is None:
                        continue
                    ann_id += 1
                    insert_annotation(store, ann_id, j + 1, seg.id, ANNOTATORS[j], codes, book.content_hash,
                                      "v1" if model else None)
    return store


def insert_annotation(store: Store, ann_id: int, project: int, segment_id: str, annotator: str,
                      codes: list[str], codebook_hash: str, version: str | None = None,
                      cancelled: bool = False, updated_at: str = "2026-01-01T10:00:00+00:00") -> None:
    store.conn.execute(
        "INSERT INTO annotations(server_url, project_id, annotation_id, task_id, segment_id, annotator, codes, "
        "was_cancelled, deleted, lead_time, prediction_version, codebook_hash, created_at, updated_at, pulled_at) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, 0, 3.5, ?, ?, ?, ?, ?)",
        (SERVER, project, ann_id, ann_id, segment_id, annotator, dumps(codes), int(cancelled), version,
         codebook_hash, updated_at, updated_at, now()))


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
            insert_annotation(store, 1002, 1, "doc_a-4", ANNOTATORS[2], ["carrot"], book.content_hash,
                              cancelled=True)
            # ana edits doc_a-0 later: the latest annotation wins
            insert_annotation(store, 1003, 1, "doc_a-0", ANNOTATORS[0], ["stick"], book.content_hash,
                              updated_at="2026-02-01T10:00:00+00:00")
        ratings = load_ratings(store, book)
        assert "judge@example.org" not in ratings.annotators
        assert not ratings.rated[ratings.items.index("doc_a-4"), 2]
        assert ratings.labels[ratings.items.index("doc_a-0"), 0].tolist() == [False, True]
        recent = load_ratings(store, book, since="2026-01-15")
        assert recent.items == ["doc_a-0"] and recent.annotators == [ANNOTATORS[0]]
        only_b = load_ratings(store, book, documents=["doc_b"], annotators=ANNOTATORS[:2])
        assert {i.split("-")[0] for i in only_b.items} == {"doc_b"} and only_b.annotators == ANNOTATORS[:2]
