"""Speaker and document metadata (role, site, interview wave, ...) from a file: `culturecode meta set --file F`.

The file is CSV/TSV (a header row) or JSONL (one object a line), each row keyed by `speaker` (the speaker as
stored: the pseudonym when ingest pseudonymised) or by `document` (the document id), the other columns being
fields. Every problem is one line naming the file and line: an unknown speaker or document, a field whose name
clashes with a built-in column, an empty value. Nothing is written unless the whole file is good; setting a field
again replaces its value, without a re-ingest (pipeline/store/fields.py).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import CultureCodeError
from pipeline.ingest.text import read_lines
from pipeline.jsontext import json_objects
from pipeline.store.db import Store
from pipeline.store.fields import (
    Field,
    delete_fields,
    fields_by_key,
    known_documents,
    known_speakers,
    merged,
    segment_keys,
    set_fields,
)

KEYS = ("speaker", "document")
# names every output already uses for its own columns (segments, export, findings): a field may not take them
BUILTIN = frozenset(
    {
        "id", "segment", "segment_id", "text", "document_id", "position", "start_time", "end_time", "metadata",
        "fields", "line", "part", "codes", "gold_codes", "gold_code_names", "labels", "gold_method", "gold_votes",
        "annotations", "n_annotators", "agreement", "exact_agreement", "prelabel_version", "split", "stream",
        "inclusion_probability", "model", "human", "group", "annotator",
    }
)  # fmt: skip


@dataclass
class MetaReport:
    file: str
    speakers: int = 0  # speakers given fields
    documents: int = 0
    fields: list[str] = field(default_factory=list)  # the field names set
    written: int = 0


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV/TSV or JSONL metadata file (UTF-8)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl"):
        raise CultureCodeError(f"{path}: a metadata file is .csv, .tsv or .jsonl")
    lines = [line for _, line in read_lines(path, "metadata file", keep_ends=True)]
    if suffix == ".jsonl":
        return json_objects(enumerate(lines, 1), path)
    reader = csv.DictReader(lines, delimiter="\t" if suffix == ".tsv" else ",")
    try:
        rows = [(reader.line_num, dict(row)) for row in reader]
    except csv.Error as exc:
        raise CultureCodeError(f"{path}:{reader.line_num}: broken CSV ({exc})") from None
    if reader.fieldnames is None or not any(k in reader.fieldnames for k in KEYS):
        raise CultureCodeError(f"{path}:1: the header names no 'speaker' or 'document' column")
    return rows


def parse_fields(path: Path, rows: list[tuple[int, dict[str, Any]]], store: Store) -> list[Field]:
    """The fields of the rows, each checked; the first problem raises, naming file and line."""
    speakers, documents = known_speakers(store), known_documents(store)
    out: list[Field] = []
    for number, row in rows:
        where = f"{path}:{number}"
        keys = [k for k in KEYS if row.get(k) not in (None, "")]
        if len(keys) != 1:
            raise CultureCodeError(f"{where}: each row names exactly one of 'speaker' or 'document'")
        kind = keys[0]
        key = str(row[kind]).strip()
        if kind == "speaker" and key not in speakers:
            raise CultureCodeError(f"{where}: unknown speaker '{key}' (speakers as `culturecode segments` shows them)")
        if kind == "document" and key not in documents:
            raise CultureCodeError(
                f"{where}: unknown document '{key}' (documents as `culturecode segments` shows them)"
            )
        for name, value in row.items():
            if name in KEYS or (name is None and value in (None, [], "")):
                continue
            if name is None:
                raise CultureCodeError(f"{where}: more values than columns in the header")
            name = str(name).strip()
            if not name:
                raise CultureCodeError(f"{where}: a column has no name")
            if name in BUILTIN:
                raise CultureCodeError(f"{where}: field '{name}' clashes with a built-in column; rename it")
            if value is None or (isinstance(value, str) and not value.strip()):
                raise CultureCodeError(f"{where}: empty value for field '{name}' of {kind} '{key}'")
            if isinstance(value, (dict, list)):
                raise CultureCodeError(f"{where}: field '{name}' must be a single value, not {type(value).__name__}")
            out.append(Field(kind, key, name, str(value).strip(), path.name))
    return out


def set_metadata(store: Store, path: str | Path, *, drop: list[str] | None = None) -> MetaReport:
    """Check the file whole, then set its fields in one transaction (and drop the fields named in `drop`)."""
    path = Path(path)
    fields = parse_fields(path, read_rows(path), store)
    with store.transaction():
        if drop:
            delete_fields(store, drop)
        written = set_fields(store, fields)
    return MetaReport(
        file=str(path),
        speakers=len({f.key for f in fields if f.kind == "speaker"}),
        documents=len({f.key for f in fields if f.kind == "document"}),
        fields=sorted({f.name for f in fields}),
        written=written,
    )


def segment_fields(store: Store) -> dict[str, dict[str, str]]:
    """{segment id: its fields} for every active segment (header fields whose names clash with built-ins left
    out)."""
    documents, speakers = fields_by_key(store)
    out = {}
    for seg, doc, speaker in segment_keys(store):
        values = merged(documents.get(doc), speakers.get(speaker) if speaker else None)
        out[seg] = {k: v for k, v in values.items() if k not in BUILTIN and k not in KEYS}
    return out


def field_names(fields: dict[str, dict[str, str]]) -> list[str]:
    """Every field name some segment has, sorted."""
    return sorted({name for values in fields.values() for name in values})
