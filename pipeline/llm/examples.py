"""Few-shot examples: the gold segments most similar to the segment being labelled, by cosine
similarity of the packaged all-MiniLM-L6-v2 embeddings, never from the segment's own document."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from pipeline.config import Codebook
from pipeline.llm.prompts import Example
from pipeline.store import Segment, Store
from pipeline.store.gold import gold_segments


def gold_examples(store: Store, codebook: Codebook, path: str | Path | None = None) -> list[Example]:
    """Labelled examples from a gold JSONL file (text, codes, document) or the workspace gold table."""
    if path is not None:
        from pipeline.classifier.data import read_gold

        return [Example(e.text, e.codes, e.document) for e in read_gold(path, codebook)]
    return [Example(g.text, codebook.check_codes(g.codes, "gold table"), g.document_id) for g in gold_segments(store)]


def _embed(texts: list[str]) -> np.ndarray:
    import torch

    from pipeline.classifier.encoder import load_encoder, load_tokenizer, mean_pool, resolve_base_model

    path = resolve_base_model("minilm")
    tokenizer, model = load_tokenizer(path), load_encoder(path).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            enc = tokenizer(
                texts[start : start + 32], padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            pooled = mean_pool(model(**enc).last_hidden_state, enc["attention_mask"])
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


def pick_examples(segments: list[Segment], pool: list[Example], k: int) -> dict[str, list[Example]]:
    """Per segment id, the k most similar examples from other documents (with their answers)."""
    if k <= 0 or not pool or not segments:
        return {s.id: [] for s in segments}
    vectors = _embed([e.text for e in pool] + [s.text for s in segments])
    pool_vecs, seg_vecs = vectors[: len(pool)], vectors[len(pool) :]
    docs = np.array([e.document for e in pool])
    chosen: dict[str, list[Example]] = {}
    for seg, vec in zip(segments, seg_vecs, strict=True):
        sims = pool_vecs @ vec
        sims[(docs == seg.document_id) | np.array([e.text == seg.text for e in pool])] = -np.inf
        order = [i for i in np.argsort(-sims)[:k] if np.isfinite(sims[i])]
        chosen[seg.id] = [_with_answer(pool[i]) for i in order]
    return chosen


def _opening_words(text: str, limit: int = 12) -> str:
    """The example's first sentence, at most `limit` words: a real quote for its answer's evidence."""
    first = re.split(r"(?<=[.!?])\s+", text.strip())[0]
    return " ".join(first.split()[:limit])


def _with_answer(example: Example) -> Example:
    answer = {
        "codes": example.codes,
        "confidence": {c: 0.9 for c in example.codes},
        "evidence": {c: _opening_words(example.text) for c in example.codes},
        "rationale": "labelled by a human coder",
    }
    return Example(example.text, example.codes, example.document, json.dumps(answer))
