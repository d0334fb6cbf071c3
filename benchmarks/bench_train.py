"""Fine-tuning speed: seconds per epoch for 1,000 segments at max length 128 (target <= 90 s).

    .venv/bin/python benchmarks/bench_train.py           # 1,000 segments
    .venv/bin/python benchmarks/bench_train.py --quick   # 200 segments

culturecode pads each batch only to its longest segment (dynamic padding). The baseline,
measured in the same run on the same segments, pads every batch to 128 tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.classifier import methods
from pipeline.classifier.data import Example, label_matrix
from pipeline.classifier.encoder import CodeClassifier, load_encoder, load_tokenizer, resolve_base_model
from pipeline.config import load_settings

GOLD = ROOT / "examples" / "gold" / "gold.jsonl"


def examples(n: int) -> list[Example]:
    rows = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        Example(str(i), rows[i % len(rows)]["text"], rows[i % len(rows)]["codes"], rows[i % len(rows)]["document"])
        for i in range(n)
    ]


def fresh_model(base: str, n_codes: int) -> CodeClassifier:
    methods.seed_everything(13)
    return CodeClassifier(load_encoder(base), n_codes)


def padded_epoch(model, tokenizer, train: list[Example], codes: list[str], cfg) -> float:
    """The baseline: the same loop, every batch padded to max_length."""
    y = torch.from_numpy(label_matrix(train, codes))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=methods._pos_weight(y))
    optimizer, scheduler = methods._optimizer(model, cfg, len(train))
    model.train()
    started = time.perf_counter()
    for batch in torch.randperm(len(train)).split(cfg.batch_size):
        enc = tokenizer(
            [train[i].text for i in batch.tolist()],
            padding="max_length",
            truncation=True,
            max_length=cfg.max_length,
            return_tensors="pt",
        )
        loss_fn(model(enc["input_ids"], enc["attention_mask"]), y[batch]).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="200 segments instead of 1,000")
    args = parser.parse_args()
    n = 200 if args.quick else 1000
    settings = load_settings(overrides={"classifier.epochs": 1, "classifier.max_length": 128})
    cfg, codes = settings.classifier, settings.load_codebook().code_ids
    base = resolve_base_model(cfg.base_model)
    tokenizer = load_tokenizer(base)
    train, val = examples(n), examples(32)
    model = fresh_model(base, len(codes))
    started = time.perf_counter()
    methods.fit_finetune(model, tokenizer, train, val, codes, cfg, show_progress=False)
    ours = time.perf_counter() - started
    baseline = padded_epoch(fresh_model(base, len(codes)), tokenizer, train, codes, cfg)
    print(
        f"fine-tuning all-MiniLM-L6-v2, {n} segments, max length {cfg.max_length}, batch {cfg.batch_size}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"  culturecode (dynamic padding, incl. validation pass): {ours:6.1f} s/epoch")
    print(f"  baseline (padded to {cfg.max_length}):                  {baseline:6.1f} s/epoch")
    print(
        f"ratio baseline/culturecode: {baseline / ours:.2f}x; target <= 90 s/epoch: "
        f"{'met' if ours <= 90 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
