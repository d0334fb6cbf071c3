"""Benchmark: culturecode push vs one raw SDK bulk import vs a naive one-task-per-request loop,
and the time to pull 10,000 annotations, against a real local Label Studio.

    .venv/bin/python benchmarks/bench_push.py            # 10,000 tasks (a few minutes)
    .venv/bin/python benchmarks/bench_push.py --quick    # 2,000 tasks

Starts its own Label Studio in a temporary directory (set BENCH_STUDIO_WORKSPACE to the workspace
of a running `culturecode studio start` to reuse that one). Targets: push >= 50x the naive loop;
idempotent push <= 1.25x the raw bulk import.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_codebook, load_settings
from pipeline.store import Document, Segment, Store
from pipeline.store.annotations import add_project
from pipeline.store.models import register_model
from pipeline.store.predictions import PredictionRow, predictions_of, write_predictions
from pipeline.studio import connect, labeling, pull, push, server

CODEBOOK = Path(__file__).resolve().parent.parent / "configs" / "codebooks" / "police_culture.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_workspace(path: Path, n: int, book) -> Store:
    store = Store(path)
    codes = book.code_ids
    per_doc = 100
    with store.transaction():
        store.record_codebook(book)
        for d in range(n // per_doc):
            doc = Document(f"interview{d:04d}", f"interview{d:04d}.txt", "txt", f"h{d}")
            store.put_document(
                doc,
                [
                    Segment(
                        f"s{d:04d}-{t:03d}",
                        doc.id,
                        t,
                        f"Turn {t}: we went round to his flat and talked about the hostel bed.",
                        speaker="Officer" if t % 2 else "Researcher",
                    )
                    for t in range(per_doc)
                ],
            )
        register_model(store, "bench-v1", "classifier", None, book.content_hash, {}, promote=True)
        rows = []
        for i, seg in enumerate(store.segments()):
            chosen = [codes[i % len(codes)], codes[(i * 7) % len(codes)]]
            scores = {c: (0.8 if c in chosen else 0.05) for c in codes}
            rows.append(PredictionRow(seg.id, "bench-v1", scores, [c for c in codes if c in chosen]))
        write_predictions(store, rows, book.content_hash)
    return store


def payloads(store: Store) -> list[dict]:
    preds = predictions_of(store, "bench-v1")
    out = []
    for seg in store.segments():
        before, after = store.neighbours(seg)
        p = preds[seg.id]
        out.append(
            {
                "data": labeling.task_data(seg, before, after, None, "bench-v1"),
                "predictions": [labeling.prediction(p.codes, p.scores, "bench-v1")],
            }
        )
    return out


def fresh_project(studio, book, title: str) -> int:
    return studio.sdk.projects.create(title=title, label_config=labeling.label_config(book)).id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 tasks instead of 10,000")
    parser.add_argument("--naive-sample", type=int, default=200, help="tasks in the one-per-request loop")
    args = parser.parse_args()
    n = 2000 if args.quick or os.environ.get("BENCH_QUICK") else 10_000
    book = load_codebook(CODEBOOK)
    tmp = Path(tempfile.mkdtemp(prefix="bench-push-"))
    reuse = os.environ.get("BENCH_STUDIO_WORKSPACE")
    if reuse:
        port = json.loads((Path(reuse) / "studio" / server.STATE).read_text())["port"]
        srv = load_settings(overrides={"workspace": reuse, "studio.port": port})
    else:
        srv = load_settings(overrides={"workspace": str(tmp / "server"), "studio.port": free_port()})
    t0 = time.perf_counter()
    info = server.start_server(srv)
    how = f"started in {time.perf_counter() - t0:.0f} s" if info.started else "reused"
    print(f"Label Studio at {info.url} ({how})")
    key = tmp / "key"
    key.write_text(server.credentials(srv)["api_key"])
    key.chmod(0o600)
    settings = load_settings(
        overrides={
            "workspace": str(tmp / "ws"),
            "studio.url": info.url,
            "studio.api_key_file": str(key),
            "studio.api_key_env": "BENCH_UNSET_KEY",
            "studio.timeout": 600,
        }
    )
    try:
        run(settings, book, n, args.naive_sample, tmp)
    finally:
        if info.started:
            server.stop_server(srv)


def run(settings, book, n: int, sample: int, tmp: Path) -> None:
    store = build_workspace(tmp / "ws", n, book)
    studio = connect(settings)
    tasks = payloads(store)

    t = time.perf_counter()
    report = push(store, settings, book, show_progress=False)
    push_s = time.perf_counter() - t
    assert report.imported == n
    t = time.perf_counter()
    again = push(store, settings, book, show_progress=False)
    repush_s = time.perf_counter() - t
    assert again.imported == 0

    raw_pid = fresh_project(studio, book, "bench raw bulk")
    t = time.perf_counter()
    studio.sdk.projects.import_tasks(raw_pid, request=tasks)
    raw_s = time.perf_counter() - t

    naive_pid = fresh_project(studio, book, "bench naive loop")
    t = time.perf_counter()
    for task in tasks[:sample]:
        studio.sdk.projects.import_tasks(naive_pid, request=[task])
    naive_s = time.perf_counter() - t

    push_rate, raw_rate, naive_rate = n / push_s, n / raw_s, sample / naive_s
    print(f"tasks with predictions: {n}")
    print(f"culturecode push         {push_s:7.1f} s  {push_rate:7.0f} tasks/s")
    print(f"raw SDK bulk import      {raw_s:7.1f} s  {raw_rate:7.0f} tasks/s  (baseline, one request)")
    print(f"naive 1 task/request     {naive_s:7.1f} s  {naive_rate:7.1f} tasks/s  (sample of {sample})")
    print(f"push vs naive loop       {push_rate / naive_rate:7.1f}x  (target >= 50x)")
    print(f"push time / raw import   {push_s / raw_s:7.2f}x  (target <= 1.25x)")
    print(f"idempotent re-push       {repush_s:7.1f} s  (0 imported)")

    annotate_all(studio, store, book, tmp, n)
    t = time.perf_counter()
    pulled = pull(store, settings, book, show_progress=False)
    pull_s = time.perf_counter() - t
    t = time.perf_counter()
    rerun = pull(store, settings, book, show_progress=False)
    repull_s = time.perf_counter() - t
    assert pulled.new == n and rerun.changed == 0
    print(
        f"pull {pulled.new} annotations  {pull_s:7.1f} s  ({pulled.new / pull_s:.0f} annotations/s); "
        f"rerun {repull_s:.1f} s, 0 changes"
    )


def annotate_all(studio, store: Store, book, tmp: Path, n: int) -> None:
    """A project whose every task has one annotation (imported in bulk), registered in the ledger."""
    pid = fresh_project(studio, book, "bench annotated")
    tasks = payloads(store)
    for i, task in enumerate(tasks):
        task["annotations"] = [{"result": task["predictions"][0]["result"], "lead_time": 3.0 + i % 5}]
    studio.sdk.projects.import_tasks(pid, request=tasks)
    with store.transaction():
        add_project(store, studio.url, pid, "bench annotated", "annotation", None, book.content_hash)


if __name__ == "__main__":
    main()
