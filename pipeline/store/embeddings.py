"""The embedding cache: a frozen encoder's vector for a text, so that a retrain encodes only the texts it has not
seen (pipeline/classifier/embedding_cache.py decides what is cached and how it is keyed).

One row per (encoder, text hash): `encoder` is a key made from the encoder's weights hash, normalisation,
max_length and device kind; `text_hash` the SHA-256 of the text; `vector` float32 bytes. It is derived data:
the workspace's labels never depend on it. It is bounded: after a write, rows beyond `classifier.embedding_cache_rows`
are evicted, least recently used first (`evict_least_used`; the number evicted is reported in the training record),
and `clear_embeddings` empties it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from pipeline.store.db import Store, now


def encoder_key(weights: str, normalize: bool, max_length: int, device: str) -> str:
    """The cache key of an encoder: its weights' SHA-256, normalisation, max_length and device kind (a GPU's mixed
    precision gives other vectors)."""
    kind = "cuda" if str(device).startswith("cuda") else str(device)
    spec = {"weights": weights, "normalize": bool(normalize), "max_length": int(max_length), "device": kind}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cached_vectors(store: Store, encoder: str, text_hashes: Iterable[str]) -> dict[str, bytes]:
    """{text hash: vector bytes} for the hashes cached under `encoder`."""
    rows = store.conn.execute(
        "SELECT text_hash, vector FROM embeddings WHERE encoder = ? AND text_hash IN (SELECT value FROM json_each(?))",
        (encoder, json.dumps(list(text_hashes))),
    )
    return {r[0]: r[1] for r in rows}


def save_vectors(store: Store, encoder: str, vectors: Iterable[tuple[str, bytes]]) -> None:
    """Insert or replace (text hash, vector bytes) pairs (caller holds the transaction)."""
    stamp = now()
    store.conn.executemany(
        "INSERT OR REPLACE INTO embeddings(encoder, text_hash, vector, used_at) VALUES(?, ?, ?, ?)",
        ((encoder, h, v, stamp) for h, v in vectors),
    )


def touch_vectors(store: Store, encoder: str, text_hashes: Iterable[str]) -> None:
    """Mark cached vectors as used now, so eviction keeps them longest (caller holds the transaction)."""
    store.conn.execute(
        "UPDATE embeddings SET used_at = ? WHERE encoder = ? AND text_hash IN (SELECT value FROM json_each(?))",
        (now(), encoder, json.dumps(list(text_hashes))),
    )


def count_embeddings(store: Store, encoder: str | None = None) -> int:
    if encoder is None:
        return int(store.conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
    return int(store.conn.execute("SELECT COUNT(*) FROM embeddings WHERE encoder = ?", (encoder,)).fetchone()[0])


def evict_least_used(store: Store, keep: int) -> int:
    """Delete the least recently used rows beyond `keep`; returns how many (caller holds the transaction)."""
    extra = count_embeddings(store) - keep
    if extra <= 0:
        return 0
    store.conn.execute(
        "DELETE FROM embeddings WHERE rowid IN (SELECT rowid FROM embeddings ORDER BY used_at, rowid LIMIT ?)",
        (extra,),
    )
    return extra


def clear_embeddings(store: Store, encoder: str | None = None) -> int:
    """Delete every cached vector (or one encoder's); returns how many (caller holds the transaction)."""
    if encoder is None:
        return store.conn.execute("DELETE FROM embeddings").rowcount
    return store.conn.execute("DELETE FROM embeddings WHERE encoder = ?", (encoder,)).rowcount
