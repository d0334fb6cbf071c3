"""Labelled examples for training and evaluation: from a gold JSONL file or the workspace's
gold table; checks that say what is missing; a train/validation/test split grouped by document."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from pipeline.config import ClassifierSettings, Codebook
from pipeline.errors import CultureCodeError
from pipeline.ingest.text import read_lines
from pipeline.jsontext import loads
from pipeline.store import Store
from pipeline.store.gold import gold_segments

MIN_DOCUMENTS = 3  # one each for train, validation and test


@dataclass
class Example:
    key: str  # the segment id, or a hash of the text for examples from a file
    text: str
    codes: list[str]
    document: str = ""
    weight: float = 1.0  # training weight: the project's own labels count more than bundled examples


@dataclass
class Split:
    train: list[Example]
    validation: list[Example]
    test: list[Example]

    def summary(self) -> dict:
        return {
            name: {"segments": len(part), "documents": sorted({e.document for e in part})}
            for name, part in (("train", self.train), ("validation", self.validation), ("test", self.test))
        }


def text_key(text: str) -> str:
    return "t:" + hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def gold_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise CultureCodeError(f"{path}: no .jsonl gold files in this folder")
        return files
    if not path.is_file():
        raise CultureCodeError(f"{path}: no such gold file or folder")
    return [path]


def read_gold(path: str | Path, codebook: Codebook, need_document: bool = True) -> list[Example]:
    """Read JSONL lines with `text` and `codes` (and `document` for training)."""
    examples: list[Example] = []
    for file in gold_files(Path(path)):
        for lineno, line in read_lines(file, "gold file"):
            if line.strip():
                examples.append(_example(file, lineno, line, codebook, need_document))
    if not examples:
        raise CultureCodeError(f"{path}: the gold set is empty; it needs JSONL lines with 'text' and 'codes'")
    return examples


def _example(file: Path, lineno: int, line: str, codebook: Codebook, need_document: bool) -> Example:
    where = f"{file}:{lineno}"
    try:
        row = loads(line)
    except json.JSONDecodeError as exc:
        raise CultureCodeError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
        raise CultureCodeError(f"{where}: each line needs a non-empty 'text' string")
    codes = row.get("codes")
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise CultureCodeError(f"{where}: 'codes' must be a list of code ids (use [] for none)")
    document = row.get("document")
    if need_document and not (isinstance(document, str) and document):
        raise CultureCodeError(
            f"{where}: no 'document' field; training holds out whole documents, "
            f"so every line needs the name of the document it comes from"
        )
    key = str(row["id"]) if row.get("id") else text_key(row["text"])
    return Example(key, row["text"], codebook.check_codes(codes, where), str(document or ""))


def gold_from_store(store: Store, codebook: Codebook) -> list[Example]:
    examples = []
    for row in gold_segments(store):
        if row.codebook_hash != codebook.content_hash:
            raise CultureCodeError(
                f"gold label of segment {row.segment_id} was made with another codebook "
                f"({row.codebook_hash}); rerun `culturecode adjudicate` with the current codebook"
            )
        codes = codebook.check_codes(row.codes, f"gold label of segment {row.segment_id}")
        examples.append(Example(row.segment_id, row.text, codes, row.document_id))
    return examples


def label_matrix(examples: list[Example], code_ids: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(code_ids)}
    y = np.zeros((len(examples), len(code_ids)), dtype=np.float32)
    for row, ex in enumerate(examples):
        for code in ex.codes:
            y[row, index[code]] = 1.0
    return y


def positives(examples: list[Example], code_ids: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(code_ids, 0)
    for ex in examples:
        for code in ex.codes:
            counts[code] += 1
    return counts


def check_trainable(examples: list[Example], code_ids: list[str], min_segments: int, source: str) -> None:
    if len(examples) < min_segments:
        raise CultureCodeError(
            f"{source}: {len(examples)} labelled segment(s); training needs at least {min_segments} "
            f"from at least {MIN_DOCUMENTS} documents (more than 300 for useful F1): label more segments"
        )
    docs = {e.document for e in examples}
    if len(docs) < MIN_DOCUMENTS:
        raise CultureCodeError(
            f"{source}: all labelled segments come from {len(docs)} document(s) ({', '.join(sorted(docs))}); "
            f"the held-out split is grouped by document and needs at least {MIN_DOCUMENTS}: "
            f"label segments from more documents"
        )
    if not any(positives(examples, code_ids).values()):
        raise CultureCodeError(f"{source}: no segment has any code; label some positives first")


def split_by_document(
    examples: list[Example], settings: ClassifierSettings, test_from: set[str] | None = None
) -> Split:
    """Train/validation/test with whole documents on one side only (seeded). `test_from`: the documents the test
    split may take (a retrain holds out the project's own documents, never the prior examples the model it is
    compared with was trained on, so all of those train); None, or fewer than two of them present (none would be
    left to train on): any."""
    groups = np.array([e.document for e in examples])
    n_docs = len(set(groups))
    if test_from is not None and len(test_from & set(groups)) < 2:
        test_from = None
    eligible = np.array([test_from is None or g in test_from for g in groups], dtype=bool)
    n_eligible = len(set(groups[eligible]))
    n_test = min(max(1, round(settings.test_fraction * n_eligible)), n_eligible - 1, n_docs - 2)
    pool = np.arange(len(examples))[eligible]
    kept, test = _group_split(groups[pool], pool, n_test, settings.seed)
    rest = np.sort(np.concatenate([np.arange(len(examples))[~eligible], kept]))
    n_val = min(max(1, round(settings.validation_fraction * n_docs)), len(set(groups[rest])) - 1)
    train, val = _group_split(groups[rest], rest, n_val, settings.seed + 1)
    return Split([examples[i] for i in train], [examples[i] for i in val], [examples[i] for i in test])


def _group_split(groups: np.ndarray, index: np.ndarray, n_groups: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_groups, random_state=seed)
    keep, held = next(splitter.split(index, groups=groups))
    return index[keep], index[held]
