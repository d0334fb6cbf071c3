"""A million segments: ingest in bounded memory, `status` fast.

    .venv/bin/python benchmarks/bench_million.py                       # 1,000,000 segments
    .venv/bin/python benchmarks/bench_million.py --segments 200000     # a smaller corpus, same figures
    .venv/bin/python benchmarks/bench_million.py --status-of WORKSPACE # only time `status` (a workspace kept by --keep)

Writes generated transcripts (1,000 turns per file), then runs the real commands in child processes:
`culturecode ingest` (time, peak memory), then stores one prediction per segment for a registered model made
current (through the store's own write function, the path `prelabel` writes through, without a model to run), and
times `culturecode status --json` (the whole command, start-up included) and `workspace_status` alone.
`--annotated` (default 2 %) of the segments also get two annotators' annotations and gold, so that every count of
`status` has rows to count. Targets (issue 16): ingest peak memory flat (<= 2 GB) and `status` <= 1 s at a million
segments.
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
from pipeline.store.annotations import add_project, upsert_annotations  # noqa: E402
from pipeline.store.gold import GoldLabel, replace_gold  # noqa: E402
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


def add_annotations(ws: Path, share: float, server: str = "http://127.0.0.1:1") -> tuple[int, int]:
    """Two annotators' annotations and gold on every 1/share-th segment, through the store's write functions.
    Returns (annotations, gold rows)."""
    codebook = load_codebook(load_settings().codebook_path())
    codes, book_hash = codebook.code_ids, codebook.content_hash
    step = max(1, round(1 / share)) if share > 0 else 0
    rng = random.Random(2)
    annotations, gold = 0, []
    with Store(ws) as store, store.transaction():
        for project, annotator in ((1, "ana@example.org"), (2, "bea@example.org")):
            add_project(store, server, project, f"p{project}", "annotation", annotator, book_hash)
        for n, chunk in enumerate(store.iter_segments(5000)):
            for i, seg in enumerate(chunk):
                if not step or (n * 5000 + i) % step:
                    continue
                chosen = rng.sample(codes, rng.randint(0, 2))
                rows = [
                    _annotation(server, p, annotations + p, seg.id, who, chosen, book_hash)
                    for p, who in ((1, "ana@example.org"), (2, "bea@example.org"))
                ]
                upsert_annotations(store, rows)
                annotations += 2
                gold.append(GoldLabel(seg.id, chosen, "majority"))
        replace_gold(store, gold, book_hash)
    return annotations, len(gold)


def _annotation(server: str, project: int, number: int, segment: str, who: str, codes: list[str], book: str) -> dict:
    return {
        "server_url": server,
        "project_id": project,
        "annotation_id": number,
        "task_id": number,
        "segment_id": segment,
        "annotator": who,
        "codes": json.dumps(codes),
        "was_cancelled": 0,
        "deleted": 0,
        "codebook_hash": book,
        "updated_at": "2026-01-01T10:00:00+00:00",
    }


def status_parts(ws: Path) -> dict[str, float]:
    """Seconds of each part of `workspace_status`, timed alone (slowest first)."""
    from pipeline.store import annotations, gold, models, predictions, segments

    with Store(ws, create=False) as store:
        model = models.current_model(store) or ""
        parts = {
            "count_segments": lambda: segments.count_segments(store),
            "count_superseded": lambda: segments.count_superseded(store),
            "count_predictions": lambda: predictions.count_predictions(store, model),
            "predicted_per_code": lambda: predictions.predicted_per_code(store, model),
            "annotation_counts": lambda: annotations.annotation_counts(store),
            "annotated_per_code": lambda: annotations.annotated_per_code(store),
            "count_left_behind": lambda: annotations.count_left_behind(store),
            "count_gold": lambda: gold.count_gold(store),
            "gold_per_code": lambda: gold.gold_per_code(store),
            "last_runs": lambda: store.last_runs(5),
        }
        seconds = {}
        for name, part in parts.items():
            started = time.perf_counter()
            part()
            seconds[name] = round(time.perf_counter() - started, 4)
    return dict(sorted(seconds.items(), key=lambda item: -item[1]))


def build(ws: Path, scratch: Path, segments: int, annotated: float) -> dict[str, float]:
    """Generate, ingest (a child process) and fill a workspace; the figures of each step."""
    started = time.perf_counter()
    files = write_transcripts(scratch / "transcripts", segments)
    print(f"wrote {files} transcript files ({segments} turns) in {time.perf_counter() - started:.1f} s")
    ingest_s, ingest_mib, _ = culturecode(["ingest", str(scratch / "transcripts"), "-w", str(ws), "-q"], scratch)
    print(f"ingest: {ingest_s:.1f} s, peak {ingest_mib:.0f} MiB")
    write_s = add_predictions(ws)
    print(f"predictions written (store path of prelabel): {write_s:.1f} s")
    annotations, gold = add_annotations(ws, annotated)
    print(f"{annotations} annotations and {gold} gold rows written")
    return {
        "ingest_s": round(ingest_s, 1),
        "ingest_peak_mib": round(ingest_mib),
        "segments_per_s": round(segments / ingest_s),
        "predictions_write_s": round(write_s, 1),
    }


def measure_status(ws: Path, scratch: Path) -> dict[str, object]:
    """`culturecode status --json` (a child process, start-up included), `culturecode --help` (start-up alone), and
    `workspace_status` in this process, whole and part by part."""
    startup_s, _, _ = culturecode(["--help"], scratch)
    status_s, status_mib, stdout = culturecode(["status", "-w", str(ws), "--json"], scratch)
    counts = json.loads(stdout)["counts"]
    with Store(ws, create=False) as store:
        started = time.perf_counter()
        workspace_status(store, load_codebook(load_settings().codebook_path()))
        library_s = time.perf_counter() - started
    return {
        "segments": counts["segments"],
        "predicted_segments": counts["predicted_segments"],
        "annotations": counts["annotations"],
        "gold": counts["gold"],
        "database_mib": round(sum(p.stat().st_size for p in ws.glob("culturecode.db*")) / 2**20),
        "status_command_s": round(status_s, 2),
        "cli_startup_s": round(startup_s, 2),
        "status_peak_mib": round(status_mib),
        "workspace_status_s": round(library_s, 3),
        "status_parts_s": status_parts(ws),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="build the workspace here and keep it")
    parser.add_argument("--annotated", type=float, default=0.02, help="share of segments given annotations and gold")
    parser.add_argument("--status-of", type=Path, default=None, help="only time `status` on this (kept) workspace")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        ws = args.status_of or args.keep or scratch / "ws"
        built = {} if args.status_of else build(ws, scratch, args.segments, args.annotated)
        result = {**built, **measure_status(ws, scratch), "cpus": os.cpu_count()}
        print(json.dumps(result, indent=2))
        peak = built.get("ingest_peak_mib")
        print(
            ("" if peak is None else f"targets: ingest peak <= 2048 MiB: {'ok' if peak <= 2048 else 'MISSED'}; ")
            + f"status <= 1 s: {'ok' if result['status_command_s'] <= 1 else 'MISSED'} "
            f"(of which {result['cli_startup_s']} s is the CLI's start-up)"
        )


if __name__ == "__main__":
    main()
