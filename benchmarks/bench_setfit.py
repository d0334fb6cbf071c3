"""SetFit (contrastive few-shot fine-tuning) against the default frozen-encoder head, on the dev set.

    .venv/bin/pip install -e '.[setfit]'                        # setfit==1.2.0, for this benchmark only
    .venv/bin/python benchmarks/bench_setfit.py                  # MiniLM, 1 pair-iteration, 1 epoch (about 11 min)
    .venv/bin/python benchmarks/bench_setfit.py --encoder mpnet --iterations 2

Both models train on the example gold (examples/gold/gold.jsonl) and are scored on examples/dev/ (another
register, never trained on), in the same run, with pipeline.classifier.metrics.code_metrics (as bench_quality).
- head: the default method (L2-normalised embeddings + codebook features, C=0.01, balanced, per-code
  thresholds from 5-fold document-grouped CV), trained on all of the example gold;
- setfit: the packaged encoder (no hub download) fine-tuned contrastively on sentence pairs
  (`num_iterations` pairs per segment and per side), then a one-vs-rest logistic head (SetFit's default).
  Its body cannot be cross-validated in the time, so it trains on the gold minus a validation split held
  out by document (data.split_by_document, as bench_quality's finetune row); the per-code thresholds are
  tuned on that split (`val-thr`). The `thr 0.5` row is the same model at SetFit's own 0.5.
Train seconds: head = embedding the gold + fitting (with its CV); setfit = pair training + head fit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged encoder folders only: never the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_quality import Method, encode, fit_predict, summary  # noqa: E402

from pipeline.classifier.data import Example, label_matrix, read_gold, split_by_document  # noqa: E402
from pipeline.classifier.encoder import resolve_base_model  # noqa: E402
from pipeline.classifier.metrics import tune_thresholds  # noqa: E402
from pipeline.config import load_codebook, load_settings  # noqa: E402

GOLD = ROOT / "examples" / "gold" / "gold.jsonl"
DEV = ROOT / "examples" / "dev" / "dev.jsonl"
HEAD = Method("head norm+codebook C=0.01", normalize=True, codebook=True, c=0.01)


def require_setfit() -> None:
    try:
        import setfit  # noqa: F401
    except ImportError:
        # exit 0: `make bench` runs every benchmark and setfit is an optional extra
        print("bench_setfit skipped: setfit is not installed; .venv/bin/pip install -e '.[setfit]' (setfit==1.2.0)")
        sys.exit(0)


def head_row(encoder: str, gold: list[Example], dev: list[Example], codebook, cfg) -> dict:
    """The default head, measured in this run (embeddings from bench_quality's cache; their timing counted)."""
    enc = encode(encoder, [e.text for e in gold + dev], codebook, cfg)
    codes = codebook.code_ids
    started = time.perf_counter()
    pred = fit_predict(enc, HEAD, gold, dev, codes, cfg)
    seconds = enc.embed_seconds_per_text * len(gold) + time.perf_counter() - started
    return {"method": HEAD.name, "dev": summary(label_matrix(dev, codes), pred, codes), "train_s": seconds}


def train_setfit(encoder: str, train: list[Example], codes: list[str], cfg, args):
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    model = SetFitModel.from_pretrained(resolve_base_model(encoder), multi_target_strategy="one-vs-rest")
    model.model_body.max_seq_length = cfg.max_length  # as the head method embeds
    data = Dataset.from_dict(
        {"text": [e.text for e in train], "label": label_matrix(train, codes).astype(int).tolist()}
    )
    with tempfile.TemporaryDirectory() as scratch:  # SetFit writes checkpoints (hundreds of MB): never in the checkout
        training = TrainingArguments(
            output_dir=scratch,
            batch_size=args.batch_size,
            num_epochs=args.epochs,
            num_iterations=args.iterations,
            seed=cfg.seed,
            save_strategy="no",
        )
        Trainer(model=model, args=training, train_dataset=data).train()
    return model


def setfit_rows(encoder: str, gold: list[Example], dev: list[Example], codes: list[str], cfg, args) -> list[dict]:
    split = split_by_document(gold, cfg.model_copy(update={"test_fraction": 0.01}))
    train, val = split.train + split.test, split.validation
    started = time.perf_counter()
    model = train_setfit(encoder, train, codes, cfg, args)
    seconds = time.perf_counter() - started
    val_p = np.asarray(model.predict_proba([e.text for e in val], as_numpy=True))
    dev_p = np.asarray(model.predict_proba([e.text for e in dev], as_numpy=True))
    thresholds = tune_thresholds(label_matrix(val, codes), val_p, cfg.default_threshold)
    y_dev = label_matrix(dev, codes)
    name = f"setfit it={args.iterations} ep={args.epochs}"
    print(f"setfit: trained on {len(train)} segments, thresholds on {len(val)} ({len({e.document for e in val})} docs)")
    return [
        {"method": f"{name} thr 0.5", "dev": summary(y_dev, dev_p >= 0.5, codes), "train_s": seconds},
        {"method": f"{name} val-thr", "dev": summary(y_dev, dev_p >= thresholds, codes), "train_s": seconds},
    ]


def print_table(encoder: str, rows: list[dict]) -> None:
    head = f"{'encoder':<7} {'method':<30} {'micro-F1':>8} {'macro-F1':>8} {'kappa':>6} {'train s':>8} {'vs head':>16}"
    print(head + "\n" + "-" * len(head))
    base = rows[0]["dev"]
    for r in rows:
        d = r["dev"]
        ratio = f"{d['micro_f1'] / base['micro_f1']:.2f}/{d['macro_f1'] / base['macro_f1']:.2f}/" + (
            f"{d['kappa'] / base['kappa']:.2f}" if base["kappa"] else "-"
        )
        print(
            f"{encoder:<7} {r['method']:<30} {d['micro_f1']:>8.3f} {d['macro_f1']:>8.3f} {d['kappa']:>6.3f} "
            f"{r['train_s']:>8.1f} {ratio:>16}"
        )
    print("(vs head: micro/macro/kappa ratio to the head row; dev set only)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=["minilm", "mpnet"], default="minilm")
    parser.add_argument(
        "--iterations",
        type=int,
        default=1,
        help="SetFit num_iterations (pairs per segment; 5, its own default, takes about an hour on 2 cores)",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    require_setfit()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    settings = load_settings(ROOT / "configs" / "pipeline.yaml")
    codebook = load_codebook(ROOT / "configs" / "codebooks" / "police_culture.yaml")
    cfg, codes = settings.classifier, codebook.code_ids
    gold, dev = read_gold(GOLD, codebook), read_gold(DEV, codebook)
    print(f"example gold: {len(gold)} segments, {len({e.document for e in gold})} documents; dev: {len(dev)}")
    rows = [head_row(args.encoder, gold, dev, codebook, cfg)]
    print_table(args.encoder, rows)
    rows += setfit_rows(args.encoder, gold, dev, codes, cfg, args)
    print()
    print_table(args.encoder, rows)


if __name__ == "__main__":
    main()
