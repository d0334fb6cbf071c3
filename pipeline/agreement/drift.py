"""Coder drift: per annotator, agreement with the adjudicated gold and with the model, batch by batch (METHOD)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.agreement import coefficients as co
from pipeline.store import Store

DEFAULT_BATCH = 50
METHOD = (
    "Per annotator, the segments they coded in the order they coded them (last edit time), in batches of N. "
    "Each batch's figure is Cohen's kappa over every (segment, code) present/absent decision in it, pooled over "
    "codes, with the share of decisions that match: against the adjudicated gold, and against the model version "
    "whose pre-labels the annotator saw on that segment (segments coded with none are left out of that column). "
    "A kappa that falls batch after batch against gold says a coder drifts from the codebook; one that rises "
    "against the model while gold agreement does not says the coder follows the suggestions more and more."
)
BINARY = ["absent", "present"]


@dataclass
class Batch:
    batch: int
    segments: int
    first: str | None
    last: str | None
    gold_segments: int
    gold_kappa: float | None
    gold_agreement: float | None
    model_segments: int
    model_kappa: float | None
    model_agreement: float | None


def _decisions(pairs: list[tuple[list[str], list[str]]], codes: list[str]) -> tuple[float | None, float | None]:
    """(pooled kappa, share of matching decisions) over (annotator codes, reference codes) pairs."""
    if not pairs:
        return None, None
    x = np.array([[c in mine for c in codes] for mine, _ in pairs], dtype=np.float64).ravel()
    y = np.array([[c in ref for c in codes] for _, ref in pairs], dtype=np.float64).ravel()
    return co.cohen_kappa(x, y, 2, BINARY).value, float((x == y).mean())


def _latest_per_segment(store: Store) -> dict[str, list[Any]]:
    """{annotator: their latest annotation per segment, in the order of those last edits}."""
    from pipeline.store.appendix import annotation_timeline

    latest: dict[str, dict[str, Any]] = {}
    for a in annotation_timeline(store):  # oldest first: a later edit replaces and moves the segment
        mine = latest.setdefault(a.annotator, {})
        mine.pop(a.segment_id, None)
        mine[a.segment_id] = a
    return {annotator: list(rows.values()) for annotator, rows in sorted(latest.items())}


def _model_codes(store: Store, timeline: dict[str, list[Any]]) -> dict[tuple[str, str], list[str]]:
    """{(model version, segment): predicted codes} for the pre-labels annotators saw."""
    from pipeline.store.predictions import predictions_for

    wanted: dict[str, set[str]] = {}
    for rows in timeline.values():
        for a in rows:
            if a.prediction_version:
                wanted.setdefault(a.prediction_version, set()).add(a.segment_id)
    out = {}
    for version, segments in sorted(wanted.items()):
        for seg, pred in predictions_for(store, version, sorted(segments)).items():
            out[(version, seg)] = pred.codes
    return out


def coder_drift(store: Store, codes: list[str], batch_size: int = DEFAULT_BATCH) -> dict[str, Any]:
    """{"batch_size", "annotators": {annotator: [Batch as dict, ...]}} for every annotator of the workspace."""
    from pipeline.store.gold import gold_segments

    gold = {g.segment_id: g.codes for g in gold_segments(store)}
    timeline = _latest_per_segment(store)
    model = _model_codes(store, timeline)
    out: dict[str, list[dict[str, Any]]] = {}
    for annotator, rows in timeline.items():
        batches: list[dict[str, Any]] = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            vs_gold = [(a.codes, gold[a.segment_id]) for a in chunk if a.segment_id in gold]
            vs_model = [
                (a.codes, model[(a.prediction_version, a.segment_id)])
                for a in chunk
                if (a.prediction_version, a.segment_id) in model
            ]
            g_kappa, g_share = _decisions(vs_gold, codes)
            m_kappa, m_share = _decisions(vs_model, codes)
            when = (chunk[0].when, chunk[-1].when)
            batch = Batch(
                len(batches) + 1, len(chunk), *when, len(vs_gold), g_kappa, g_share, len(vs_model), m_kappa, m_share
            )
            batches.append(asdict(batch))
        out[annotator] = batches
    return {"batch_size": batch_size, "annotators": out}


HEADER = ["annotator", "batch", "segments", "from", "to", "with gold", "κ", "% agr.", "with model", "κ", "% agr."]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def drift_rows(drift: dict[str, Any], names: dict[str, str] | None = None) -> list[list[str]]:
    """The drift table's rows (HEADER's columns), annotators as `names` maps them, in name order."""
    names = names or {}
    ordered = sorted(drift["annotators"].items(), key=lambda kv: names.get(kv[0], kv[0]))
    return [
        [
            names.get(annotator, annotator),
            str(b["batch"]),
            str(b["segments"]),
            (b["first"] or "-")[:10],
            (b["last"] or "-")[:10],
            str(b["gold_segments"]),
            _fmt(b["gold_kappa"]),
            _fmt(b["gold_agreement"]),
            str(b["model_segments"]),
            _fmt(b["model_kappa"]),
            _fmt(b["model_agreement"]),
        ]
        for annotator, batches in ordered
        for b in batches
    ]


def drift_markdown(drift: dict[str, Any] | None) -> list[str]:
    """The agreement report's drift section as Markdown lines."""
    if not drift or not drift["annotators"]:
        return []
    lines = ["", f"## Coder drift (batches of {drift['batch_size']} segments)", "", METHOD, ""]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return lines + ["| " + " | ".join(row) + " |" for row in drift_rows(drift)]
