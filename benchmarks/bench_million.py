"""A million segments: ingest in bounded memory, `status` fast.

    .venv/bin/python benchmarks/bench_million.py                       # 1,000,000 segments
    .venv/bin/python benchmarks/bench_million.py --segments 200000     # a smaller corpus, same figures

Writes generated transcripts (1,000 turns per file), then runs the real commands in child processes:
`culturecode ingest` (time, peak memory), then stores one prediction per segment for a registered model made
current (through the store's own write function, the path `prelabel` writes through, without a model to run), and
times `culturecode status --json` (the whole command, start-up included) and `workspace_status` alone.
Targets (issue 16): ingest peak memory flat (<= 2 GB) and `status` <= 1 s at a million segments.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import load_codebook, load_settings  # noqa: E402
from pipeline.status import workspace_status  # noqa: E402
from pipeline.store import Store  # noqa: E402
from pipeline.store.models import register_model  # noqa: E402
from pipeline.store.predictions import PredictionRow, write_predictions  # noqa: E402

TURNS_PER_FILE = 1000
SENTENCE = (
    "we went out on patrol that night and the sergeant said nothing about the call because the lads knew "
    "the estate better than anyone else in the station so we waited by the van until the radio came back"
)
WORDS = SENTENCE.split()
# runs a culturecode command and writes its peak resident memory (KiB) to the file named by the last argument
CHILD = (
    "import resource, sys\nfrom pipeline.cli import app\nout = sys.argv.pop()\n"
    "try:\n    app(sys.argv[1:], prog_name='culturecode')\nexcept SystemExit as exc:\n    code = exc.code\n"
    "finally:\n    open(out, 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
    "sys.exit(code or 0)\n"
)


def write_transcripts(folder: Path, segments: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = -(-segments // TURNS_PER_FILE)
    for f in range(files):
        turns = min(TURNS_PER_FILE, segments - f * TURNS_PER_FILE)
        lines = [
            f"{'AB'[t % 2]}: {' '.join(rng.choices(WORDS, k=rng.randint(6, 40)))} (file {f} turn {t})."
            for t in range(turns)
        ]
        (folder / f"interview_{f:05d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def culturecode(args: list[str], scratch: Path) -> tuple[float, float, str]:
    """(seconds, peak MiB, stdout) of one command in a child process."""
    peak_file = scratch / "peak.txt"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args, str(peak_file)], cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"culturecode {' '.join(args)} failed:\n{done.stderr}")
    return seconds, int(peak_file.read_text()) / 1024, done.stdout


def add_predictions(ws: Path, version: str = "bench-001") -> float:
    """One prediction per segment for a current model, written in chunks like `prelabel` does."""
    codebook = load_codebook(load_settings().codebook_path())
    codes = codebook.code_ids
    rng = random.Random(1)
    started = time.perf_counter()
    with Store(ws) as store:
        with store.transaction():
            register_model(store, version, "classifier", None, codebook.content_hash, {}, promote=True)
        for chunk in store.iter_segments(5000):
            rows = []
            for seg in chunk:
                scores = {c: round(rng.random(), 4) for c in codes}
                rows.append(PredictionRow(seg.id, version, scores, [c for c, s in scores.items() if s > 0.9]))
            with store.transaction():
                write_predictions(store, rows, codebook.content_hash)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="build the workspace here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        ws = args.keep or scratch / "ws"
        started = time.perf_counter()
        files = write_transcripts(scratch / "transcripts", args.segments)
        print(f"wrote {files} transcript files ({args.segments} turns) in {time.perf_counter() - started:.1f} s")
        common = ["-w", str(ws), "-q"]
        ingest_s, ingest_mib, _ = culturecode(["ingest", str(scratch / "transcripts"), *common], scratch)
        print(f"ingest: {ingest_s:.1f} s, peak {ingest_mib:.0f} MiB")
        write_s = add_predictions(ws)
        print(f"predictions written (store path of prelabel): {write_s:.1f} s")
        status_s, status_mib, stdout = culturecode(["status", "-w", str(ws), "--json"], scratch)
        counts = json.loads(stdout)["counts"]
        with Store(ws, create=False) as store:
            lib_started = time.perf_counter()
            workspace_status(store, load_codebook(load_settings().codebook_path()))
            library_s = time.perf_counter() - lib_started
        size_mib = sum(p.stat().st_size for p in ws.glob("culturecode.db*")) / 2**20
        result = {
            "segments": counts["segments"],
            "predicted_segments": counts["predicted_segments"],
            "database_mib": round(size_mib),
            "ingest_s": round(ingest_s, 1),
            "ingest_peak_mib": round(ingest_mib),
            "segments_per_s": round(counts["segments"] / ingest_s),
            "predictions_write_s": round(write_s, 1),
            "status_command_s": round(status_s, 2),
            "status_peak_mib": round(status_mib),
            "workspace_status_s": round(library_s, 2),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result, indent=2))
        print(
            f"targets: ingest peak <= 2048 MiB: {'ok' if ingest_mib <= 2048 else 'MISSED'}; "
            f"status <= 1 s: {'ok' if status_s <= 1 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
