"""Pre-labelling speed: naive transformers.pipeline vs culturecode torch batched vs ONNX int8.

    .venv/bin/python benchmarks/bench_prelabel.py            # 5,000 segments
    .venv/bin/python benchmarks/bench_prelabel.py --quick    # 1,000 segments

Segments are drawn from the example gold set (examples/gold/gold.jsonl), so each run also
reports the macro F1 of every path against those labels (the model is trained on the gold set
with the fast `head` method, so absolute F1 is optimistic; the differences between paths are
what matters). Each path's time includes loading its model, as a user's run would.
Target: (c) >= 5x (a) with <= 1 point macro-F1 loss.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.classifier import load_model, prelabel, train
from pipeline.classifier.metrics import code_metrics
from pipeline.config import load_settings
from pipeline.store import Document, Segment, Store
from pipeline.store.predictions import delete_predictions, predictions_of

GOLD = ROOT / "examples" / "gold" / "gold.jsonl"


def sample(n: int) -> list[dict]:
    rows = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [rows[i % len(rows)] for i in range(n)]


def fill(store: Store, rows: list[dict]) -> list[str]:
    ids = []
    with store.transaction():
        for start in range(0, len(rows), 500):
            doc = f"bench{start // 500:04d}"
            segs = [Segment(f"{doc}-{i}", doc, i, r["text"]) for i, r in enumerate(rows[start : start + 500])]
            store.put_document(Document(doc, f"{doc}.txt", "txt", doc), segs)
            ids += [s.id for s in segs]
    return ids


def naive(
    version_dir: Path, texts: list[str], head_w: np.ndarray, head_b: np.ndarray, normalize: bool
) -> tuple[np.ndarray, float]:
    """(a) a feature-extraction pipeline called one segment at a time, then the same head (on unit vectors when the
    model normalises: its codebook features are folded into the head's weights)."""
    from transformers import pipeline

    started = time.perf_counter()  # like (b) and (c), the time includes loading the model
    pipe = pipeline("feature-extraction", model=str(version_dir), tokenizer=str(version_dir), device="cpu")
    probs = np.zeros((len(texts), len(head_b)), dtype=np.float32)
    for i, text in enumerate(texts):
        tokens = np.asarray(pipe(text, truncation=True, max_length=128)[0])
        pooled = tokens.mean(0)
        if normalize:
            pooled = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        probs[i] = 1 / (1 + np.exp(-(head_w @ pooled + head_b)))
    return probs, time.perf_counter() - started


def from_store(store: Store, ids: list[str], version: str, codes: list[str]) -> np.ndarray:
    got = predictions_of(store, version)
    index = {c: j for j, c in enumerate(codes)}
    pred = np.zeros((len(ids), len(codes)), dtype=int)
    for row, seg in enumerate(ids):
        for code in got[seg].codes:
            pred[row, index[code]] = 1
    return pred


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,000 segments instead of 5,000")
    parser.add_argument("-n", type=int, default=None)
    args = parser.parse_args()
    n = args.n or (1000 if args.quick else 5000)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(overrides={"workspace": tmp, "classifier.method": "head"})
        book = settings.load_codebook()
        store = Store(tmp)
        store.record_codebook(book)
        report = train(store, settings, book, gold=GOLD, show_progress=False)
        rows = sample(n)
        ids = fill(store, rows)
        truth = np.zeros((n, len(book.code_ids)), dtype=int)
        for i, r in enumerate(rows):
            for c in r["codes"]:
                truth[i, book.code_ids.index(c)] = 1
        loaded = load_model(store, book)
        w, b = loaded.model.head.weight.detach().numpy(), loaded.model.head.bias.detach().numpy()
        probs_a, secs_a = naive(loaded.path, [r["text"] for r in rows], w, b, loaded.model.normalize)
        # (b) and (c) encode every text as a user's first pre-labelling does: no embedding cache
        cfg = settings.classifier.model_copy(update={"embedding_cache_rows": 0})
        settings = settings.model_copy(update={"classifier": cfg})
        f1 = {"a": code_metrics(truth, probs_a >= loaded.thresholds, book.code_ids)["macro_f1"]}
        secs = {"a": secs_a}
        for key, backend in (("b", "torch"), ("c", "onnx")):
            delete_predictions(store)
            started = time.perf_counter()
            prelabel(store, settings, book, runtime=backend, show_progress=False)
            secs[key] = time.perf_counter() - started
            f1[key] = code_metrics(truth, from_store(store, ids, report.version, book.code_ids), book.code_ids)[
                "macro_f1"
            ]
        store.close()
    names = {
        "a": "naive transformers.pipeline, one at a time",
        "b": "culturecode torch, batched by length",
        "c": "culturecode ONNX int8, batched by length",
    }
    print(f"pre-labelling {n} example-like segments (15 codes, encoder {settings.classifier.base_model})")
    for key in "abc":
        print(
            f"  ({key}) {names[key]:44s} {n / secs[key]:7.1f} seg/s   {secs[key]:6.1f} s   "
            f"macro F1 {f1[key]:.3f}   speed-up vs (a) {secs['a'] / secs[key]:.2f}x"
        )
    print(
        f"ratio (c)/(a): {secs['a'] / secs['c']:.2f}x (target >= 5x); macro-F1 loss (a)->(c): "
        f"{100 * (f1['a'] - f1['c']):+.1f} points (target <= 1)"
    )


if __name__ == "__main__":
    main()
