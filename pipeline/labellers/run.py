"""The one pre-labelling path every labeller goes through.

Segments this labeller version has not labelled yet (or, for a `relabel` labeller, every selected
segment) are handed to `label()` `batch_size` at a time; each batch's predictions are checked and
written in one transaction, so an interrupted run keeps whole batches and a rerun resumes with
what is left. After the run the version gets its `models` row.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.labellers import registry
from pipeline.labellers.base import DEFAULT_BATCH_SIZE, LabelContext, Labeller, ModelRecord
from pipeline.progress import progress_bar
from pipeline.store import Segment, Store
from pipeline.store.models import register_model
from pipeline.store.predictions import PredictionRow, count_predictions, write_predictions
from pipeline.store.segments import count_segments_without_prediction, segments_without_prediction


@dataclass
class LabelRun:
    """What one run did: segments offered to the labeller, predictions written, and those kept from
    earlier runs of the same version."""

    labeller: str
    model_version: str
    segments: int
    labelled: int
    already: int
    seconds: float
    per_code: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_segments(store: Store, segment_ids: list[str] | None = None, limit: int | None = None) -> list[Segment]:
    """The named segments (all must exist), else the first `limit` (or all) in document order."""
    if segment_ids:
        found = [s for s in (store.segment(i) for i in segment_ids) if s is not None]
        missing = sorted(set(segment_ids) - {s.id for s in found})
        if missing:
            raise CultureCodeError(f"segment(s) {', '.join(missing[:5])} are not in {store.workspace}")
        return found
    segments = store.segments(limit=limit)
    if not segments:
        raise CultureCodeError(f"{store.workspace} has no segments: run `culturecode ingest PATH` first")
    return segments


def _batches(segments: list[Segment], size: int) -> Iterator[list[Segment]]:
    for start in range(0, len(segments), size):
        yield segments[start : start + size]


def _limited(chunks: Iterable[list[Segment]], limit: int) -> Iterator[list[Segment]]:
    for chunk in chunks:
        if limit <= 0:
            return
        yield chunk[:limit]
        limit -= len(chunk)


def _pending(
    store: Store, labeller: Labeller, segment_ids: list[str] | None, limit: int | None
) -> tuple[int, Iterator[list[Segment]]]:
    """How many segments will be offered, and the batches."""
    size = int(getattr(labeller, "batch_size", DEFAULT_BATCH_SIZE))
    if getattr(labeller, "relabel", False):
        segments = select_segments(store, segment_ids, limit)
        return len(segments), _batches(segments, size)
    total = count_segments_without_prediction(store, labeller.version, segment_ids)
    chunks: Iterator[list[Segment]] = segments_without_prediction(store, labeller.version, segment_ids, size)
    if limit is not None:
        total, chunks = min(total, limit), _limited(chunks, limit)
    return total, chunks


def _checked(rows: list[PredictionRow], labeller: Labeller, offered: set[str], codes: set[str]) -> list[PredictionRow]:
    """A plugin's output as it may be stored; anything else is a one-line error naming the labeller."""
    for row in rows:
        problem = None
        if row.segment_id not in offered:
            problem = f"a prediction for segment '{row.segment_id}', which it was not given"
        elif row.model_version != labeller.version:
            problem = f"model_version '{row.model_version}' instead of its version '{labeller.version}'"
        elif unknown := sorted((set(row.codes) | set(row.scores)) - codes):
            problem = f"code(s) {', '.join(unknown)} that are not in the codebook"
        elif bad := [c for c, s in row.scores.items() if not 0.0 <= float(s) <= 1.0]:
            problem = f"score(s) outside [0, 1] for {', '.join(bad)}"
        if problem:
            raise CultureCodeError(f"labeller '{labeller.name}' returned {problem}")
    return rows


def _model_record(labeller: Labeller) -> ModelRecord | None:
    describe = getattr(labeller, "model_record", None)
    if describe is not None:
        return describe()
    name = str(getattr(labeller, "kind", labeller.name))
    return ModelRecord(kind=name, metrics={"labeller": labeller.name})


def _labelled(
    labeller: Labeller, chunks: Iterator[list[Segment]]
) -> Iterator[tuple[list[Segment], list[PredictionRow]]]:
    """(chunk, its predictions) in the order they are ready: a labeller's `label_chunks` where it scores many
    chunks at once (the Ray engine), else `label` one chunk at a time."""
    label_chunks = getattr(labeller, "label_chunks", None)
    if label_chunks is not None:
        yield from label_chunks(chunks)
        return
    for chunk in chunks:
        yield chunk, labeller.label(chunk)


def run_labeller(
    labeller: Labeller,
    store: Store,
    codebook: Codebook,
    segment_ids: list[str] | None = None,
    limit: int | None = None,
    show_progress: bool = True,
    stage: str = "prelabel",
    run_args: dict[str, Any] | None = None,
) -> LabelRun:
    """Label what `labeller` has not labelled yet; returns what the run did."""
    version, codes = labeller.version, set(codebook.code_ids)
    per_code = dict.fromkeys(codebook.code_ids, 0)
    started, labelled = time.monotonic(), 0
    total, chunks = _pending(store, labeller, segment_ids, limit)
    args = {"labeller": labeller.name, "model_version": version, **(run_args or {})}
    with (
        store.run(stage, args) as summary,
        progress_bar(f"{stage} {version}", total=total, enabled=show_progress) as bar,
    ):
        for chunk, labels in _labelled(labeller, chunks):
            rows = _checked(labels, labeller, {s.id for s in chunk}, codes)
            with store.transaction():
                labelled += write_predictions(store, rows, codebook.content_hash)
            for row in rows:
                for code in row.codes:
                    per_code[code] += 1
            bar.advance(len(chunk))
        record = _model_record(labeller)
        if record is not None:
            with store.transaction():
                register_model(
                    store,
                    version,
                    record.kind,
                    record.path,
                    codebook.content_hash,
                    record.metrics,
                    promote=record.promote,
                )
        summary.update({"labeller": labeller.name, "model_version": version, "labelled": labelled})
    already = count_predictions(store, version) - labelled
    return LabelRun(labeller.name, version, total, labelled, already, round(time.monotonic() - started, 2), per_code)


def prelabel(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    name: str,
    model_version: str | None = None,
    options: dict[str, Any] | None = None,
    segment_ids: list[str] | None = None,
    limit: int | None = None,
    show_progress: bool = True,
) -> Any:
    """Pre-label with the labeller registered as `name`: its own report where it has one, else a `LabelRun`."""
    context = LabelContext(store, settings, codebook, model_version, dict(options or {}), show_progress)
    labeller = registry.create(name, context)
    run = run_labeller(labeller, store, codebook, segment_ids, limit, show_progress)
    report = getattr(labeller, "report", None)
    return report(run) if report is not None else run
