"""Who coded what: annotations from the workspace or from a CSV/JSONL file as one `Ratings` array.

Only annotation projects count (review-project decisions are the adjudicator's, not a rater's);
skipped and deleted annotations are left out; when one annotator coded a segment twice (two
projects, or an edit after a pull) the latest annotation wins.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import Codebook
from pipeline.errors import CultureCodeError, shorten
from pipeline.ingest.text import read_lines
from pipeline.jsontext import loads
from pipeline.store import Store
from pipeline.store.annotations import Annotation, live_annotations
from pipeline.store.codebooks import annotation_codebook_hashes, codebook_versions
from pipeline.store.predictions import all_prediction_codes

NO_CODE = "(no code)"
NO_ROUND = "(no pre-label)"


@dataclass
class Record:
    item: str
    annotator: str
    codes: list[str]
    round: str | None = None


@dataclass
class Ratings:
    """labels[i, a, c]: annotator a ticked code c on item i; rated[i, a]: a coded item i at all."""

    items: list[str]
    annotators: list[str]
    codes: list[str]
    labels: np.ndarray
    rated: np.ndarray
    single_choice: bool = False
    rounds: np.ndarray | None = None  # (items, annotators) round names, '' where not rated
    names: dict[str, str] = field(default_factory=dict)  # code id -> display name

    @property
    def n_items(self) -> int:
        return len(self.items)

    def binary(self, c: int) -> np.ndarray:
        """One code as a units x raters matrix of 0/1 with NaN where not coded."""
        out = self.labels[:, :, c].astype(np.float64)
        out[~self.rated] = np.nan
        return out

    def categories(self) -> tuple[np.ndarray, list[str]]:
        """Single-choice data as category indices (NaN missing); an empty choice is its own category."""
        k = len(self.codes)
        cats = np.where(self.labels.any(axis=2), self.labels.argmax(axis=2), k).astype(np.float64)
        cats[~self.rated] = np.nan
        names = list(self.codes)
        if np.nanmax(cats, initial=-1) == k:
            names.append(NO_CODE)
        return cats, names

    def subset(self, rated: np.ndarray) -> "Ratings":
        """The same data with only the given (item, annotator) cells kept, empty items dropped."""
        keep = np.any(rated, axis=1)
        return Ratings(
            [i for i, k in zip(self.items, keep, strict=True) if k],
            self.annotators,
            self.codes,
            self.labels[keep],
            rated[keep],
            self.single_choice,
            None if self.rounds is None else self.rounds[keep],
            self.names,
        )


def from_records(
    records: Iterable[Record], codes: list[str], single_choice: bool = False, names: dict[str, str] | None = None
) -> Ratings:
    """Build the arrays; a later record for the same (item, annotator) replaces an earlier one."""
    latest: dict[tuple[str, str], Record] = {}
    for rec in records:
        latest[(rec.item, rec.annotator)] = rec
    items = sorted({k[0] for k in latest})
    annotators = sorted({k[1] for k in latest})
    row = {item: i for i, item in enumerate(items)}
    col = {a: j for j, a in enumerate(annotators)}
    code_index = {c: k for k, c in enumerate(codes)}
    labels = np.zeros((len(items), len(annotators), len(codes)), dtype=bool)
    rated = np.zeros((len(items), len(annotators)), dtype=bool)
    rounds = np.full((len(items), len(annotators)), "", dtype=object)
    for (item, annotator), rec in latest.items():
        i, j = row[item], col[annotator]
        rated[i, j] = True
        rounds[i, j] = rec.round or NO_ROUND
        if single_choice and len(rec.codes) > 1:
            raise CultureCodeError(
                f"item '{shorten(item)}', annotator '{shorten(annotator)}': {len(rec.codes)} codes "
                f"({shorten(', '.join(rec.codes))}) "
                f"in single-choice data; give one code per item, or treat the data as multi-label "
                f"(no --single-choice; single_choice: false in the codebook)"
            )
        for code in rec.codes:
            labels[i, j, code_index[code]] = True
    return Ratings(items, annotators, list(codes), labels, rated, single_choice, rounds, names or {})


# --------------------------------------------------------------------------- from the workspace


def store_records(
    store: Store,
    codebook: Codebook,
    annotators: list[str] | None = None,
    since: str | None = None,
    documents: list[str] | None = None,
    codebook_hash: str | None = None,
) -> list[Record]:
    """Live annotations (annotation projects; not skipped, not deleted), oldest edit first; only those made with
    `codebook_hash` when given. Read with a codebook version the workspace recorded (`culturecode recode`), the
    annotations made under another version lose the codes it no longer has instead of being refused."""
    made_with = set(annotation_codebook_hashes(store))
    recorded = {v.hash for v in codebook_versions(store)}
    edited = codebook.content_hash in recorded and bool(made_with - {codebook.content_hash})
    known = set(codebook.code_ids)

    def codes_of(a: Annotation) -> list[str]:
        if edited:
            return [c for c in a.codes if c in known]
        return codebook.check_codes(a.codes, f"annotation {a.annotation_id} of segment {a.segment_id}")

    return [
        Record(a.segment_id, a.annotator, codes_of(a), a.prediction_version)
        for a in live_annotations(store, annotators, documents, since, codebook_hash)
    ]


def load_ratings(
    store: Store,
    codebook: Codebook,
    annotators: list[str] | None = None,
    since: str | None = None,
    documents: list[str] | None = None,
) -> Ratings:
    """The workspace's annotations (annotation projects only) as a Ratings array."""
    records = store_records(store, codebook, annotators, since, documents)
    if not records:
        raise CultureCodeError(
            f"no annotations in {store.workspace} match these filters: run `culturecode pull` first "
            f"or loosen --annotators/--since/--documents"
        )
    return from_records(records, codebook.code_ids, codebook.single_choice, {c.id: c.name for c in codebook.codes})


def model_labels(store: Store, ratings: Ratings) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each model version's labels on the rated items: {version: (labels (I, C), has_prediction (I,))}."""
    index = {item: i for i, item in enumerate(ratings.items)}
    code_index = {c: k for k, c in enumerate(ratings.codes)}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for seg, version, codes in all_prediction_codes(store):
        if seg not in index:
            continue
        labels, has = out.setdefault(
            version, (np.zeros((ratings.n_items, len(ratings.codes)), bool), np.zeros(ratings.n_items, bool))
        )
        has[index[seg]] = True
        for code in codes:
            if code in code_index:
                labels[index[seg], code_index[code]] = True
    return out


# --------------------------------------------------------------------------- from a file
# Agreement figures are published: a row that would silently change them (a blank annotator who
# becomes an extra rater, a second opinion of the same annotator, a missing codes cell read as
# "no code") is refused with its line number rather than guessed at.

FIELDS = ("item", "annotator", "codes")


def _split_codes(value: object, where: str) -> list[str]:
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise CultureCodeError(f"{where}: 'codes' must be a list of code ids (strings); use [] for no code")
        return [v.strip() for v in value if v.strip()]
    if not isinstance(value, str):
        kind = "null" if value is None else f"a {type(value).__name__}"
        raise CultureCodeError(
            f"{where}: 'codes' is {kind}; give a list of code ids or a ';'-separated text ([] or '' for no code)"
        )
    text = value.strip()
    if text.startswith("["):
        try:
            return _split_codes(loads(text), where)
        except json.JSONDecodeError:
            raise CultureCodeError(f"{where}: 'codes' looks like a JSON list but is not valid JSON") from None
    return [c.strip() for c in text.split(";") if c.strip()]


def _name(row: dict, key: str, where: str) -> str:
    """The item or annotator of a row: a non-blank text (or a whole number, as JSON may give an item)."""
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CultureCodeError(
            f"{where}: '{key}' must be a text, not {'null' if value is None else type(value).__name__}"
        )
    text = str(value).strip()
    if not text:
        raise CultureCodeError(f"{where}: the '{key}' cell is blank; every row names its {key}")
    return text


def _jsonl_rows(path: Path) -> Iterable[tuple[str, object]]:
    for n, line in read_lines(path, "annotation file"):
        if line.strip():
            try:
                yield f"{path}:{n}", loads(line)
            except json.JSONDecodeError as exc:
                raise CultureCodeError(f"{path}:{n}: not valid JSON ({exc.msg})") from None


def _csv_rows(path: Path) -> Iterable[tuple[str, object]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader((line for _, line in read_lines(path, "annotation file", keep_ends=True)), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        missing = [f for f in FIELDS if f not in header]
        if missing:
            raise CultureCodeError(
                f"{path}:1: no column {', '.join(repr(m) for m in missing)} (found: {shorten(', '.join(header))}); "
                f"the first row must name the columns 'item', 'annotator' and 'codes'"
            )
        for cells in reader:
            where = f"{path}:{reader.line_num}"
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise CultureCodeError(
                    f"{where}: {len(cells)} cell(s) where the header has {len(header)}; "
                    f"leave the codes cell empty for 'no code', but keep its separator"
                )
            yield where, dict(zip(header, cells, strict=True))
    except csv.Error as exc:
        raise CultureCodeError(f"{path}:{reader.line_num}: not a readable CSV row ({shorten(exc)})") from None


def _rows(path: Path) -> Iterable[tuple[str, object]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_rows(path)
    if suffix in (".csv", ".tsv"):
        return _csv_rows(path)
    raise CultureCodeError(f"{path}: --input must be a .csv, .tsv or .jsonl file")


def _record(where: str, row: object, codebook: Codebook | None) -> Record:
    if not isinstance(row, dict) or not set(FIELDS) <= set(row):
        raise CultureCodeError(f"{where}: needs the fields 'item', 'annotator' and 'codes'")
    codes = _split_codes(row["codes"], where)
    if codebook is not None:
        codes = codebook.check_codes(codes, where)
    round_ = row.get("round")
    return Record(_name(row, "item", where), _name(row, "annotator", where), codes, str(round_) if round_ else None)


def _unique(records: list[tuple[str, Record]]) -> list[Record]:
    """One record per (item, annotator): an exact repeat is dropped, a different second opinion refused."""
    first: dict[tuple[str, str], tuple[str, Record]] = {}
    for where, rec in records:
        key = (rec.item, rec.annotator)
        if key not in first:
            first[key] = (where, rec)
        elif sorted(first[key][1].codes) != sorted(rec.codes):
            raise CultureCodeError(
                f"{where}: annotator '{shorten(rec.annotator)}' coded item '{shorten(rec.item)}' again with other "
                f"codes than at line {first[key][0].rsplit(':', 1)[1]}; keep one row per item and annotator"
            )
    return [rec for _, rec in first.values()]


def read_input(path: str | Path, codebook: Codebook | None = None, single_choice: bool = False) -> Ratings:
    """Annotations made elsewhere: rows with `item`, `annotator`, `codes` (list or ';'-separated)."""
    path = Path(path)
    if path.is_dir():
        raise CultureCodeError(f"{path}: is a folder; --input takes one .csv, .tsv or .jsonl file")
    if not path.exists():
        raise CultureCodeError(f"{path}: annotation file not found")
    records = _unique([(where, _record(where, row, codebook)) for where, row in _rows(path)])
    if not records:
        raise CultureCodeError(f"{path}: no annotation rows")
    if codebook is not None:
        return from_records(records, codebook.code_ids, single_choice, {c.id: c.name for c in codebook.codes})
    seen: dict[str, None] = {}
    for rec in records:
        seen.update(dict.fromkeys(rec.codes))
    if not seen:
        raise CultureCodeError(f"{path}: no row has a code; pass --codebook to name the codes")
    return from_records(records, sorted(seen), single_choice)
