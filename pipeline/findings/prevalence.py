"""Code prevalence with valid confidence intervals, overall and per group of a speaker or document field.

The population is every active segment the model version scored. The human labels are those of segments in a
random stream (`tasks.stream` blind or audit, with its recorded inclusion probability; pipeline/studio/stream.py):
a segment's label for a code is its gold label where adjudicated, else the share of its annotators who applied the
code. A segment in several random streams has the sum of their probabilities (the streams are disjoint draws: the
audit stream holds the audit segments that are not blind). Model-ordered streams (active learning, review) are
never used: the model chose those segments, so they are no sample of the population.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from pipeline.errors import CultureCodeError
from pipeline.findings.estimators import Interval, difference, human_mean, model_mean, ppi_mean, weighted_rate
from pipeline.ingest.metadata import field_names, segment_fields
from pipeline.store import Store
from pipeline.store.annotations import live_annotations, task_streams
from pipeline.store.gold import gold_segments
from pipeline.store.models import current_model
from pipeline.store.predictions import predictions_of

RANDOM_STREAMS = ("blind", "audit")  # as pipeline.studio.stream.RANDOM_STREAMS: the streams drawn at random
NO_GROUP = "(none)"
# the fewest human positives (negatives) a group needs for its false negative (positive) rate in the error audit
MIN_CELL = 5
NO_AUDIT = (
    "no random human labels yet: push with --audit-fraction (or --blind-fraction), let annotators code, then pull"
)


@dataclass
class CodeFigures:
    model: Interval
    human: Interval
    ppi: Interval


@dataclass
class Findings:
    model_version: str
    level: float
    segments: int  # the population: segments the model version scored
    streams: dict[str, int]  # random stream -> human-labelled segments it gave
    labels: int  # human-labelled segments used
    by: str | None = None
    codes: dict[str, CodeFigures] = field(default_factory=dict)
    groups: dict[str, dict[str, CodeFigures | str]] = field(default_factory=dict)  # str: why no figures
    group_sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # group -> {segments, labels}
    differences: list[dict[str, Any]] = field(default_factory=list)
    # the error-bias audit: per group and code, the model's false positive and false negative rates on the random
    # human-labelled segments; per pair of groups, their differences, flagged when the interval excludes 0
    errors: dict[str, dict[str, dict[str, Interval | str]]] = field(default_factory=dict)
    error_differences: list[dict[str, Any]] = field(default_factory=list)
    unscored_labels: int = 0  # human-labelled random segments the model has not scored (left out)
    min_labels: int = 10

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Data:
    ids: list[str]  # population, in order
    scores: dict[str, np.ndarray]  # code -> model score per population segment
    ticked: dict[str, np.ndarray]  # code -> model's 0/1 label per population segment
    labelled: np.ndarray  # indices into ids of the human-labelled random segments
    human: dict[str, np.ndarray]  # code -> human label (0..1) per labelled segment
    weights: np.ndarray  # 1 / inclusion probability per labelled segment


def random_inclusion(store: Store) -> tuple[dict[str, float], dict[str, str]]:
    """({segment: inclusion probability}, {segment: its random stream(s)}) over the random streams."""
    per_stream: dict[tuple[str, str], float] = {}
    for task in task_streams(store):
        if task["stream"] in RANDOM_STREAMS and task["inclusion_probability"]:
            key = (task["segment_id"], task["stream"])
            per_stream[key] = max(per_stream.get(key, 0.0), float(task["inclusion_probability"]))
    probability: dict[str, float] = defaultdict(float)
    streams: dict[str, list[str]] = defaultdict(list)
    for (seg, stream), p in per_stream.items():
        probability[seg] += p
        streams[seg].append(stream)
    return {s: min(p, 1.0) for s, p in probability.items()}, {s: "+".join(sorted(v)) for s, v in streams.items()}


def human_labels(store: Store, segments: set[str], codes: list[str]) -> dict[str, dict[str, float]]:
    """{segment: {code: label in [0, 1]}}: gold where adjudicated, else the share of annotators applying it."""
    latest: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for a in live_annotations(store):
        if a.segment_id in segments:
            latest[a.segment_id][a.annotator] = a.codes  # oldest edit first: the latest wins
    out = {seg: {c: sum(c in chosen for chosen in by.values()) / len(by) for c in codes} for seg, by in latest.items()}
    for g in gold_segments(store):
        if g.segment_id in segments and g.segment_id in out:
            out[g.segment_id] = {c: float(c in g.codes) for c in codes}
    return out


def _load(store: Store, version: str, codes: list[str]) -> tuple[_Data, Counter[str], int]:
    predictions = predictions_of(store, version)
    population = set(segment_fields(store)) & set(predictions)
    ids = sorted(population)
    probability, stream_of = random_inclusion(store)
    labels = human_labels(store, set(probability), codes)
    if not labels:
        raise CultureCodeError(NO_AUDIT)
    position = {s: i for i, s in enumerate(ids)}
    labelled_ids = [s for s in sorted(labels) if s in position]
    if not labelled_ids:
        raise CultureCodeError(f"the {len(labels)} random human-labelled segment(s) have no score from {version}")
    data = _Data(
        ids=ids,
        scores={c: np.array([float(predictions[s].scores.get(c, 0.0)) for s in ids]).clip(0, 1) for c in codes},
        ticked={c: np.array([float(c in predictions[s].codes) for s in ids]) for c in codes},
        labelled=np.array([position[s] for s in labelled_ids], dtype=int),
        human={c: np.array([labels[s][c] for s in labelled_ids]) for c in codes},
        weights=np.array([1.0 / probability[s] for s in labelled_ids]),
    )
    return data, Counter(stream_of[s] for s in labelled_ids), len(labels) - len(labelled_ids)


def _figures(
    data: _Data, code: str, rows: np.ndarray, picked: np.ndarray, level: float, need: int
) -> CodeFigures | str:
    """The three estimates of `code` on population rows `rows`, the labelled ones among them being `picked`
    (a mask over data.labelled); a reason instead when too few are labelled."""
    n = int(picked.sum())
    if n < need:
        return f"too few audit labels (n={n}; need >= {need})"
    y, where = data.human[code][picked], data.labelled[picked]
    w = data.weights[picked]
    weights = None if np.allclose(w, w[0]) else w
    everyone = data.scores[code][rows]
    return CodeFigures(
        model=model_mean(data.ticked[code][rows]),
        human=human_mean(y, weights, level),
        ppi=ppi_mean(y, data.scores[code][where], everyone, weights, level),
    )


def prevalence(
    store: Store,
    *,
    codes: list[str],
    by: str | None = None,
    level: float = 0.95,
    model_version: str | None = None,
    min_labels: int = 10,
) -> Findings:
    """Each code's prevalence (and per group of field `by`) by the model alone, the human random sample alone and
    prediction-powered inference; group differences (each pair) with their intervals."""
    version = model_version or current_model(store)
    if version is None:
        raise CultureCodeError("no model yet: run `culturecode prelabel` (or train) so every segment has a score")
    data, streams, unscored = _load(store, version, codes)
    result = Findings(version, level, len(data.ids), dict(streams), len(data.labelled), by, min_labels=min_labels)
    result.unscored_labels = unscored
    everyone, all_labelled = np.arange(len(data.ids)), np.ones(len(data.labelled), dtype=bool)
    for code in codes:
        figures = _figures(data, code, everyone, all_labelled, level, min_labels)
        if isinstance(figures, str):
            raise CultureCodeError(f"{figures} in the random streams ({', '.join(sorted(streams))})")
        result.codes[code] = figures
    if by is not None:
        _by_group(store, data, result, by, codes, level, min_labels)
    return result


def _by_group(store: Store, data: _Data, result: Findings, by: str, codes: list[str], level: float, need: int) -> None:
    fields = segment_fields(store)
    names = field_names(fields)
    if by not in names:
        raise CultureCodeError(
            f"no field '{by}' on any segment (fields: {', '.join(names) or 'none'}); "
            "set one with `culturecode meta set`"
        )
    group_of = np.array([fields[s].get(by, NO_GROUP) for s in data.ids])
    labelled_group = group_of[data.labelled]
    for group in sorted(set(group_of)):
        rows, picked = np.flatnonzero(group_of == group), labelled_group == group
        result.group_sizes[group] = {"segments": len(rows), "labels": int(picked.sum())}
        result.groups[group] = {c: _figures(data, c, rows, picked, level, need) for c in codes}
    named = [g for g in result.groups if g != NO_GROUP]
    _error_audit(data, result, labelled_group, named, codes, level)
    for a, b in combinations(named, 2):
        for code in codes:
            fa, fb = result.groups[a][code], result.groups[b][code]
            if isinstance(fa, str) or isinstance(fb, str):
                continue
            result.differences.append(
                {
                    "code": code,
                    "groups": [a, b],
                    "human": asdict(difference(fa.human, fb.human, level)),
                    "ppi": asdict(difference(fa.ppi, fb.ppi, level)),
                }
            )


def _error_rates(data: _Data, code: str, picked: np.ndarray, level: float) -> dict[str, Interval | str]:
    """The model's false positive rate (ticked where the humans did not) and false negative rate (not ticked
    where they did) on the labelled segments `picked`; a human label counts as positive at >= 0.5."""
    truth = data.human[code][picked] >= 0.5
    ticked = data.ticked[code][data.labelled[picked]] >= 0.5
    w = data.weights[picked]
    out: dict[str, Interval | str] = {}
    for name, among, miss, what in (
        ("false_positive_rate", ~truth, ticked, "human negatives"),
        ("false_negative_rate", truth, ~ticked, "human positives"),
    ):
        n = int(among.sum())
        out[name] = (
            weighted_rate(miss[among], w[among], level)
            if n >= MIN_CELL
            else f"too few {what} (n={n}; need >= {MIN_CELL})"
        )
    return out


def _error_audit(
    data: _Data, result: Findings, labelled_group: np.ndarray, groups: list[str], codes: list[str], level: float
) -> None:
    for group in groups:
        picked = labelled_group == group
        result.errors[group] = {code: _error_rates(data, code, picked, level) for code in codes}
    for a, b in combinations(groups, 2):
        for code in codes:
            for rate in ("false_positive_rate", "false_negative_rate"):
                ra, rb = result.errors[a][code][rate], result.errors[b][code][rate]
                if isinstance(ra, str) or isinstance(rb, str):
                    continue
                diff = difference(ra, rb, level)
                assert diff.ci_low is not None and diff.ci_high is not None
                result.error_differences.append(
                    {
                        "code": code,
                        "rate": rate,
                        "groups": [a, b],
                        "difference": asdict(diff),
                        "excludes_zero": diff.ci_low > 0 or diff.ci_high < 0,
                    }
                )
