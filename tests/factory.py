"""The one factory for test workspaces: documents, segments, model predictions, Label Studio
projects, annotations and gold, all written through the store's own functions (no SQL here).

    store = make_workspace(tmp_path / "ws", book, {"doc_a": ["First turn.", "Second turn."]})
    add_model(store, "v1", book, {"doc_a-0": ["carrot"]})
    add_project(store, 1, "ana@example.org", book)
    add_annotation(store, 1, 1, "doc_a-0", "ana@example.org", ["carrot"], book)
    add_gold(store, {"doc_a-0": ["carrot"]}, book)

Every function takes either a `Codebook` or its content hash where rows record the codebook.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from pipeline.config import Codebook
from pipeline.store import Document, Segment, Store, dumps
from pipeline.store.annotations import add_project as store_add_project
from pipeline.store.annotations import record_tasks, set_task_streams, upsert_annotations
from pipeline.store.gold import GoldLabel, replace_gold
from pipeline.store.models import register_model
from pipeline.store.predictions import PredictionRow, write_predictions

SERVER = "http://127.0.0.1:1"  # nothing listens here: rows only, no Label Studio
DEFAULT_CODES = ("carrot", "stick")  # the codes of tests/fixtures/codebook_small.yaml
EDITED_AT = "2026-01-01T10:00:00+00:00"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (a server started on it soon after will most likely get it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _hash(codebook: Codebook | str) -> str:
    return codebook if isinstance(codebook, str) else codebook.content_hash


def _speaker(position: int) -> str:
    return "Officer" if position % 2 else "Interviewer"


def make_workspace(
    path: Path,
    codebook: Codebook | None = None,
    documents: dict[str, list[str]] | None = None,
    speaker: Callable[[int], str | None] = _speaker,
) -> Store:
    """A workspace (created if needed) that records `codebook` and holds `documents`."""
    store = Store(path)
    with store.transaction():
        if codebook is not None:
            store.record_codebook(codebook)
        add_documents(store, documents or {}, speaker)
    return store


def add_documents(
    store: Store, documents: dict[str, list[str]], speaker: Callable[[int], str | None] = _speaker
) -> list[Segment]:
    """One document per key; its texts become segments `<document>-<position>`."""
    added: list[Segment] = []
    with store.transaction():
        for doc, texts in documents.items():
            segs = [
                Segment(id=f"{doc}-{p}", document_id=doc, position=p, text=text, speaker=speaker(p))
                for p, text in enumerate(texts)
            ]
            store.put_document(Document(doc, f"{doc}.txt", "txt", doc), segs)
            added += segs
    return added


def add_model(
    store: Store,
    version: str,
    codebook: Codebook | str,
    codes: dict[str, list[str]] | None = None,
    kind: str = "classifier",
    current: bool = True,
    rationale: str | None = None,
    code_ids: tuple[str, ...] | list[str] = DEFAULT_CODES,
    created_at: str | None = None,
) -> None:
    """A model row and its predictions: `codes` per segment id, scored 0.9 when chosen, else 0.1."""
    with store.transaction():
        register_model(store, version, kind, None, _hash(codebook), {}, promote=current, created_at=created_at)
        rows = [
            PredictionRow(seg, version, {c: 0.9 if c in chosen else 0.1 for c in code_ids}, list(chosen), rationale)
            for seg, chosen in (codes or {}).items()
        ]
        write_predictions(store, rows, _hash(codebook))


def add_scores(
    store: Store,
    version: str,
    codebook: Codebook | str,
    scores: dict[str, dict[str, float]],
    threshold: float = 0.5,
    current: bool = True,
    path: Path | None = None,
) -> None:
    """A model row and its predictions with the given score per code of each segment (the codes are those
    scored at or above `threshold`); `path`: the model's directory, if it has one."""
    with store.transaction():
        register_model(store, version, "classifier", path, _hash(codebook), {}, promote=current)
        rows = [
            PredictionRow(seg, version, dict(per_code), [c for c, s in per_code.items() if s >= threshold])
            for seg, per_code in scores.items()
        ]
        write_predictions(store, rows, _hash(codebook))


def add_project(
    store: Store,
    project_id: int,
    annotator: str | None,
    codebook: Codebook | str,
    role: str = "annotation",
    url: str = SERVER,
    title: str | None = None,
) -> None:
    with store.transaction():
        store_add_project(store, url, project_id, title or f"p{project_id}", role, annotator, _hash(codebook))


def add_annotation(
    store: Store,
    annotation_id: int,
    project_id: int,
    segment_id: str,
    annotator: str,
    codes: list[str],
    codebook: Codebook | str,
    version: str | None = None,
    cancelled: bool = False,
    updated_at: str = EDITED_AT,
    url: str = SERVER,
    task_id: int | None = None,
) -> None:
    """One annotation as a pull stores it; the same (url, annotation_id) again replaces it (an edit)."""
    row = {
        "server_url": url,
        "project_id": project_id,
        "annotation_id": annotation_id,
        "task_id": annotation_id if task_id is None else task_id,
        "segment_id": segment_id,
        "annotator": annotator,
        "codes": dumps(codes),
        "was_cancelled": int(cancelled),
        "deleted": 0,
        "lead_time": 3.5,
        "prediction_version": version,
        "codebook_hash": _hash(codebook),
        "created_at": updated_at,
        "updated_at": updated_at,
    }
    with store.transaction():
        upsert_annotations(store, [row])


def add_gold(store: Store, labels: dict[str, list[str]], codebook: Codebook | str, method: str = "majority") -> None:
    """Replace the gold table with `labels` (segment id -> codes)."""
    with store.transaction():
        replace_gold(store, [GoldLabel(seg, codes, method) for seg, codes in labels.items()], _hash(codebook))


def add_tasks(
    store: Store,
    project_id: int,
    streams: dict[str, tuple[str, float | None]],
    version: str | None = None,
    url: str = SERVER,
    first_task: int = 1,
) -> dict[str, int]:
    """Label Studio tasks of a project as `push` records them: segment id -> (stream, inclusion probability);
    returns segment id -> task id (numbered from `first_task`)."""
    ids = {seg: first_task + i for i, seg in enumerate(streams)}
    with store.transaction():
        record_tasks(store, url, project_id, [(tid, seg, version) for seg, tid in ids.items()])
        set_task_streams(
            store, url, project_id, [(ids[seg], stream, p, f"{ids[seg]:08d}") for seg, (stream, p) in streams.items()]
        )
    return ids
