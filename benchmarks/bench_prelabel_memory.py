"""Peak memory of pre-labelling: flat in the number of segments (target <= 2 GB at 100k).

    .venv/bin/python benchmarks/bench_prelabel_memory.py           # 10,000 vs 100,000 segments
    .venv/bin/python benchmarks/bench_prelabel_memory.py --quick   # 2,000 vs 20,000

Each size runs in a fresh process (its peak RSS is its own); the baseline is the same command
on a tenth of the segments, so a ratio near 1.0 means memory does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOLD = ROOT / "examples" / "gold" / "gold.jsonl"


def child(workspace: str, n: int, backend: str) -> None:
    from pipeline.classifier import prelabel
    from pipeline.config import load_settings
    from pipeline.store import Document, Segment, Store

    texts = [json.loads(line)["text"] for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]
    settings = load_settings(overrides={"workspace": workspace})
    store = Store(workspace)
    for start in range(0, n, 1000):  # written in chunks too, so filling does not set the peak
        doc = f"mem{start // 1000:05d}"
        segs = [Segment(f"{doc}-{i}", doc, i, texts[(start + i) % len(texts)]) for i in range(min(1000, n - start))]
        with store.transaction():
            store.put_document(Document(doc, f"{doc}.txt", "txt", doc), segs)
    started = time.perf_counter()
    report = prelabel(store, settings, settings.load_codebook(), runtime=backend, show_progress=False)
    seconds = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (which trained the model)
    # across fork+exec, so ru_maxrss would report the parent's peak
    status = Path("/proc/self/status").read_text()
    peak_mb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    print(json.dumps({"n": n, "scored": report.scored, "peak_mb": round(peak_mb), "seconds": round(seconds, 1)}))


def run(base: Path, tmp: Path, n: int, backend: str) -> dict:
    ws = tmp / f"ws{n}"
    shutil.copytree(base, ws)  # model paths are stored relative to the workspace: the copy finds its own
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(ws), str(n), backend], check=True, capture_output=True, text=True
    ).stdout
    shutil.rmtree(ws)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2,000 vs 20,000 segments")
    parser.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    from pipeline.classifier import train
    from pipeline.config import load_settings
    from pipeline.store import Store

    large = 20_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        settings = load_settings(overrides={"workspace": str(base), "classifier.method": "head"})
        book = settings.load_codebook()
        with Store(base) as store:
            store.record_codebook(book)
            train(store, settings, book, gold=GOLD, show_progress=False)
        small_run = run(base, Path(tmp), large // 10, args.backend)
        large_run = run(base, Path(tmp), large, args.backend)
    print(f"pre-labelling peak RSS ({args.backend} backend, chunks of {settings.classifier.chunk_size}):")
    for r in (small_run, large_run):
        print(f"  {r['n']:>7} segments: peak {r['peak_mb']:5d} MB   ({r['n'] / r['seconds']:.0f} seg/s)")
    print(
        f"ratio {large} / {large // 10} segments: {large_run['peak_mb'] / small_run['peak_mb']:.2f}x "
        f"(1.0 = flat); target <= 2048 MB: {'met' if large_run['peak_mb'] <= 2048 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
