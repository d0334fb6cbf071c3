"""GPU against CPU on one machine, through culturecode's own code paths (run by benchmarks/gpu_check.sh).

    benchmarks/gpu_check.sh                 # 1k-segment fine-tune epoch, pre-label throughput at 100k segments
    benchmarks/gpu_check.sh --tiny          # a 1-layer encoder and a few hundred segments: checks the script

(a) one fine-tuning epoch (`methods.fit_finetune`, batch 16, 128 tokens) on 1,000 segments, on the CPU and on
    the GPU (bf16 autocast where the card has it);
(b) pre-labelling throughput (`encoder.predict_proba`, the torch path of `culturecode prelabel`) on 100,000
    segments on the GPU; the CPU is timed on `--cpu-segments` of them (default 10,000: a CPU takes minutes per
    100k) and its throughput is the per-segment rate, which does not depend on the count at these sizes.
The encoder has all-MiniLM-L6-v2's architecture with random weights (speed does not depend on the weights);
`--packaged-weights` loads the packaged ones instead. Texts are generated (speaker-turn lengths of 5-80 words).
Without a GPU only the CPU figures are printed. The whole run stays under 8 minutes on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from pipeline.classifier import methods  # noqa: E402
from pipeline.classifier.data import Example  # noqa: E402
from pipeline.classifier.encoder import (  # noqa: E402
    CodeClassifier,
    load_encoder,
    load_tokenizer,
    predict_proba,
    resolve_base_model,
)
from pipeline.config import ClassifierSettings  # noqa: E402
from pipeline.device import describe  # noqa: E402

CODES = [f"code_{i:02d}" for i in range(15)]
SENTENCE = (
    "we went out on patrol that night and the sergeant said nothing about the call because the lads knew "
    "the estate better than anyone else in the station so we waited by the van until the radio came back"
)
WORDS = SENTENCE.split()


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(5, 80))) for _ in range(n)]


def examples(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [
        Example(f"s{seed}-{i}", text, [c for c in CODES if rng.random() < 0.15], f"doc{i // 20}")
        for i, text in enumerate(texts(n, seed))
    ]


def build_model(tiny: bool, packaged: bool) -> tuple[CodeClassifier, object]:
    from transformers import AutoConfig, AutoModel

    path = resolve_base_model("minilm")
    tokenizer = load_tokenizer(path)
    if packaged:
        encoder = load_encoder(path)
    else:
        config = AutoConfig.from_pretrained(path)
        if tiny:
            config.update({"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2})
            config.update({"intermediate_size": 64})
        torch.manual_seed(0)
        encoder = AutoModel.from_config(config)
    return CodeClassifier(encoder, len(CODES)), tokenizer


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def epoch_seconds(device: str, train: list[Example], val: list[Example], args: argparse.Namespace) -> float:
    model, tokenizer = build_model(args.tiny, args.packaged_weights)
    model.to(device)
    settings = ClassifierSettings(epochs=1, batch_size=16, max_length=128, seed=13)
    sync(device)
    started = time.perf_counter()
    methods.fit_finetune(model, tokenizer, train, val, CODES, settings, show_progress=False)
    sync(device)
    return time.perf_counter() - started


def prelabel_rate(device: str, corpus: list[str], batch_size: int, args: argparse.Namespace) -> float:
    model, tokenizer = build_model(args.tiny, args.packaged_weights)
    model.to(device)
    predict_proba(model, tokenizer, corpus[:batch_size], batch_size, 128)  # warm-up (CUDA context, kernels)
    sync(device)
    started = time.perf_counter()
    predict_proba(model, tokenizer, corpus, batch_size, 128)
    sync(device)
    return len(corpus) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="1-layer encoder, small sizes: a quick run of the script")
    parser.add_argument("--train-segments", type=int, default=None, help="default 1000 (tiny: 96)")
    parser.add_argument("--prelabel-segments", type=int, default=None, help="GPU pre-label count (100000; tiny 2000)")
    parser.add_argument("--cpu-segments", type=int, default=None, help="CPU pre-label count (10000; tiny 500)")
    parser.add_argument("--gpu-batch-size", type=int, default=256, help="segments per forward pass on the GPU")
    parser.add_argument("--packaged-weights", action="store_true", help="the packaged MiniLM weights, not random")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    n_train = args.train_segments or (96 if args.tiny else 1000)
    n_gpu = args.prelabel_segments or (2000 if args.tiny else 100_000)
    n_cpu = min(args.cpu_segments or (500 if args.tiny else 10_000), n_gpu)
    train, val = examples(n_train, 1), examples(max(n_train // 10, 16), 2)
    corpus = texts(n_gpu, 3)
    gpu = torch.cuda.is_available()
    result: dict = {
        "encoder": "tiny 1-layer"
        if args.tiny
        else "all-MiniLM-L6-v2 architecture"
        + (" (packaged weights)" if args.packaged_weights else " (random weights)"),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "train_segments": n_train,
        "cpu": describe("cpu", training=True),
    }
    print(f"fine-tune epoch on {n_train} segments, CPU ({torch.get_num_threads()} threads) ...", flush=True)
    result["cpu_epoch_s"] = round(epoch_seconds("cpu", train, val, args), 2)
    print(f"pre-label {n_cpu} segments, CPU ...", flush=True)
    result["cpu_segments"] = n_cpu
    result["cpu_prelabel_per_s"] = round(prelabel_rate("cpu", corpus[:n_cpu], 32, args), 1)
    if gpu:
        result["gpu"] = describe("cuda", training=True)
        print(f"fine-tune epoch on {n_train} segments, GPU {result['gpu']['name']} ...", flush=True)
        epoch_seconds("cuda", train[:64], val[:16], args)  # warm-up: CUDA context and kernels
        result["gpu_epoch_s"] = round(epoch_seconds("cuda", train, val, args), 2)
        print(f"pre-label {n_gpu} segments, GPU ...", flush=True)
        result["gpu_segments"] = n_gpu
        result["gpu_prelabel_per_s"] = round(prelabel_rate("cuda", corpus, args.gpu_batch_size, args), 1)
        result["epoch_speedup"] = round(result["cpu_epoch_s"] / result["gpu_epoch_s"], 1)
        result["prelabel_speedup"] = round(result["gpu_prelabel_per_s"] / result["cpu_prelabel_per_s"], 1)
    else:
        result["gpu"] = None
        print("no CUDA GPU visible to torch: GPU figures not measured", flush=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
