"""Frozen-encoder embeddings cached in the workspace, so that a retrain with the `head` method (and pre-labelling
with such a model on the torch runtime) encodes only the texts it has not seen before.

A vector is reused only under the same key: the SHA-256 of the encoder's weights, normalisation, max_length and
the device kind (a GPU's mixed precision gives other vectors), and the text's SHA-256. Rows are stored through
pipeline/store/embeddings.py and bounded by `classifier.embedding_cache_rows` (least recently used evicted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.store import Store
from pipeline.store.embeddings import (
    cached_vectors,
    encoder_key,
    evict_least_used,
    save_vectors,
    text_sha256,
    touch_vectors,
)

if TYPE_CHECKING:
    from torch import nn

Encode = Callable[[list[str]], np.ndarray]


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's parameters and buffers (names, dtypes, shapes and bytes), wherever they live."""
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted([*module.named_parameters(), *module.named_buffers()], key=lambda kv: kv[0]):
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class EmbeddingCache:
    """Embeddings of texts under one encoder key: cached ones are read, the rest encoded and stored."""

    store: Store
    key: str
    max_rows: int
    hits: int = 0
    encoded: int = 0
    evicted: int = 0
    _dim: int | None = field(default=None, repr=False)

    def embed(self, texts: list[str], encode: Encode) -> np.ndarray:
        """One float32 row per text; `encode` is called once, with the distinct texts not cached (if any)."""
        hashes = [text_sha256(t) for t in texts]
        first: dict[str, int] = {}
        for i, h in enumerate(hashes):
            first.setdefault(h, i)
        found = {h: np.frombuffer(v, dtype=np.float32) for h, v in cached_vectors(self.store, self.key, first).items()}
        missing = [h for h in first if h not in found]
        self.hits += len(first) - len(missing)
        if missing:
            vectors = np.asarray(encode([texts[first[h]] for h in missing]), dtype=np.float32)
            found.update(zip(missing, vectors, strict=True))
            self.encoded += len(missing)
        self._write(missing, found, [h for h in first if h not in set(missing)])
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        out = np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)
        self._dim = out.shape[1]
        return out

    def _write(self, new: list[str], vectors: dict[str, np.ndarray], reused: list[str]) -> None:
        if not new and not reused:
            return
        with self.store.transaction():
            if reused:
                touch_vectors(self.store, self.key, reused)
            if new:
                save_vectors(self.store, self.key, ((h, vectors[h].tobytes()) for h in new))
                self.evicted += evict_least_used(self.store, self.max_rows)

    def stats(self) -> dict[str, Any]:
        return {"key": self.key, "hits": self.hits, "encoded": self.encoded, "evicted": self.evicted}


def cache_for(store: Store | None, weights: str | None, normalize: bool, max_length: int, device: str, rows: int):
    """An EmbeddingCache, or None when there is no store, no weights hash or the cache is off (rows = 0)."""
    if store is None or not weights or rows <= 0:
        return None
    return EmbeddingCache(store, encoder_key(weights, normalize, max_length, device), rows)
