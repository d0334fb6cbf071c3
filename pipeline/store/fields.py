"""Metadata fields on speakers and documents (role, site, wave, ...): the named queries of `meta set` and of
every output that groups or shows segments by who speaks (`segments`, `export`, `findings`).

A segment's fields are, from weakest to strongest: its document's transcript header (`# site: ...`, kept by
ingest in documents.metadata), the fields set on its document, the fields set on its speaker. Fields set by
`meta set` live in their own table, so they change without a re-ingest and a re-ingest keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.store.db import ACTIVE, Store, now

KINDS = ("speaker", "document")


@dataclass(frozen=True)
class Field:
    kind: str  # "speaker" or "document"
    key: str  # the speaker (pseudonym) or the document id
    name: str
    value: str
    source: str  # the file it was set from, or "header"


def set_fields(store: Store, fields: Iterable[Field]) -> int:
    """Insert or replace fields (caller holds the transaction). Returns the number written."""
    stamp = now()
    rows = [(f.kind, f.key, f.name, f.value, f.source, stamp) for f in fields]
    store.conn.executemany(
        "INSERT INTO fields(kind, key, name, value, source, set_at) VALUES(?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(kind, key, name) DO UPDATE SET value = excluded.value, source = excluded.source, "
        "set_at = excluded.set_at",
        rows,
    )
    return len(rows)


def delete_fields(store: Store, names: Iterable[str]) -> int:
    """Drop the set fields called `names` from every speaker and document. Returns the number dropped."""
    return store.conn.execute(
        "DELETE FROM fields WHERE name IN (SELECT value FROM json_each(?))", (json.dumps(list(names)),)
    ).rowcount


def set_fields_list(store: Store) -> list[Field]:
    """Every field set by `meta set`, by kind, key and name."""
    rows = store.conn.execute("SELECT kind, key, name, value, source FROM fields ORDER BY kind, key, name")
    return [Field(*r) for r in rows]


def header_fields(store: Store) -> list[Field]:
    """The documents' transcript-header fields (`# site: A`), as ingest kept them."""
    rows = store.conn.execute("SELECT id, metadata FROM documents ORDER BY id")
    out = []
    for doc, meta in rows:
        for name, value in (json.loads(meta) or {}).items():
            if value not in (None, ""):
                out.append(Field("document", doc, str(name), str(value), "header"))
    return out


def known_speakers(store: Store) -> set[str]:
    """The speakers of active segments."""
    rows = store.conn.execute(f"SELECT DISTINCT speaker FROM segments WHERE {ACTIVE} AND speaker IS NOT NULL")
    return {r[0] for r in rows}


def known_documents(store: Store) -> set[str]:
    return {r[0] for r in store.conn.execute("SELECT id FROM documents")}


def segment_keys(store: Store) -> list[tuple[str, str, str | None]]:
    """(segment id, document id, speaker) of every active segment, in document order."""
    rows = store.conn.execute(
        f"SELECT id, document_id, speaker FROM segments WHERE {ACTIVE} ORDER BY document_id, position"
    )
    return [(r[0], r[1], r[2]) for r in rows]


def fields_by_key(store: Store) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """({document: {name: value}}, {speaker: {name: value}}): header fields under the documents' set ones."""
    documents: dict[str, dict[str, str]] = {}
    speakers: dict[str, dict[str, str]] = {}
    for f in [*header_fields(store), *set_fields_list(store)]:
        (documents if f.kind == "document" else speakers).setdefault(f.key, {})[f.name] = f.value
    return documents, speakers


def merged(document: dict[str, Any] | None, speaker: dict[str, Any] | None) -> dict[str, Any]:
    """A segment's fields: its document's, then its speaker's on top."""
    return {**(document or {}), **(speaker or {})}
