"""The gold dataset: a Hugging Face DatasetDict (train/validation/test split by document) plus flat
Parquet/JSONL/CSV files and a dataset card (README.md).

Annotator IDs are pseudonymised (annotator_1, ...) unless asked otherwise; the numbering follows
a hash of the ID, so it does not reveal the alphabetical order of names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.agreement.ratings import Ratings, load_ratings
from pipeline.agreement.report import compute_agreement
from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.gold.card import dataset_card
from pipeline.ingest.metadata import field_names, segment_fields
from pipeline.outputs import staged_folder, writable_folder
from pipeline.store import Store
from pipeline.store.annotations import live_annotations
from pipeline.store.gold import count_gold, gold_documents, gold_segments
from pipeline.store.predictions import all_prediction_codes

FORMATS = ("hf", "parquet", "jsonl", "csv")
SPLITS = ("train", "validation", "test")


@dataclass
class ExportReport:
    out_dir: str
    rows: int
    splits: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def features(codebook: Codebook, fields: Sequence[str] = ()):
    """The dataset's features; `fields`: the speaker and document metadata columns (`meta set`), strings."""
    from datasets import Features, List, Value

    return Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            "document": Value("string"),
            "position": Value("int32"),
            "speaker": Value("string"),
            **{name: Value("string") for name in fields},
            "gold_codes": List(Value("string")),
            "gold_code_names": List(Value("string")),
            "labels": List(Value("int8")),
            "gold_method": Value("string"),
            "gold_votes": Value("string"),
            "annotations": List(
                {
                    "annotator": Value("string"),
                    "codes": List(Value("string")),
                    "changed_prelabel": Value("bool"),
                    "prelabel_version": Value("string"),
                }
            ),
            "n_annotators": Value("int32"),
            "agreement": Value("float64"),
            "exact_agreement": Value("float64"),
            "prelabel_version": Value("string"),
            "split": Value("string"),
        }
    )


def split_documents(documents: list[str], validation: float, test: float, seed: int) -> dict[str, str]:
    """Whole documents go to one split; with 3+ documents every split gets at least one."""
    order = sorted(documents, key=lambda d: hashlib.sha1(f"{seed}:{d}".encode()).hexdigest())
    n = len(order)
    n_test, n_val = round(n * test), round(n * validation)
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    n_test, n_val = min(n_test, max(n - 1, 0)), min(n_val, max(n - 1 - n_test, 0))
    names = ["test"] * n_test + ["validation"] * n_val + ["train"] * (n - n_test - n_val)
    return dict(zip(order, names, strict=True))


def pseudonyms(annotators: list[str], keep_ids: bool) -> dict[str, str]:
    if keep_ids:
        return {a: a for a in annotators}
    order = sorted(annotators, key=lambda a: hashlib.sha256(a.encode("utf-8")).hexdigest())
    return {a: f"annotator_{i}" for i, a in enumerate(order, 1)}


def item_agreement(r: Ratings, i: int) -> tuple[float | None, float | None]:
    """Mean per-code agreement over annotator pairs, and the share of pairs with identical sets."""
    coders = np.flatnonzero(r.rated[i])
    if len(coders) < 2:
        return None, None
    pairs = list(combinations(coders, 2))
    same = [(r.labels[i, a] == r.labels[i, b]) for a, b in pairs]
    return float(np.mean(same)), float(np.mean([s.all() for s in same]))


def _prelabels(store: Store) -> dict[tuple[str, str], list[str]]:
    return {(seg, version): codes for seg, version, codes in all_prediction_codes(store)}


def _versions(store: Store) -> dict[tuple[str, str], str | None]:
    """The pre-label version each annotator saw, from the latest annotation (annotation projects)."""
    return {(a.segment_id, a.annotator): a.prediction_version for a in live_annotations(store)}


def _annotations_of(
    seg: str,
    i: int,
    ratings: Ratings,
    names: dict[str, str],
    versions: dict[tuple[str, str], str | None],
    prelabels: dict[tuple[str, str], list[str]],
) -> list[dict[str, Any]]:
    """Each annotator's codes on segment `seg` (row `i` of `ratings`), the pre-label version they saw and whether
    they changed it."""
    annotations: list[dict[str, Any]] = []
    for j, who in enumerate(ratings.annotators):
        if not ratings.rated[i, j]:
            continue
        chosen = [c for c, on in zip(ratings.codes, ratings.labels[i, j], strict=True) if on]
        version = versions.get((seg, who))
        pre = prelabels.get((seg, version)) if version else None
        annotations.append(
            {
                "annotator": names[who],
                "codes": chosen,
                "prelabel_version": version,
                "changed_prelabel": None if pre is None else sorted(pre) != sorted(chosen),
            }
        )
    return annotations


def gold_rows(
    store: Store, codebook: Codebook, ratings: Ratings, names: dict[str, str], splits: dict[str, str]
) -> list[dict[str, Any]]:
    index = {item: i for i, item in enumerate(ratings.items)}
    prelabels, versions = _prelabels(store), _versions(store)
    code_names = {c.id: c.name for c in codebook.codes}
    fields = segment_fields(store)  # speaker and document metadata, one column each (`meta set`, headers)
    field_columns = field_names(fields)
    rows = []
    for g in gold_segments(store):
        seg, codes, doc = g.segment_id, g.codes, g.document_id
        i = index.get(seg)
        annotations = [] if i is None else _annotations_of(seg, i, ratings, names, versions, prelabels)
        agree, exact = item_agreement(ratings, i) if i is not None else (None, None)
        seen = [a["prelabel_version"] for a in annotations if a["prelabel_version"]]
        rows.append(
            {
                "id": seg,
                "text": g.text,
                "document": doc,
                "position": g.position,
                "speaker": g.speaker,
                **{name: fields.get(seg, {}).get(name) for name in field_columns},
                "gold_codes": codes,
                "gold_code_names": [code_names[c] for c in codes],
                "labels": [int(c in codes) for c in codebook.code_ids],
                "gold_method": g.method,
                "gold_votes": g.votes,
                "annotations": annotations,
                "n_annotators": len(annotations),
                "agreement": agree,
                "exact_agreement": exact,
                "prelabel_version": max(set(seen), key=seen.count) if seen else None,
                "split": splits[doc],
            }
        )
    return rows


def _flat(rows: list[dict[str, Any]], nested_as_json: bool) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if nested_as_json:
        for col in ("gold_codes", "gold_code_names", "labels", "annotations"):
            frame[col] = [json.dumps(v, ensure_ascii=False) for v in frame[col]]
    return frame


def to_dataset(rows: list[dict[str, Any]], codebook: Codebook, *, split: str | None = None):
    """The gold rows (of one split, when given) as a `datasets.Dataset` with the export's features."""
    from datasets import Dataset

    base = set(features(codebook))
    feats = features(codebook, list(dict.fromkeys(k for r in rows for k in r if k not in base)))
    chosen = [r for r in rows if split is None or r["split"] == split]
    return Dataset.from_dict({k: [r[k] for r in chosen] for k in feats}, features=feats)


def gold_records(
    store: Store, settings: Settings, codebook: Codebook, *, keep_annotator_ids: bool = False
) -> tuple[list[dict[str, Any]], Ratings, dict[str, str]]:
    """The gold dataset's rows, one per gold segment, as `export` writes them; with the ratings they were read
    from and the split of each document."""
    if count_gold(store) == 0:
        raise CultureCodeError(f"no gold labels in {store.workspace}: run `culturecode adjudicate` first")
    ratings = load_ratings(store, codebook)
    names = pseudonyms(ratings.annotators, keep_annotator_ids)
    cfg = settings.agreement
    splits = split_documents(gold_documents(store), cfg.export_validation_fraction, cfg.export_test_fraction, cfg.seed)
    return gold_rows(store, codebook, ratings, names, splits), ratings, splits


def write_files(rows: list[dict[str, Any]], codebook: Codebook, formats: list[str], out: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    if "hf" in formats:
        from datasets import DatasetDict, disable_progress_bars, enable_progress_bars

        dd = DatasetDict({name: to_dataset(rows, codebook, split=name) for name in SPLITS})
        disable_progress_bars()
        try:
            dd.save_to_disk(str(out / "hf"))
        finally:
            enable_progress_bars()
        files["hf"] = str(out / "hf")
    if "parquet" in formats:
        _flat(rows, nested_as_json=False).to_parquet(out / "gold.parquet", index=False)
        files["parquet"] = str(out / "gold.parquet")
    if "jsonl" in formats:
        with (out / "gold.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        files["jsonl"] = str(out / "gold.jsonl")
    if "csv" in formats:
        _flat(rows, nested_as_json=True).to_csv(out / "gold.csv", index=False)
        files["csv"] = str(out / "gold.csv")
    return files


def export(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    formats: list[str] | None = None,
    out_dir: str | Path | None = None,
    keep_annotator_ids: bool = False,
) -> ExportReport:
    """Write the gold dataset (all formats by default) and its dataset card to `out_dir`."""
    formats = list(formats or FORMATS)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise CultureCodeError(f"--format {', '.join(bad)} is not one of {', '.join(FORMATS)}")
    if count_gold(store) == 0:
        raise CultureCodeError(f"no gold labels in {store.workspace}: run `culturecode adjudicate` first")
    stamp = datetime.now(UTC).date().isoformat()
    out = writable_folder(Path(out_dir) if out_dir else store.workspace / "exports" / f"gold-{stamp}", "gold dataset")
    rows, ratings, splits = gold_records(store, settings, codebook, keep_annotator_ids=keep_annotator_ids)
    cfg = settings.agreement
    agreement = compute_agreement(ratings, bootstrap=cfg.bootstrap, seed=cfg.seed)
    with store.transaction(), store.run("export", {"formats": formats, "out": str(out)}) as summary:
        with staged_folder(out, "gold dataset") as stage:  # all files or none: a failed write leaves no half
            written = write_files(rows, codebook, formats, stage)
            (stage / "README.md").write_text(
                dataset_card(store, codebook, rows, agreement, keep_annotator_ids), encoding="utf-8"
            )
        files = {kind: str(out / Path(path).name) for kind, path in written.items()}
        files["card"] = str(out / "README.md")
        report = ExportReport(
            str(out),
            len(rows),
            {s: sum(r["split"] == s for r in rows) for s in SPLITS},
            {s: sum(v == s for v in splits.values()) for s in SPLITS},
            files,
        )
        summary.update(rows=report.rows, splits=report.splits, out=report.out_dir)
    return report
