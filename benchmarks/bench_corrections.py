"""How much the project's own corrections help: F1 on held-out dev text as corrections come in.

    .venv/bin/python benchmarks/bench_corrections.py                      # the configured encoder (mpnet)
    .venv/bin/python benchmarks/bench_corrections.py --base-model minilm  # ~5x faster, less accurate
    .venv/bin/python benchmarks/bench_corrections.py --retrain            # also retrain with project weighting

A classifier is trained on the example gold (examples/gold) with the configured method, as `make demo`
does. The dev set (examples/dev/dev.jsonl, a different register) is split by document into two halves: one
is held out for scoring, the other plays the project's corrections. Both halves are ingested and pre-labelled
(stored scores). At each step (0, 10, 20, 30, 45, 65 corrections by default), the first N corrections become
the workspace's gold and the project calibration runs as `culturecode pull` runs it
(pipeline/agreement/calibration.py: thresholds re-tuned once there are `classifier.calibration_min_labels`,
re-deciding the held-out segments' stored predictions); micro/macro-F1 on the held-out half are printed with
their ratio to step 0, measured in the same run. With --retrain, a second track trains a new version at each
step on the example gold plus the N corrections (each weighing `classifier.project_weight` examples, as
`retrain` does), pre-labels the held-out half with it and calibrates it too. `--shift X` moves each of the
trained model's thresholds by a random amount in [-X, X] first (seeded), to see calibration where the
thresholds are off, as they are on real text (docs/calibration.md). `--by-document` feeds the corrections one
document after another (a coder working through interviews) instead of in a random order, so the first steps
come from one or two documents.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.agreement.calibration import calibrate
from pipeline.classifier.data import Example, label_matrix, read_gold
from pipeline.classifier.metrics import code_metrics
from pipeline.classifier.predict import prelabel
from pipeline.classifier.registry import promote
from pipeline.classifier.training import train
from pipeline.config import Codebook, Settings, load_settings
from pipeline.store import Document, Segment, Store
from pipeline.store.gold import GoldLabel, replace_gold
from pipeline.store.models import get_model
from pipeline.store.predictions import PredictionRow, predictions_of, write_predictions

GOLD = ROOT / "examples" / "gold"
DEV = ROOT / "examples" / "dev" / "dev.jsonl"
STEPS = "0,10,20,30,45,65"


def split_by_document(rows: list[Example], seed: int, by_document: bool = False) -> tuple[list[int], list[int]]:
    """(held-out, corrections) row indices: whole documents, alternately, in a seeded order, so the halves are
    near equal in segments. The corrections come in a seeded random order, or (`by_document`) one document after
    another, as a coder works through interviews."""
    docs = sorted({r.document for r in rows})
    order = np.random.default_rng(seed).permutation(len(docs))
    sizes = {d: sum(r.document == d for r in rows) for d in docs}
    held: set[str] = set()
    counts = [0, 0]
    for k in order:
        doc = docs[k]
        side = 0 if counts[0] <= counts[1] else 1
        counts[side] += sizes[doc]
        if side == 0:
            held.add(doc)
    held_idx = [i for i, r in enumerate(rows) if r.document in held]
    rest = [i for i, r in enumerate(rows) if r.document not in held]
    if by_document:
        order = [str(d) for d in np.random.default_rng(seed + 1).permutation(sorted({rows[i].document for i in rest}))]
        return held_idx, sorted(rest, key=lambda i: (order.index(rows[i].document), i))
    return held_idx, [rest[k] for k in np.random.default_rng(seed + 1).permutation(len(rest))]


def ingest(store: Store, rows: list[Example]) -> list[str]:
    """The dev rows as segments (one document per `document`); their ids in row order."""
    by_doc: dict[str, list[Example]] = {}
    for row in rows:
        by_doc.setdefault(row.document, []).append(row)
    position: dict[int, str] = {}
    for doc, members in by_doc.items():
        segs = [Segment(id=f"{doc}-{p}", document_id=doc, position=p, text=r.text) for p, r in enumerate(members)]
        store.put_document(Document(doc, f"{doc}.jsonl", "jsonl", doc), segs)
        position.update({id(r): s.id for r, s in zip(members, segs, strict=True)})
    return [position[id(r)] for r in rows]


def score(store: Store, version: str, ids: list[str], rows: list[Example], codes: list[str]) -> dict:
    preds = predictions_of(store, version)
    y_pred = np.array([[c in preds[s].codes for c in codes] for s in ids], dtype=int)
    return code_metrics(label_matrix(rows, codes), y_pred, codes)


def set_corrections(store: Store, codebook: Codebook, ids: list[str], rows: list[Example]) -> None:
    with store.transaction():
        labels = [GoldLabel(s, list(r.codes), "import") for s, r in zip(ids, rows, strict=True)]
        replace_gold(store, labels, codebook.content_hash)


def calibrated(store: Store, settings: Settings, codebook: Codebook) -> str:
    result = calibrate(store, settings, codebook, refresh_studio=False)
    if result.status == "too_few_labels":
        return f"no ({result.labels} < {result.min_labels})"
    return f"{sum(c.source == 'project' for c in result.codes)} code(s) on {result.labels}"


def retrain_step(store: Store, settings: Settings, codebook: Codebook, bundled: list[Example], held: list[str]) -> str:
    """A new version on the example gold plus the workspace gold (project weighting), pre-labels the held-out
    half and is calibrated; returns the version."""
    report = train(store, settings, codebook, extra=bundled, promote=True, show_progress=False)
    prelabel(store, settings, codebook, model_version=report.version, segment_ids=held, show_progress=False)
    return report.version


def miscalibrate(store: Store, codebook: Codebook, version: str, shift: float, seed: int) -> None:
    """Move each of `version`'s own thresholds by up to `shift` either way and re-decide its stored predictions."""
    path = Path(get_model(store, version)["path"]) / "classifier.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    moves = np.random.default_rng(seed).uniform(-shift, shift, len(manifest["thresholds"]))
    manifest["thresholds"] = [
        round(float(np.clip(t + m, 0.05, 0.95)), 2) for t, m in zip(manifest["thresholds"], moves, strict=True)
    ]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    limits = dict(zip(manifest["codes"], manifest["thresholds"], strict=True))
    rows = [
        PredictionRow(p.segment_id, version, p.scores, [c for c in manifest["codes"] if p.scores[c] >= limits[c]])
        for p in predictions_of(store, version).values()
    ]
    with store.transaction():
        write_predictions(store, rows, codebook.content_hash)


def run(args: argparse.Namespace) -> list[dict]:
    overrides = {"workspace": args.workspace, "classifier.export_onnx": False}
    if args.base_model:
        overrides["classifier.base_model"] = args.base_model
    settings = load_settings(overrides=overrides)
    codebook = settings.load_codebook()
    codes = codebook.code_ids
    dev = read_gold(DEV, codebook)
    held_idx, corr_idx = split_by_document(dev, args.seed, args.by_document)
    store = Store(Path(args.workspace), create=True)
    with store.transaction():
        store.record_codebook(codebook)
    ids = ingest(store, dev)
    held_ids, held_rows = [ids[i] for i in held_idx], [dev[i] for i in held_idx]
    started = time.monotonic()
    base = train(store, settings, codebook, gold=GOLD, promote=True, show_progress=False).version
    prelabel(store, settings, codebook, model_version=base, show_progress=False)
    if args.shift:
        miscalibrate(store, codebook, base, args.shift, args.seed)
    print(
        f"trained {base} ({settings.classifier.base_model}, {settings.classifier.method}) and pre-labelled the "
        f"dev set in {time.monotonic() - started:.0f} s; held out {len(held_ids)} segments "
        f"({len({dev[i].document for i in held_idx})} documents), {len(corr_idx)} corrections",
        flush=True,
    )
    bundled = read_gold(GOLD, codebook) if args.retrain else []
    table = []
    for step in [min(int(s), len(corr_idx)) for s in args.steps.split(",")]:
        chosen = corr_idx[:step]
        set_corrections(store, codebook, [ids[i] for i in chosen], [dev[i] for i in chosen])
        promote(store, base)
        row = {"step": step, "calibration": calibrated(store, settings, codebook)}
        row.update({f"cal_{k}": v for k, v in _f1(score(store, base, held_ids, held_rows, codes)).items()})
        if args.retrain and step:
            version = retrain_step(store, settings, codebook, bundled, held_ids)
            row["retrain_calibration"] = calibrated(store, settings, codebook)
            row.update({f"re_{k}": v for k, v in _f1(score(store, version, held_ids, held_rows, codes)).items()})
        elif args.retrain:
            row.update({"retrain_calibration": "-", "re_micro": row["cal_micro"], "re_macro": row["cal_macro"]})
        table.append(row)
        print(f"  step {step}: done ({time.monotonic() - started:.0f} s)", flush=True)
    store.close()
    return table


def _f1(metrics: dict) -> dict[str, float]:
    return {"micro": metrics["micro_f1"], "macro": metrics["macro_f1"]}


def show(table: list[dict], retrain: bool) -> None:
    first = table[0]
    header = "| corrections | calibration | micro-F1 | macro-F1 | micro ratio | macro ratio |"
    if retrain:
        header += " retrain: calibration | micro-F1 | macro-F1 | micro ratio | macro ratio |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in table:
        cells = [str(row["step"]), row["calibration"], *_cells(row, first, "cal")]
        if retrain:
            cells += [row["retrain_calibration"], *_cells(row, first, "re")]
        print("| " + " | ".join(cells) + " |")


def _cells(row: dict, first: dict, track: str) -> list[str]:
    micro, macro = row[f"{track}_micro"], row[f"{track}_macro"]
    base_micro, base_macro = first["cal_micro"], first["cal_macro"]
    return [f"{micro:.3f}", f"{macro:.3f}", f"{micro / base_micro:.2f}", f"{macro / base_macro:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", default=None, help="minilm | mpnet | a local dir (default: the settings')")
    parser.add_argument("--steps", default=STEPS, help=f"corrections fed at each step (default {STEPS})")
    parser.add_argument("--retrain", action="store_true", help="also retrain at each step (project weighting)")
    parser.add_argument("--shift", type=float, default=0.0, help="move each model threshold by up to this much")
    parser.add_argument("--seed", type=int, default=3, help="the document split and the order of corrections")
    parser.add_argument("--by-document", action="store_true", help="corrections one document after another")
    parser.add_argument("--workspace", default=None, help="where the workspace goes (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-corrections-") as tmp:
        args.workspace = args.workspace or str(Path(tmp) / "ws")
        table = run(args)
    show(table, args.retrain)


if __name__ == "__main__":
    main()
