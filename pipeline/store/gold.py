"""Gold labels: one adjudicated code set per segment, rewritten as a whole by each adjudication.

Gold of a superseded segment (see `pipeline.store.segments`) is kept out of every reading and out
of the rewrite; a re-ingest may carry a copy over to the edited segment (`carried_from`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.store.db import ACTIVE, Store, dumps, now, tally_codes

# "not on a superseded segment": the few superseded ids come from a partial index, where "IN the active ones"
# would list every segment first (seconds at a million segments, for `status`); equal, gold rows referencing
# segments (foreign key)
_ON_ACTIVE = "segment_id NOT IN (SELECT id FROM segments WHERE superseded_at IS NOT NULL)"


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
    """Replace the gold of the active segments (caller holds the transaction); superseded segments
    keep theirs. Returns the rows written."""
    stamp = now()
    rows = [(g.segment_id, dumps(g.codes), g.method, dumps(g.votes), codebook_hash, stamp) for g in labels]
    store.conn.execute(f"DELETE FROM gold WHERE {_ON_ACTIVE}")
    store.conn.executemany(
        "INSERT INTO gold(segment_id, codes, method, votes, codebook_hash, created_at) VALUES(?, ?, ?, ?, ?, ?)", rows
    )
    return len(rows)


def gold_segments(store: Store) -> list[GoldSegment]:
    """Every gold row of an active segment with its segment, in document order."""
    rows = store.conn.execute(
        "SELECT g.segment_id, g.codes, g.method, g.votes, g.codebook_hash, s.text, s.document_id, s.position, "
        f"s.speaker FROM gold g JOIN segments s ON s.id = g.segment_id WHERE s.{ACTIVE} "
        "ORDER BY s.document_id, s.position"
    )
    return [GoldSegment(r[0], json.loads(r[1]), *r[2:]) for r in rows]


def gold_documents(store: Store) -> list[str]:
    """The documents that have gold segments, sorted."""
    return [
        r[0]
        for r in store.conn.execute(
            f"SELECT DISTINCT s.document_id FROM gold g JOIN segments s ON s.id = g.segment_id WHERE s.{ACTIVE} "
            "ORDER BY 1"
        )
    ]


def count_gold(store: Store) -> int:
    """Gold rows of active segments."""
    return store.conn.execute(f"SELECT COUNT(*) FROM gold WHERE {_ON_ACTIVE}").fetchone()[0]


def gold_per_code(store: Store) -> dict[str, int]:
    return tally_codes(store, "gold", f"t.{_ON_ACTIVE}")


def carry_gold(store: Store, old_segment: str, new_segment: str) -> int:
    """Copy `old_segment`'s gold onto `new_segment` (marked as carried from it) unless `new_segment`
    has gold of its own; a copy made before is refreshed. Returns 1 when `old_segment` has gold."""
    store.conn.execute(
        "INSERT INTO gold(segment_id, codes, method, votes, codebook_hash, created_at, carried_from) "
        "SELECT ?, codes, method, votes, codebook_hash, created_at, segment_id FROM gold WHERE segment_id = ? "
        "ON CONFLICT(segment_id) DO UPDATE SET codes = excluded.codes, method = excluded.method, "
        "votes = excluded.votes, codebook_hash = excluded.codebook_hash, created_at = excluded.created_at, "
        "carried_from = excluded.carried_from WHERE gold.carried_from IS NOT NULL",
        (new_segment, old_segment),
    )
    return store.conn.execute("SELECT COUNT(*) FROM gold WHERE segment_id = ?", (old_segment,)).fetchone()[0]


def gold_and_predictions(store: Store, model_version: str) -> list[tuple[list[str], list[str]]]:
    """(gold codes, `model_version`'s codes) of every gold segment that model labelled."""
    rows = store.conn.execute(
        "SELECT g.codes, p.codes FROM gold g JOIN predictions p ON p.segment_id = g.segment_id "
        f"WHERE p.model_version = ? AND g.{_ON_ACTIVE}",
        (model_version,),
    )
    return [(json.loads(gold), json.loads(predicted)) for gold, predicted in rows]
