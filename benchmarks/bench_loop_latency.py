"""Benchmark: latency of the live loop, from the 20th new annotation in a real Label Studio to refreshed
predictions on the tasks nobody has annotated, with `labelled` segments already annotated (head method).

    .venv/bin/python benchmarks/bench_loop_latency.py                   # 1,000 labelled segments
    .venv/bin/python benchmarks/bench_loop_latency.py --labelled 5000
    .venv/bin/python benchmarks/bench_loop_latency.py --cold --profile /tmp/retrain.prof

Starts its own Label Studio (or BENCH_STUDIO_WORKSPACE's) and builds a workspace from the example gold
(examples/gold/*.jsonl, cycled when more rows are needed): `labelled` segments whose tasks carry one annotation
each (bulk-imported, then pulled), 20 fresh tasks and `--remaining` unannotated ones. The first model is
trained on a small sample of the gold with its codes permuted, so the loop's model beats it and is promoted
(a retrain that keeps the current model refreshes nothing). Then `culturecode serve` starts (start_loop with
the workspace's settings: every 20 annotations, default debounce), 20 annotations are submitted through the
API, and the benchmark polls until every remaining task shows the new model's prediction. Target: <= 120 s
on two cores with the head method.

As in a running loop, the previous retrain (run in the setup, not promoted) left the labelled texts' embeddings in
the workspace's embedding cache, so the retrain encodes only texts it has not seen; `--cold` skips it (the first
retrain after the cache appears: every labelled text is encoded). `--profile FILE` profiles the retrain.
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pull import label_studio, timed

from pipeline.classifier import prelabel, train
from pipeline.config import Codebook, Settings, load_codebook
from pipeline.gold import adjudicate
from pipeline.loop.service import start_loop
from pipeline.loop.trigger import retrain_job, workspace_retrain
from pipeline.store import Document, Segment, Store
from pipeline.store.annotations import record_tasks, task_ledger
from pipeline.studio import connect, labeling, pull, push

ROOT = Path(__file__).resolve().parent.parent
CODEBOOK = ROOT / "configs" / "codebooks" / "police_culture.yaml"
GOLD = sorted((ROOT / "examples" / "gold").glob("*.jsonl"))
FRESH = 20  # the annotations that trigger the retrain (loop.every)
TARGET_S = 120.0


def gold_rows(n: int) -> list[dict]:
    """`n` example-gold rows in document order; cycled copies get their own document ids and a marker."""
    base = [json.loads(line) for path in GOLD for line in path.read_text().splitlines() if line.strip()]
    out = []
    for i in range(n):
        row, lap = base[i % len(base)], i // len(base)
        if lap:
            row = {**row, "text": f"{row['text']} ({lap})", "document": f"{row['document']}-{lap}"}
        out.append(row)
    return out


def build_workspace(path: Path, rows: list[dict], book: Codebook) -> tuple[Store, list[str]]:
    """One segment per row, grouped into their documents; returns the segment ids in row order."""
    store = Store(path)
    by_doc: dict[str, list[dict]] = {}
    for row in rows:
        by_doc.setdefault(row["document"], []).append(row)
    ids: dict[int, str] = {}
    with store.transaction():
        store.record_codebook(book)
        for d, (name, turns) in enumerate(by_doc.items()):
            doc = Document(name, f"{name}.txt", "txt", f"h{d}")
            segs = [
                Segment(f"{name}-{t:03d}", name, t, r["text"], speaker=r.get("speaker")) for t, r in enumerate(turns)
            ]
            store.put_document(doc, segs)
            for r, seg in zip(turns, segs, strict=True):
                ids[id(r)] = seg.id
    return store, [ids[id(r)] for r in rows]


def first_model(store: Store, settings: Settings, book: Codebook, rows: list[dict], tmp: Path) -> str:
    """A weak current model: trained on 200 gold rows whose codes are permuted."""
    rng = random.Random(7)
    codes = list(book.code_ids)
    perm = dict(zip(codes, rng.sample(codes, len(codes)), strict=True))
    sample = tmp / "permuted-gold.jsonl"
    with sample.open("w") as out:
        for row in rows[:200]:
            out.write(json.dumps({**row, "codes": sorted(perm[c] for c in row["codes"])}) + "\n")
    return train(store, settings, book, gold=sample, show_progress=False).version


def import_labelled(store: Store, settings: Settings, project_id: int, segs: list[str], codes: dict, version: str):
    """The labelled segments' tasks, each with one annotation, in one bulk import; recorded in the task ledger."""
    studio = connect(settings)
    by_id = {s.id: s for s in store.segments()}
    tasks = []
    for seg_id in segs:
        seg = by_id[seg_id]
        before, after = store.neighbours(seg)
        result = labeling.prediction(codes[seg_id], {}, version)["result"]
        tasks.append(
            {
                "data": labeling.task_data(seg, before, after, None, version),
                "annotations": [{"result": result, "lead_time": 3.0}],
            }
        )
    studio.sdk.projects.import_tasks(project_id, request=tasks)
    listed = studio.sdk.tasks.list(project=project_id, fields="task_only", include="id,data", page_size=5000)
    wanted = set(segs)
    with store.transaction():
        record_tasks(
            store,
            studio.url,
            project_id,
            [(int(t.id), t.data["segment_id"], version) for t in listed if t.data["segment_id"] in wanted],
        )


def setup(settings: Settings, labelled: int, remaining: int, tmp: Path, cold: bool):
    book = load_codebook(CODEBOOK)
    rows = gold_rows(labelled + FRESH + remaining)
    store, seg_ids = build_workspace(Path(settings.workspace), rows, book)
    codes = {s: r["codes"] for s, r in zip(seg_ids, rows, strict=True)}
    first = first_model(store, settings, book, rows, tmp)
    todo = seg_ids[labelled:]
    prelabel(store, settings, book, show_progress=False, segment_ids=todo)
    project_id = push(store, settings, book, segment_ids=todo, show_progress=False).projects[0].id
    import_labelled(store, settings, project_id, seg_ids[:labelled], codes, first)
    pulled = pull(store, settings, book, show_progress=False)
    assert pulled.new == labelled, pulled
    if not cold:  # the loop's previous retrain, not promoted: its embeddings are in the cache, as in a running loop
        adjudicate(store, book, method="majority")
        train(store, settings, book, promote=False, show_progress=False)
    ledger = {r["segment_id"]: r["task_id"] for r in task_ledger(store, pulled.url, project_id)}
    store.close()
    fresh = [(ledger[s], codes[s]) for s in todo[:FRESH]]
    rest = [ledger[s] for s in todo[FRESH:]]
    return book, first, project_id, fresh, rest


def versions_shown(settings: Settings, project_id: int, task_ids: list[int]) -> dict[int, set[str]]:
    """The model versions of the predictions Label Studio holds for `task_ids`."""
    wanted = set(task_ids)
    listed = connect(settings).sdk.tasks.list(project=project_id, fields="all", page_size=1000)
    tasks = [t.model_dump() for t in listed]
    return {t["id"]: {p["model_version"] for p in (t["predictions"] or [])} for t in tasks if t["id"] in wanted}


def wait_refreshed(settings: Settings, project_id: int, rest: list[int], done: queue.Queue, timeout: float):
    """Wait for the retrain the 20 annotations start (the loop's callback; polling the workspace database
    would compete with the retrain for it), then poll Label Studio until every remaining task shows the
    promoted model's prediction; returns the retrain's record and the time (time.perf_counter) that was seen."""
    deadline = time.perf_counter() + timeout
    try:
        record = done.get(timeout=timeout)
    except queue.Empty:
        raise SystemExit(f"no retrain finished within {timeout:.0f} s") from None
    if record.get("error") or not record.get("promoted"):
        raise SystemExit(f"the retrain did not refresh the predictions: {record}")
    version = record["current_model"]
    while time.perf_counter() < deadline:
        if all(version in shown for shown in versions_shown(settings, project_id, rest).values()):
            return record, time.perf_counter()
        time.sleep(0.5)
    raise SystemExit(f"the remaining tasks did not show {version} within {timeout:.0f} s")


def profiled(retrain, path: Path):
    """The loop's retrain under cProfile: the stats go to `path`, the top 30 by cumulative time to stderr."""
    import cProfile
    import pstats

    def run():
        profile = cProfile.Profile()
        try:
            return profile.runcall(retrain)
        finally:
            profile.dump_stats(str(path))
            pstats.Stats(str(path), stream=sys.stderr).sort_stats("cumulative").print_stats(30)

    return run


def run(settings: Settings, args, tmp: Path) -> None:
    labelled, remaining, timeout = args.labelled, args.remaining, args.timeout
    (book, first, project_id, fresh, rest), setup_s = timed(
        lambda: setup(settings, labelled, remaining, tmp, args.cold)
    )
    print(
        f"workspace: {labelled} labelled, {len(fresh)} fresh, {len(rest)} unannotated tasks; "
        f"first model {first} (set up in {setup_s:.0f} s)",
        flush=True,
    )
    done: queue.Queue = queue.Queue()
    retrain = workspace_retrain(settings, book)  # in a child process, as `serve` runs it
    if args.profile:  # in this process, so that the profile sees the retrain's own calls
        retrain = profiled(lambda: retrain_job(settings, book), Path(args.profile))
    running = start_loop(settings, book, port=0, retrain=retrain, on_retrain=done.put)
    try:
        sdk = connect(settings).sdk
        for task_id, codes in fresh:
            result = labeling.prediction(codes, {}, first)["result"]
            sdk.annotations.create(id=task_id, result=result, lead_time=3.0)
        t0 = time.perf_counter()
        last, t1 = wait_refreshed(settings, project_id, rest, done, timeout)
    finally:
        running.close()
    version = last["current_model"]
    latency = t1 - t0
    print(
        f"loop: every {settings.loop.every} annotations, debounce {settings.loop.debounce_seconds} s, "
        f"method {settings.loop.method}, embedding cache {'cold' if args.cold else 'warm (previous retrain)'}"
    )
    print(
        f"retrain: {last.get('labels')} labels, macro F1 {last.get('previous_macro_f1')} -> {last.get('macro_f1')}, "
        f"{first} -> {version}, {last.get('rescored')} segment(s) re-scored"
    )
    print(f"20th annotation -> {len(rest)} tasks refreshed   {latency:7.1f} s")
    print(f"latency / {TARGET_S:.0f} s target              {latency / TARGET_S:7.2f}x  (target <= 1x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", type=int, default=1000, help="segments already annotated")
    parser.add_argument("--remaining", type=int, default=500, help="unannotated tasks whose predictions refresh")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    parser.add_argument("--cold", action="store_true", help="no previous retrain: the embedding cache starts empty")
    parser.add_argument("--profile", help="write the retrain's cProfile stats to this file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    overrides = {
        "classifier.method": "head",
        "classifier.export_onnx": False,
        "loop.method": "head",
        "loop.every": FRESH,
        "admission.enabled": False,
    }
    with label_studio(tmp, **overrides) as settings:
        run(settings, args, tmp)


if __name__ == "__main__":
    main()
