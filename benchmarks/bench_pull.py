"""Benchmark: culturecode pull vs Label Studio's raw JSON export of the same project, in one run,
against a real local Label Studio, and a pull with nothing new.

    .venv/bin/python benchmarks/bench_pull.py                 # 10,000 annotated tasks
    .venv/bin/python benchmarks/bench_pull.py --tasks 2000

Starts its own Label Studio in a temporary directory (set BENCH_STUDIO_WORKSPACE to the workspace of a
running `culturecode studio start` to reuse that one), imports N tasks with one annotation each in one
bulk import, then times (a) the raw export alone (the export call a full pull makes), (b) `pull --full`
(listing, export, matching, writing the workspace) and (c) a pull with nothing new on the server.
Targets: full pull >= 0.8x the raw export's speed; nothing new <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_push import CODEBOOK, annotate_all, build_workspace, free_port

from pipeline.config import Settings, load_codebook, load_settings
from pipeline.studio import connect, pull, server
from pipeline.studio.changes import export_all
from pipeline.studio.projects import stored_projects


@contextmanager
def label_studio(tmp: Path, **overrides) -> Iterator[Settings]:
    """A Label Studio for the benchmark (its own, or BENCH_STUDIO_WORKSPACE's) and settings for a
    workspace under `tmp` that reach it through --url and a 0600 key file."""
    reuse = os.environ.get("BENCH_STUDIO_WORKSPACE")
    if reuse:
        port = json.loads((Path(reuse) / "studio" / server.STATE).read_text())["port"]
        srv = load_settings(overrides={"workspace": reuse, "studio.port": port})
    else:
        srv = load_settings(overrides={"workspace": str(tmp / "server"), "studio.port": free_port()})
    t0 = time.perf_counter()
    info = server.start_server(srv)
    how = f"started in {time.perf_counter() - t0:.0f} s" if info.started else "reused"
    print(f"Label Studio at {info.url} ({how})", flush=True)
    key = tmp / "key"
    key.write_text(server.credentials(srv)["api_key"])
    key.chmod(0o600)
    base = {
        "workspace": str(tmp / "ws"),
        "studio.url": info.url,
        "studio.api_key_file": str(key),
        "studio.api_key_env": "BENCH_UNSET_KEY",
        "studio.timeout": 600,
    }
    try:
        yield load_settings(overrides={**base, **overrides})
    finally:
        if info.started:
            server.stop_server(srv)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run(settings: Settings, n: int, tmp: Path) -> None:
    book = load_codebook(CODEBOOK)
    store = build_workspace(tmp / "ws", n, book)
    studio = connect(settings)
    _, setup_s = timed(lambda: annotate_all(studio, store, book, tmp, n))
    (project,) = stored_projects(store, studio.url)
    print(f"{n} tasks with one annotation each imported in {setup_s:.0f} s (one bulk import)", flush=True)

    exported, raw_s = timed(lambda: export_all(studio, project["id"]))
    assert exported is not None and len(exported) == n
    full, full_s = timed(lambda: pull(store, settings, book, show_progress=False, full=True))
    assert full.full and full.new == n, full
    again, again_s = timed(lambda: pull(store, settings, book, show_progress=False))
    assert not again.full and again.fetched_tasks == 0 and again.changed == 0, again

    raw_rate, full_rate = n / raw_s, n / full_s
    print(f"annotated tasks: {n}")
    print(f"raw JSON export (alone)   {raw_s:7.1f} s  {raw_rate:7.0f} annotations/s  (baseline)")
    print(f"culturecode pull --full   {full_s:7.1f} s  {full_rate:7.0f} annotations/s")
    print(f"pull, nothing new         {again_s:7.1f} s  (0 tasks fetched)")
    print(f"full pull speed / raw     {full_rate / raw_rate:7.2f}x  (target >= 0.8x)")
    print(f"nothing new / 2 s target  {again_s / 2:7.2f}x  (target <= 1x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="annotated tasks (a multiple of 100)")
    args = parser.parse_args()
    if args.tasks < 100 or args.tasks % 100:
        parser.error("--tasks must be a positive multiple of 100")
    tmp = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    with label_studio(tmp) as settings:
        run(settings, args.tasks, tmp)


if __name__ == "__main__":
    main()
