"""Start-up cost of the CLI: `culturecode --help` and `culturecode status --json` next to `python -c pass`.

    .venv/bin/python benchmarks/bench_cli.py            # 10,000-segment workspace, 5 runs each
    .venv/bin/python benchmarks/bench_cli.py --runs 3

Target (a quiet machine): `--help` <= 0.5 s and <= 80 MB. Each command runs in a fresh process
that reports its own peak RSS (VmHWM, as in bench_prelabel_memory.py) when it ends; wall time is
measured from outside, from spawn to exit. The figures are medians, and each is also given as a
ratio to `python -c pass` measured in the same run, which makes them comparable across machines.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS, TARGET_MB = 0.5, 80

# The measured process: runs `culturecode ARGS` as the console script does (or nothing, for the
# baseline), then prints its own peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
# from the parent across fork+exec.
CHILD = """
import sys
if sys.argv[1:]:
    from pipeline.cli import app
    try:
        app(sys.argv[1:], prog_name="culturecode")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
status = open("/proc/self/status").read()
kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
sys.stderr.write(f"VMHWM_KB {kb}\\n")
"""


def build_workspace(ws: Path, n_segments: int, per_document: int = 100) -> None:
    """A workspace of `n_segments` segments with one current model's predictions, through the store."""
    from pipeline.config import load_settings
    from pipeline.store import Document, Segment, Store
    from pipeline.store.models import register_model
    from pipeline.store.predictions import PredictionRow, write_predictions

    book = load_settings(overrides={"workspace": str(ws)}).load_codebook()
    rng = random.Random(7)
    with Store(ws, create=True) as store:
        with store.transaction():
            store.record_codebook(book)
            register_model(store, "clf-001", "classifier", None, book.content_hash, {}, promote=True)
        for start in range(0, n_segments, per_document):
            doc = Document(f"doc{start // per_document:04d}", f"doc{start}.txt", "txt", f"hash{start}")
            segments = [
                Segment(f"{doc.id}-{i}", doc.id, i, f"Turn {i} of {doc.id}.", "R" if i % 2 else "OM1")
                for i in range(min(per_document, n_segments - start))
            ]
            predictions = [
                PredictionRow(s.id, "clf-001", {c: rng.random() for c in book.code_ids}, rng.sample(book.code_ids, 2))
                for s in segments
            ]
            with store.transaction():
                store.put_document(doc, segments)
                write_predictions(store, predictions, book.content_hash)


def measure(args: list[str], runs: int) -> dict[str, float]:
    """Median wall seconds and median peak MB of `culturecode ARGS` (no ARGS: an empty interpreter)."""
    seconds, peaks = [], []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True)
        seconds.append(time.perf_counter() - started)
        line = next(li for li in proc.stderr.splitlines() if li.startswith("VMHWM_KB "))
        peaks.append(int(line.split()[1]) / 1024)
    return {"seconds": statistics.median(seconds), "peak_mb": statistics.median(peaks)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="repetitions of each command (median)")
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        build_workspace(ws, opts.segments)
        rows = {
            "python -c pass": measure([], opts.runs),
            "culturecode --help": measure(["--help"], opts.runs),
            f"culturecode status --json ({opts.segments} segments)": measure(
                ["status", "--json", "--workspace", str(ws)], opts.runs
            ),
        }
    if opts.json:
        print(json.dumps(rows, indent=2))
        return
    base = rows["python -c pass"]
    print(f"CLI start-up, median of {opts.runs} runs (ratios against `python -c pass` in this run):")
    for name, r in rows.items():
        print(
            f"  {name:<48} {r['seconds']:6.3f} s ({r['seconds'] / base['seconds']:5.1f}x)   "
            f"peak {r['peak_mb']:6.1f} MB ({r['peak_mb'] / base['peak_mb']:4.1f}x)"
        )
    help_ = rows["culturecode --help"]
    met = help_["seconds"] <= TARGET_SECONDS and help_["peak_mb"] <= TARGET_MB
    print(f"target --help <= {TARGET_SECONDS} s and <= {TARGET_MB} MB: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
