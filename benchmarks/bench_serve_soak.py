"""Benchmark: `culturecode serve` through a working day against a real Label Studio (issue 26): two annotator threads
submit `--rounds` x 20 annotations through the API, a retrain every 20 (loop.every), and after each retrain the
server's RSS, the disk its model versions take and how many versions are kept. At the end every submitted annotation
must be in Label Studio and, after a pull, in the workspace.

    .venv/bin/python benchmarks/bench_serve_soak.py                      # 10 rounds, the default encoder (mpnet)
    .venv/bin/python benchmarks/bench_serve_soak.py --rounds 3 --base-model minilm

Targets: the RSS after the last retrain within 10% of the RSS after the first (each retrain runs in a child process,
pipeline/loop/isolated.py); at most loop.keep_unpromoted (2) versions on disk that were never promoted (the current
one and every version once promoted are never pruned, nor one Label Studio's predictions name: the issue's "<= 3
versions" holds while no retrain is promoted); 0 lost annotations.
The server runs in this process (start_loop), so this process's RSS is the server's. The workspace and the first,
weak model are built as bench_loop_latency.py builds them.
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil
from bench_loop_latency import CODEBOOK, build_workspace, first_model, gold_rows
from bench_pull import label_studio

from pipeline.classifier import list_models, prelabel
from pipeline.config import Settings, load_codebook
from pipeline.loop.service import start_loop
from pipeline.store import Store
from pipeline.store.annotations import task_ledger
from pipeline.studio import connect, labeling, pull, push

EVERY = 20
ANNOTATORS = 2
RSS_TARGET = 1.10


def never_promoted(workspace: Path) -> int:
    with Store(workspace, create=False) as store:
        rows = list_models(store)
    return sum(1 for m in rows if not m["is_current"] and not m["metrics"].get("promoted_at"))


def models_on_disk(workspace: Path) -> tuple[int, int]:
    """(versions, bytes) under <workspace>/models (hidden temporary folders left out)."""
    folders = [p for p in (workspace / "models").iterdir() if p.is_dir() and not p.name.startswith(".")]
    size = sum(f.stat().st_size for p in folders for f in p.rglob("*") if f.is_file())
    return len(folders), size


def setup(settings: Settings, rounds: int, tmp: Path):
    book = load_codebook(CODEBOOK)
    rows = gold_rows(rounds * EVERY + 50)
    store, seg_ids = build_workspace(Path(settings.workspace), rows, book)
    codes = {s: r["codes"] for s, r in zip(seg_ids, rows, strict=True)}
    first = first_model(store, settings, book, rows, tmp)
    prelabel(store, settings, book, show_progress=False)
    report = push(store, settings, book, show_progress=False)
    project_id = report.projects[0].id
    ledger = {r["segment_id"]: r["task_id"] for r in task_ledger(store, connect(settings).url, project_id)}
    store.close()
    todo = [(ledger[s], codes[s]) for s in seg_ids[: rounds * EVERY]]
    return book, first, project_id, todo


def annotate(settings: Settings, tasks: list[tuple[int, list[str]]], version: str, errors: list[str]) -> None:
    sdk = connect(settings).sdk
    for task_id, codes in tasks:
        try:
            result = labeling.prediction(codes, {}, version)["result"]
            sdk.annotations.create(id=task_id, result=result, lead_time=3.0)
        except Exception as exc:  # counted as lost below
            errors.append(f"task {task_id}: {type(exc).__name__}: {exc}")


def run(settings: Settings, args, tmp: Path) -> int:
    book, first, project_id, todo = setup(settings, args.rounds, tmp)
    workspace = Path(settings.workspace)
    print(f"workspace: {len(todo)} tasks to annotate in {args.rounds} rounds; first model {first}", flush=True)
    done: queue.Queue = queue.Queue()
    me = psutil.Process()
    rss_start = me.memory_info().rss
    running = start_loop(settings, book, port=0, on_retrain=done.put)
    rows, errors = [], []
    try:
        for n in range(args.rounds):
            batch = todo[n * EVERY : (n + 1) * EVERY]
            threads = [
                threading.Thread(target=annotate, args=(settings, batch[i::ANNOTATORS], first, errors))
                for i in range(ANNOTATORS)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            try:
                record = done.get(timeout=args.timeout)
            except queue.Empty:
                raise SystemExit(f"round {n + 1}: no retrain finished within {args.timeout:.0f} s") from None
            versions, size = models_on_disk(workspace)
            rss = me.memory_info().rss
            rows.append((n + 1, record, rss, versions, size))
            state = "error: " + record["error"][:80] if record.get("error") else record.get("message", "")[:100]
            print(
                f"retrain {n + 1:2d}: rss {rss / 2**20:7.0f} MB  models {versions} ({size / 2**20:6.0f} MB)  {state}",
                flush=True,
            )
    finally:
        running.close()
    sdk = connect(settings).sdk
    tasks = [t.model_dump() for t in sdk.tasks.list(project=project_id, fields="all", page_size=5000)]
    in_studio = sum(len(t["annotations"] or []) for t in tasks)
    with Store(workspace, create=False) as store:
        pull(store, settings, book, show_progress=False)
        in_workspace = store.count("annotations")
    submitted = len(todo) - len(errors)
    lost = max(submitted - in_studio, 0) + max(in_studio - in_workspace, 0)
    first_rss, last_rss = rows[0][2], rows[-1][2]
    versions, unpromoted, keep = rows[-1][3], never_promoted(workspace), settings.loop.keep_unpromoted
    print(f"rss before the server {rss_start / 2**20:.0f} MB; after retrain 1 {first_rss / 2**20:.0f} MB")
    print(f"rss last / first retrain              {last_rss / first_rss:7.2f}x  (target <= {RSS_TARGET:.2f}x)")
    print(f"model versions kept                   {versions:7d}   ({unpromoted} never promoted: target <= {keep})")
    print(f"annotations lost                      {lost:7d}   (target 0; {len(errors)} submissions failed)")
    for line in errors[:5]:
        print(f"  {line}")
    ok = last_rss <= RSS_TARGET * first_rss and unpromoted <= keep and lost == 0 and not errors
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of 20 annotations, each followed by a retrain")
    parser.add_argument("--base-model", default=None, help="classifier.base_model (default: the shipped setting)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each retrain")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    overrides = {
        "classifier.method": "head",
        "loop.method": "head",
        "loop.every": EVERY,
        "loop.debounce_seconds": 2,
        "admission.enabled": False,
        **({"classifier.base_model": args.base_model} if args.base_model else {}),
    }
    with label_studio(tmp, **overrides) as settings:
        code = run(settings, args, tmp)
    sys.exit(code)


if __name__ == "__main__":
    main()
