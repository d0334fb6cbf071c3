"""Segments labelled elsewhere: rows of text, document, speaker and codes (the examples/gold format) become
documents, segments and one annotator's annotations, without Label Studio.

    report = ingest_labelled(store, read_labelled("examples/gold/gold.jsonl"), codebook=book, annotator="alice")

A row is one segment (never split); its ID is the ingest's stable hash of document, speaker and text, so a
second annotator's rows for the same turns land on the same segments. A document new to the workspace is
added whole; rows of a document already there must name segments it has (nothing is replaced). The
annotations are stored as pulled ones are, under the server `import://labelled` (no project), so agreement,
adjudication and export count them like annotations made in Label Studio. Importing the same rows again
replaces them (the same annotator, the same segment): reruns are idempotent.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Codebook
from pipeline.errors import CultureCodeError, shorten
from pipeline.ingest.segmenter import segment_id
from pipeline.jsontext import json_objects
from pipeline.store import Document, Segment, Store, dumps, now
from pipeline.store.annotations import upsert_annotations
from pipeline.store.codebooks import adopt_codebook

IMPORT_URL = "import://labelled"  # the `server_url` of imported annotations (no Label Studio behind it)


@dataclass(frozen=True)
class LabelledRow:
    """One labelled turn: its text, document, speaker and the codes the annotator chose."""

    text: str
    document: str
    codes: list[str]
    speaker: str | None = None


@dataclass(frozen=True)
class LabelledImport:
    """What `ingest_labelled` did."""

    annotator: str
    documents_added: int
    segments_added: int
    annotations: int


def _row(raw: Mapping[str, Any], where: str) -> LabelledRow:
    text, document, codes = raw.get("text"), raw.get("document"), raw.get("codes")
    if not isinstance(text, str) or not text.strip():
        raise CultureCodeError(f"{where}: needs a non-empty string 'text'")
    if not isinstance(document, str) or not document.strip():
        raise CultureCodeError(f"{where}: needs a string 'document' (the document the turn belongs to)")
    if codes is None or isinstance(codes, str) or not all(isinstance(c, str) for c in codes):
        raise CultureCodeError(f"{where}: 'codes' must be a list of code ids ([] for none)")
    speaker = raw.get("speaker")
    return LabelledRow(text.strip(), document.strip(), list(codes), str(speaker).strip() if speaker else None)


def read_labelled(path: str | Path) -> list[LabelledRow]:
    """The rows of a labelled JSONL file (one object per line with text, document, speaker, codes)."""
    path = Path(path)
    if not path.is_file():
        raise CultureCodeError(f"{path}: no such labelled file")
    lines = enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
    return [_row(raw, f"{path}:{number}") for number, raw in json_objects(lines, path)]


def labelled_rows(rows: Iterable[Mapping[str, Any] | LabelledRow]) -> list[LabelledRow]:
    """Mappings (e.g. a DataFrame's records) checked and turned into `LabelledRow`s."""
    return [r if isinstance(r, LabelledRow) else _row(r, f"row {i}") for i, r in enumerate(rows, 1)]


def _segments(document: str, rows: list[LabelledRow]) -> list[Segment]:
    seen: Counter[tuple[str | None, str]] = Counter()
    segments = []
    for position, row in enumerate(rows):
        key = (row.speaker, row.text)
        segments.append(
            Segment(segment_id(document, row.speaker, row.text, seen[key]), document, position, row.text, row.speaker)
        )
        seen[key] += 1
    return segments


def _place(store: Store, document: str, rows: list[LabelledRow], source: str) -> tuple[list[Segment], bool]:
    """The document's segments, added when the document is new; (segments, added)."""
    segments = _segments(document, rows)
    if store.document(document) is None:
        digest = hashlib.sha1(dumps([[r.speaker, r.text] for r in rows]).encode("utf-8")).hexdigest()
        store.put_document(Document(document, source, "labelled", digest), segments)
        return segments, True
    for seg in segments:
        if store.segment(seg.id) is None:
            raise CultureCodeError(
                f"document '{document}' is already in {store.workspace} without the turn "
                f"'{shorten(seg.text, 80)}' ({seg.speaker or 'no speaker'}); import labels for the turns it has"
            )
    return segments, False


def _annotation_id(annotator: str, segment: str) -> int:
    """A stable id per (annotator, segment): importing again replaces the annotation."""
    return int(hashlib.sha1(f"{annotator}\x1f{segment}".encode()).hexdigest()[:13], 16)


def ingest_labelled(
    store: Store,
    rows: Iterable[Mapping[str, Any] | LabelledRow],
    *,
    codebook: Codebook,
    annotator: str,
    source: str = "labelled rows",
) -> LabelledImport:
    """Add `rows` (one labelled turn each) as segments and `annotator`'s annotations, in one transaction."""
    annotator = annotator.strip()
    if not annotator:
        raise CultureCodeError("annotator: give the name of who made these labels")
    checked = labelled_rows(rows)
    if not checked:
        raise CultureCodeError(f"{source}: no labelled rows")
    by_document: dict[str, list[LabelledRow]] = {}
    for row in checked:
        by_document.setdefault(row.document, []).append(row)
    adopt_codebook(store, codebook)
    stamp = now()
    added = segments_added = 0
    with store.transaction(), store.run("ingest-labelled", {"source": source, "annotator": annotator}) as summary:
        for document, doc_rows in by_document.items():
            segments, new = _place(store, document, doc_rows, source)
            added, segments_added = added + new, segments_added + (len(segments) if new else 0)
            upsert_annotations(
                store,
                [
                    _annotation(seg, row, annotator, codebook, stamp)
                    for seg, row in zip(segments, doc_rows, strict=True)
                ],
            )
        summary.update(documents_added=added, segments_added=segments_added, annotations=len(checked))
    return LabelledImport(annotator, added, segments_added, len(checked))


def _annotation(seg: Segment, row: LabelledRow, annotator: str, codebook: Codebook, stamp: str) -> dict[str, Any]:
    aid = _annotation_id(annotator, seg.id)
    return {
        "server_url": IMPORT_URL,
        "project_id": 0,
        "annotation_id": aid,
        "task_id": aid,
        "segment_id": seg.id,
        "annotator": annotator,
        "codes": dumps(codebook.check_codes(row.codes, f"{row.document}, turn '{shorten(row.text, 60)}'")),
        "was_cancelled": 0,
        "deleted": 0,
        "lead_time": None,
        "prediction_version": None,
        "codebook_hash": codebook.content_hash,
        "created_at": stamp,
        "updated_at": stamp,
    }
