"""LLM benchmark: segments/s of the local backend, the cache-hit rerun (the baseline) and their
ratio; with --quality, per-code F1 and kappa on the example gold set of: the LLM zero-shot, the
LLM few-shot, the classifier distilled from LLM labels only, and the classifier trained on gold.

    .venv/bin/python benchmarks/bench_llm.py              # speed, 30 segments
    .venv/bin/python benchmarks/bench_llm.py --quality    # + the quality table (about an hour on 2 cores)
    .venv/bin/python benchmarks/bench_llm.py --quick      # speed on 6 segments

Held-out documents are split off by name; few-shot examples and the gold classifier only see the
other documents. Uses one torch thread (the machine is shared) unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from pipeline.classifier import evaluate, train
from pipeline.classifier.metrics import code_metrics
from pipeline.config import PROJECT_ROOT, load_codebook, load_settings
from pipeline.flows import distill
from pipeline.llm import prelabel_llm
from pipeline.llm.backends.local import LocalBackend
from pipeline.store import Document, Segment, Store
from pipeline.store.models import promote_model
from pipeline.store.predictions import delete_predictions, predictions_of

GOLD = PROJECT_ROOT / "examples" / "gold" / "gold.jsonl"


def gold_workspace(path: Path, settings, book) -> tuple[Store, dict[str, list[dict]]]:
    docs: dict[str, list[dict]] = defaultdict(list)
    for line in GOLD.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            docs[row["document"]].append(row)
    store = Store(path)
    with store.transaction():
        store.record_codebook(book)
        for doc, rows in sorted(docs.items()):
            segs = [Segment(f"{doc}-{i:03d}", doc, i, r["text"], r.get("speaker")) for i, r in enumerate(rows)]
            store.put_document(Document(doc, f"{doc}.jsonl", "jsonl", doc), segs)
    return store, dict(sorted(docs.items()))


def write_jsonl(path: Path, docs: dict[str, list[dict]], names: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        for name in names:
            for i, r in enumerate(docs[name]):
                out.write(
                    json.dumps({"id": f"{name}-{i:03d}", "text": r["text"], "codes": r["codes"], "document": name})
                    + "\n"
                )
    return path


def speed(store: Store, settings, book, backend, n: int) -> dict:
    ids = [s.id for s in store.segments(limit=n)]
    started = time.monotonic()
    cold = prelabel_llm(store, settings, book, backend=backend, segment_ids=ids, show_progress=False)
    cold_s = time.monotonic() - started
    started = time.monotonic()
    warm = prelabel_llm(store, settings, book, backend=backend, segment_ids=ids, show_progress=False)
    warm_s = time.monotonic() - started
    assert warm.calls == 0
    return {
        "segments": n,
        "labelled": cold.labelled,
        "seconds": round(cold_s, 1),
        "segments_per_s": round(n / cold_s, 3),
        "rerun_seconds": round(warm_s, 3),
        "rerun_segments_per_s": round(n / warm_s, 1),
        "rerun_speedup": round(cold_s / warm_s, 1),
    }


def llm_metrics(store: Store, book, version: str, ids: list[str], docs_rows: dict[str, dict]) -> dict:
    index = {c: i for i, c in enumerate(book.code_ids)}
    truth, pred = np.zeros((len(ids), len(index)), int), np.zeros((len(ids), len(index)), int)
    predicted = predictions_of(store, version)
    for r, sid in enumerate(ids):
        for c in docs_rows[sid]["codes"]:
            truth[r, index[c]] = 1
        row = predicted.get(sid)
        for c in row.codes if row else []:  # a failure counts as 'no code' here, and is reported
            pred[r, index[c]] = 1
    return code_metrics(truth, pred, book.code_ids)


def quality(store, settings, book, backend, docs, tmp: Path, n_test: int, n_silver: int) -> dict:
    names = list(docs)
    test = names[:: max(1, len(names) // n_test)][:n_test]
    rest = [n for n in names if n not in test]
    silver = rest[:: max(1, len(rest) // n_silver)][:n_silver]
    test_file, pool_file = write_jsonl(tmp / "test.jsonl", docs, test), write_jsonl(tmp / "pool.jsonl", docs, rest)
    rows = {f"{d}-{i:03d}": r for d in docs for i, r in enumerate(docs[d])}
    test_ids = [f"{d}-{i:03d}" for d in test for i in range(len(docs[d]))]
    silver_ids = [f"{d}-{i:03d}" for d in silver for i in range(len(docs[d]))]
    results, failures = {}, {}
    zero = prelabel_llm(store, settings, book, backend=backend, segment_ids=test_ids + silver_ids)
    results["LLM zero-shot"] = llm_metrics(store, book, zero.model_version, test_ids, rows)
    failures["zero-shot"] = len(zero.failures)
    few_settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"prompt": "few_shot"})})
    few = prelabel_llm(store, few_settings, book, backend=backend, segment_ids=test_ids, examples_path=pool_file)
    results["LLM few-shot"] = llm_metrics(store, book, few.model_version, test_ids, rows)
    failures["few-shot"] = len(few.failures)
    # distil from the zero-shot labels of the silver documents only
    with store.transaction():
        delete_predictions(store, zero.model_version, test_ids)
        promote_model(store, zero.model_version, "llm")
    distilled = distill(store, settings, book, zero.model_version, show_progress=False)
    results["classifier distilled from LLM"] = evaluate(
        store, settings, book, distilled.train.version, gold_file=test_file, include_training=True
    ).as_dict()
    gold_model = train(store, settings, book, gold=pool_file, show_progress=False)
    results["classifier trained on gold"] = evaluate(
        store, settings, book, gold_model.version, gold_file=test_file, include_training=True
    ).as_dict()
    return {
        "test_documents": test,
        "test_segments": len(test_ids),
        "silver_documents": silver,
        "silver_segments": len(silver_ids),
        "silver_kept": distilled.segments,
        "gold_train_segments": sum(len(docs[d]) for d in rest),
        "llm_failures": failures,
        "results": results,
    }


def table(book, quality_report: dict) -> str:
    systems = list(quality_report["results"])
    head = "| code | " + " | ".join(f"{s} F1 / κ" for s in systems) + " |"
    lines = [head, "|" + "---|" * (len(systems) + 1)]
    for code in book.code_ids:
        cells = []
        for s in systems:
            m = quality_report["results"][s]["per_code"][code]
            kappa = "–" if m["cohen_kappa"] is None else f"{m['cohen_kappa']:.2f}"
            cells.append(f"{m['f1']:.2f} / {kappa}")
        lines.append(f"| {code} | " + " | ".join(cells) + " |")
    for avg in ("micro_f1", "macro_f1"):
        lines.append(
            f"| **{avg.replace('_', ' ')}** | "
            + " | ".join(f"{quality_report['results'][s][avg]:.2f}" for s in systems)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 segments for the speed figure")
    parser.add_argument("--segments", type=int, default=30)
    parser.add_argument("--quality", action="store_true", help="also the quality table on the gold set")
    parser.add_argument("--test-docs", type=int, default=4)
    parser.add_argument("--silver-docs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--workspace",
        type=Path,
        help="keep the workspace (and its LLM cache) here: a rerun after an interruption resumes from the cache",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        ws = args.workspace or tmp / "ws"
        settings = load_settings(None, {"workspace": str(ws), "classifier.method": "head"})
        book = load_codebook(settings.codebook_path())
        store, docs = gold_workspace(ws, settings, book)
        started = time.monotonic()
        backend = LocalBackend(settings.llm.model, settings.llm.model_dir, args.threads, settings.llm.quantize)
        load_s = round(time.monotonic() - started, 1)
        report: dict = {
            "model": backend.model_id,
            "threads": args.threads,
            "load_seconds": load_s,
            "speed": speed(store, settings, book, backend, 6 if args.quick else args.segments),
        }
        s = report["speed"]
        print(
            f"local LLM ({backend.model_id}, {args.threads} thread(s), loaded in {load_s} s): "
            f"{s['segments_per_s']} segments/s ({s['seconds']} s for {s['segments']}, first call includes "
            f"the system prompt); cache-hit rerun (baseline) {s['rerun_seconds']} s = "
            f"{s['rerun_segments_per_s']} segments/s; ratio rerun/labelling speed {s['rerun_speedup']}x"
        )
        if args.quality:
            report["quality"] = quality(store, settings, book, backend, docs, tmp, args.test_docs, args.silver_docs)
            q = report["quality"]
            print(
                f"\nquality on {q['test_segments']} held-out gold segments ({', '.join(q['test_documents'])}); "
                f"distilled from {q['silver_kept']} of {q['silver_segments']} LLM-labelled segments; gold "
                f"classifier trained on {q['gold_train_segments']} segments; LLM failures {q['llm_failures']}\n"
            )
            print(table(book, q))
        store.close()
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
