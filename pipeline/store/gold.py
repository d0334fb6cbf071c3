"""Gold labels: one adjudicated code set per segment, rewritten as a whole by each adjudication."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.store.db import Store, dumps, now, tally_codes


@dataclass
class GoldLabel:
    """A gold row as written: the codes, how they were decided, and the votes behind them."""

    segment_id: str
    codes: list[str]
    method: str
    votes: dict[str, Any] = field(default_factory=dict)


@dataclass
class GoldSegment:
    """A gold row read back with its segment; `votes` is the stored JSON text."""

    segment_id: str
    codes: list[str]
    method: str
    votes: str
    codebook_hash: str
    text: str
    document_id: str
    position: int
    speaker: str | None


def replace_gold(store: Store, labels: Iterable[GoldLabel], codebook_hash: str) -> int:
    """Replace the whole gold table (caller holds the transaction). Returns the rows written."""
    stamp = now()
    rows = [(g.segment_id, dumps(g.codes), g.method, dumps(g.votes), codebook_hash, stamp) for g in labels]
    store.conn.execute("DELETE FROM gold")
    store.conn.executemany(
        "INSERT INTO gold(segment_id, codes, method, votes, codebook_hash, created_at) VALUES(?, ?, ?, ?, ?, ?)", rows
    )
    return len(rows)


def gold_segments(store: Store) -> list[GoldSegment]:
    """Every gold row with its segment, in document order."""
    rows = store.conn.execute(
        "SELECT g.segment_id, g.codes, g.method, g.votes, g.codebook_hash, s.text, s.document_id, s.position, "
        "s.speaker FROM gold g JOIN segments s ON s.id = g.segment_id ORDER BY s.document_id, s.position"
    )
    return [GoldSegment(r[0], json.loads(r[1]), *r[2:]) for r in rows]


def gold_documents(store: Store) -> list[str]:
    """The documents that have gold segments, sorted."""
    return [
        r[0]
        for r in store.conn.execute(
            "SELECT DISTINCT s.document_id FROM gold g JOIN segments s ON s.id = g.segment_id ORDER BY 1"
        )
    ]


def count_gold(store: Store) -> int:
    return store.conn.execute("SELECT COUNT(*) FROM gold").fetchone()[0]


def gold_per_code(store: Store) -> dict[str, int]:
    return tally_codes(store, "gold")


def gold_and_predictions(store: Store, model_version: str) -> list[tuple[list[str], list[str]]]:
    """(gold codes, `model_version`'s codes) of every gold segment that model labelled."""
    rows = store.conn.execute(
        "SELECT g.codes, p.codes FROM gold g JOIN predictions p ON p.segment_id = g.segment_id "
        "WHERE p.model_version = ?",
        (model_version,),
    )
    return [(json.loads(gold), json.loads(predicted)) for gold, predicted in rows]
