"""Coder drift: per annotator, agreement with the adjudicated gold and with the model, batch by batch (METHOD)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
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


def _figures(chunk: list[Any], gold: dict[str, list[str]], model: dict, codes: list[str]) -> list[Any]:
    """One period's columns after its label: segments, first, last, then gold and model figures (Batch's order)."""
    vs_gold = [(a.codes, gold[a.segment_id]) for a in chunk if a.segment_id in gold]
    vs_model = [
        (a.codes, model[(a.prediction_version, a.segment_id)])
        for a in chunk
        if (a.prediction_version, a.segment_id) in model
    ]
    g_kappa, g_share = _decisions(vs_gold, codes)
    m_kappa, m_share = _decisions(vs_model, codes)
    return [len(chunk), chunk[0].when, chunk[-1].when, len(vs_gold), g_kappa, g_share, len(vs_model), m_kappa, m_share]


def iso_week(when: str | None) -> str:
    """'2026-W01' for an ISO timestamp; '(no date)' without one."""
    if not when:
        return "(no date)"
    from datetime import datetime

    year, week, _ = datetime.fromisoformat(when).isocalendar()
    return f"{year}-W{week:02d}"


def _by_week(rows: list[Any], gold: dict[str, list[str]], model: dict, codes: list[str]) -> list[dict[str, Any]]:
    weeks: dict[str, list[Any]] = {}
    for a in rows:
        weeks.setdefault(iso_week(a.when), []).append(a)
    out = []
    for week in sorted(weeks):
        figures = dict(zip(FIELDS[1:], _figures(weeks[week], gold, model, codes), strict=True))
        out.append({"week": week, **figures})
    return out


FIELDS = [f.name for f in fields(Batch)]


def coder_drift(store: Store, codes: list[str], batch_size: int = DEFAULT_BATCH) -> dict[str, Any]:
    """{"batch_size", "annotators": {annotator: [Batch as dict, ...]}, "weeks": {annotator: [{"week", ...}]}} for
    every annotator of the workspace: the same figures by batch of `batch_size` segments and by ISO week."""
    from pipeline.store.gold import gold_segments

    gold = {g.segment_id: g.codes for g in gold_segments(store)}
    timeline = _latest_per_segment(store)
    model = _model_codes(store, timeline)
    out: dict[str, list[dict[str, Any]]] = {}
    weeks: dict[str, list[dict[str, Any]]] = {}
    for annotator, rows in timeline.items():
        out[annotator] = [
            asdict(Batch(n + 1, *_figures(rows[start : start + batch_size], gold, model, codes)))
            for n, start in enumerate(range(0, len(rows), batch_size))
        ]
        weeks[annotator] = _by_week(rows, gold, model, codes)
    return {"batch_size": batch_size, "annotators": out, "weeks": weeks}


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


WEEK_HEADER = ["annotator", "week", "segments", "with gold", "κ", "% agr.", "with model", "κ", "% agr."]


def week_rows(drift: dict[str, Any], names: dict[str, str] | None = None) -> list[list[str]]:
    """The by-week table's rows (WEEK_HEADER's columns), annotators as `names` maps them, in name order."""
    names = names or {}
    ordered = sorted((drift.get("weeks") or {}).items(), key=lambda kv: names.get(kv[0], kv[0]))
    return [
        [names.get(annotator, annotator), w["week"], str(w["segments"]), str(w["gold_segments"]), _fmt(w["gold_kappa"])]
        + [_fmt(w["gold_agreement"]), str(w["model_segments"]), _fmt(w["model_kappa"]), _fmt(w["model_agreement"])]
        for annotator, weeks in ordered
        for w in weeks
    ]


def week_markdown(drift: dict[str, Any] | None, names: dict[str, str] | None = None) -> list[str]:
    if not drift or not drift.get("weeks"):
        return []
    lines = [
        "",
        "## Coder drift by ISO week",
        "",
        "| " + " | ".join(WEEK_HEADER) + " |",
        "|" + "---|" * len(WEEK_HEADER),
    ]
    return lines + ["| " + " | ".join(row) + " |" for row in week_rows(drift, names)]


def plot_weeks(drift: dict[str, Any] | None, names: dict[str, str] | None = None) -> str | None:
    """Per annotator, kappa with gold (solid) and with the model (dashed) by week, as a base64 PNG; None without
    a week that has a figure."""
    weeks = (drift or {}).get("weeks") or {}
    labels = sorted({w["week"] for rows in weeks.values() for w in rows})
    if not any(w["gold_kappa"] is not None or w["model_kappa"] is not None for rows in weeks.values() for w in rows):
        return None
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = names or {}
    fig, ax = plt.subplots(layout="constrained", figsize=(7, 3.2))
    for n, (annotator, rows) in enumerate(sorted(weeks.items(), key=lambda kv: names.get(kv[0], kv[0]))):
        colour, x = f"C{n % 10}", [labels.index(w["week"]) for w in rows]
        who = names.get(annotator, annotator)
        for key, style, what in (("gold_kappa", "-o", "gold"), ("model_kappa", "--s", "model")):
            y = [np.nan if w[key] is None else w[key] for w in rows]
            ax.plot(x, y, style, color=colour, label=f"{who} vs {what}")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylim(-0.2, 1.05)
    ax.set_ylabel("Cohen's κ (pooled over codes)")
    ax.legend(fontsize="small", ncol=2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")
