"""Each code's codebook-text vector under the frozen encoder: what the `head` method's codebook features compare a
segment with, and what the active-learning strategies `typical` and `anchor` start from.

numpy only at import (torch loads only when the texts must be encoded), so that `culturecode next` can rebuild the
vectors from the workspace's embedding cache without loading the encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.config import ClassifierSettings, Codebook

# texts (and an optional progress bar) -> their frozen-encoder embeddings
Embedder = Callable[[list[str], Any], np.ndarray]


def codebook_texts(codebook: Codebook) -> list[list[str]]:
    """Per code, the texts that describe it: name and definition, include rules, examples, hint."""
    return [
        [f"{code.name}. {code.definition}", *code.include, *code.examples, *([code.hint] if code.hint else [])]
        for code in codebook.codes
    ]


def code_vectors(
    model: Any,
    tokenizer,
    codebook: Codebook,
    settings: ClassifierSettings,
    embed_texts: Embedder | None = None,
) -> np.ndarray:
    """One unit vector per code: the mean of its codebook texts' unit-length embeddings. `embed_texts`, when given,
    replaces encoding the texts with `model` (e.g. reads the embedding cache; `model` and `tokenizer` may be None)."""
    groups = codebook_texts(codebook)
    flat = [t for group in groups for t in group]
    if embed_texts is not None:
        x = embed_texts(flat, None)
    else:
        from pipeline.classifier.encoder import embed

        x = embed(model, tokenizer, flat, settings.batch_size * 2, settings.max_length)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    vectors, start = [], 0
    for group in groups:
        mean = x[start : start + len(group)].mean(0)
        vectors.append(mean / (np.linalg.norm(mean) + 1e-12))
        start += len(group)
    return np.stack(vectors).astype(np.float64)
