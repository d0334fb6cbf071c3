"""Ingest throughput and peak memory on a generated 100 MB transcript corpus.

Baseline, measured in the same run: a naive `readlines()` + regex loop over the same files that
only splits speaker turns (no decoding checks, sentence splitting, hashing or database writes).
Each side runs in a fresh child process so peak RSS is its own.

    .venv/bin/python benchmarks/bench_ingest.py [--mb 100]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = [
    "the",
    "address",
    "visit",
    "curfew",
    "hostel",
    "recall",
    "warrant",
    "probation",
    "flat",
    "tag",
    "appointment",
    "briefing",
    "custody",
    "sergeant",
    "offender",
    "housing",
    "benefits",
    "treatment",
    "meeting",
    "list",
    "intelligence",
    "van",
    "door",
]
SPEAKERS = ["R", "PC Dawes", "OM2", "Sgt Hale", "PO Grant", "DS Khan"]

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec
PEAK = """
import re
def peak_mb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
"""

OURS = (
    PEAK
    + """
import json, sys, time
from pipeline.store import Store
from pipeline.ingest import ingest
start = time.perf_counter()
report = ingest(Store(sys.argv[2]), [sys.argv[1]], show_progress=False)
print(json.dumps({"segments": report.segments_added, "seconds": time.perf_counter() - start,
                  "peak_mb": peak_mb()}))
"""
)

NAIVE = (
    PEAK
    + """
import json, re, sys, time
start = time.perf_counter()
turn = re.compile(r"^([A-Za-z][\\w .']{0,39}?):\\s+(.*)$")
segments = []
for path in sys.argv[1:2]:
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for line in lines:
        m = turn.match(line)
        if m:
            segments.append((m.group(1), m.group(2)))
        elif segments and line.strip():
            segments[-1] = (segments[-1][0], segments[-1][1] + " " + line.strip())
print(json.dumps({"segments": len(segments), "seconds": time.perf_counter() - start,
                  "peak_mb": peak_mb()}))
"""
)


def make_corpus(path: Path, megabytes: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    limit = megabytes * 1024 * 1024
    with path.open("w", encoding="utf-8") as fh:
        while fh.tell() < limit:
            words = rng.choices(WORDS, k=rng.randint(4, 90))
            sentences = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, len(words), 12)]
            fh.write(f"{rng.choice(SPEAKERS)}: {' '.join(sentences)}\n")


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100, help="corpus size in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        make_corpus(corpus, args.mb)
        naive = run(NAIVE, str(corpus))
        ours = run(OURS, str(corpus), str(Path(tmp) / "ws"))
    ours_rate = ours["segments"] / ours["seconds"]
    naive_rate = naive["segments"] / naive["seconds"]
    print(f"corpus: {args.mb} MB, {ours['segments']} segments (naive loop found {naive['segments']} turns)")
    for name, rate, side in (("culturecode ingest", ours_rate, ours), ("naive readlines+re", naive_rate, naive)):
        print(f"{name} : {rate:10.0f} segments/s, {side['seconds']:.1f} s, peak RSS {side['peak_mb']:.0f} MB")
    print(
        f"ratio speed (ours/naive): {ours_rate / naive_rate:.3f}x;  "
        f"ratio peak memory (ours/naive): {ours['peak_mb'] / naive['peak_mb']:.2f}x"
    )


if __name__ == "__main__":
    main()
