"""The anchoring check: do pre-labels move the annotators? Blind segments against assisted ones, per code.

`push --blind-fraction` sends a stable random subset of segments to every annotator with no
pre-labels (pipeline/store/blind.py). Here the annotations of those segments (made blind) are set
against the annotations of the other segments made with a model's pre-labels in view (assisted):
per code, the positive rate, Krippendorff's alpha among the humans and Cohen's kappa between the
model and the humans, each with a 95% percentile bootstrap interval over segments (drawn within each
group: `coefficients.bootstrap_weights`), and the interval of the difference blind - assisted
(replicate by replicate). Annotations of blind segments that were made while pre-labels showed (a task
pushed before the segment became blind) and annotations of other segments made without pre-labels
are left out of both groups and counted.

The assisted group is the audit stream's segments (`push --audit-fraction`: uniformly random, like the blind ones)
when annotators coded any; otherwise every assisted segment, which the model's order chose (not random), and the
note says so. Each difference has a two-sided p-value from its bootstrap standard error;
the p-values of all codes and figures are adjusted together for multiple comparisons (Holm's step-down method,
statsmodels' `multipletests`), and a figure counts as shifted only when its adjusted p-value is below 0.05. Each
shift says its direction.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from pipeline.agreement import coefficients as co
from pipeline.agreement.ratings import NO_ROUND, Ratings
from pipeline.store.blind import BlindSubset

LEVEL = 0.95
MULTIPLICITY = "holm"  # statsmodels.stats.multitest.multipletests method over every code x figure
MULTIPLICITY_TEXT = "Holm's step-down adjustment over all codes and figures (family-wise error 5%)"
NEVER_TICKED = "the model never ticked this code on these segments"
BINARY = ["absent", "present"]
STATISTICS = {
    "positive_rate": "share of the annotations that tick the code",
    "krippendorff_alpha": "Krippendorff's alpha among the annotators",
    "model_kappa": "Cohen's kappa between the model's decision and each annotator's, pooled over annotators",
}
CONSEQUENCE = (
    "A higher positive rate on assisted segments for a code the model ticks often, or a higher model-human kappa "
    "there, means the suggestions moved the annotators towards the model: the assisted figures then overstate both "
    "the model's quality and the annotators' agreement (Schroeder et al., ACL 2025, found LLM suggestions shift "
    "annotators' labels and inflate measured model quality). Report the blind figures as the model's quality in "
    "that case. A figure counts as shifted when its difference survives " + MULTIPLICITY_TEXT + "."
)
NOTE_RANDOM = (
    "Blind segments were coded with no pre-labels; assisted segments, from the audit stream, with the model's "
    "pre-labels in view. Both are uniformly random samples of the same segments, so without anchoring their "
    "figures differ only by chance. " + CONSEQUENCE
)
NOTE_MODEL_CHOSEN = (
    "Blind segments (a uniformly random sample) were coded with no pre-labels; assisted segments with the model's "
    "pre-labels in view. The assisted segments are not a random sample: the label stream's order (studio.sampling) "
    "chose them, e.g. the model's least certain ones, so a difference mixes anchoring with how the segments were "
    "chosen. Push with --audit-fraction for a random assisted sample. " + CONSEQUENCE
)
# kept for readers of older reports: the note when both groups are random
NOTE = NOTE_RANDOM


def _interval(values: np.ndarray) -> tuple[list[float] | None, str | None]:
    """Percentile interval of bootstrap replicates (NaN where undefined), as `coefficients.alpha_interval`."""
    finite = values[np.isfinite(values)]
    if len(values) == 0:
        return None, "no bootstrap replicates were requested"
    if len(finite) < 0.5 * len(values):
        return None, "undefined in most bootstrap replicates (too little variation)"
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [round(float(lo), 4), round(float(hi), 4)], None


class _Group:
    """One side of the comparison: its annotations, the model's decisions on its segments, its resamples."""

    def __init__(self, ratings: Ratings, cells: np.ndarray, model: tuple[np.ndarray, np.ndarray] | None, seed: int):
        keep = cells.any(axis=1)
        self.sub = ratings.subset(cells)
        self.model = None if model is None else (model[0][keep], model[1][keep])
        self.seed = seed

    def weights(self, replicates: int) -> np.ndarray:
        return co.bootstrap_weights(self.sub.n_items, replicates, self.seed)

    def describe(self) -> dict[str, int]:
        return {"n_items": self.sub.n_items, "n_annotations": int(self.sub.rated.sum())}

    def positive_rate(self, c: int, weights: np.ndarray) -> tuple[co.Coef, np.ndarray]:
        x = self.sub.binary(c)
        yes, n = np.nansum(x, axis=1), self.sub.rated.sum(axis=1).astype(np.float64)
        if not n.sum():
            return co.Coef.undefined("no annotations"), np.full(len(weights), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            return co.Coef(float(yes.sum() / n.sum())), (weights @ yes) / (weights @ n)

    def krippendorff_alpha(self, c: int, weights: np.ndarray) -> tuple[co.Coef, np.ndarray]:
        x = self.sub.binary(c)
        value = co.krippendorff_alpha(x, 2, BINARY)
        if value.value is None:
            return value, np.full(len(weights), np.nan)
        return value, co.alpha_from_counts(co.value_counts(x, 2), weights)

    def model_kappa(self, c: int, weights: np.ndarray) -> tuple[co.Coef, np.ndarray]:
        if self.model is None:
            return co.Coef.undefined("no model pre-labelled these segments"), np.full(len(weights), np.nan)
        labels, has = self.model
        cells = self.sub.rated & has[:, None]  # (item, annotator) pairs the model also decided
        items, raters = np.nonzero(cells)
        human = self.sub.labels[items, raters, c].astype(np.float64)
        machine = labels[items, c].astype(np.float64)
        if len(items) and not machine.any():
            return co.Coef.undefined(NEVER_TICKED), np.full(len(weights), np.nan)
        value = co.cohen_kappa(machine, human, 2, BINARY) if len(items) else co.Coef.undefined("no shared segments")
        if value.value is None:
            return value, np.full(len(weights), np.nan)
        reps = np.full(len(weights), np.nan)
        for r, w in enumerate(weights):  # each replicate draws segments; their pairs come along
            drawn = np.repeat(np.arange(len(items)), w[items].astype(np.int64))
            reps[r] = np.nan if (k := co.cohen_kappa(machine[drawn], human[drawn], 2).value) is None else k
        return value, reps


def _side(value: co.Coef, reps: np.ndarray) -> dict[str, Any]:
    ci, reason = _interval(reps) if value.value is not None else (None, value.reason)
    return {"value": None if value.value is None else round(value.value, 4), "ci": ci, "reason": reason}


def _compare(blind: tuple[co.Coef, np.ndarray], assisted: tuple[co.Coef, np.ndarray]) -> dict[str, Any]:
    (b, b_reps), (a, a_reps) = blind, assisted
    out = {"blind": _side(b, b_reps), "assisted": _side(a, a_reps)}
    diff: dict[str, Any]
    if b.value is None or a.value is None:
        diff = {"value": None, "ci": None, "reason": "undefined in one of the groups", "excludes_zero": False}
    else:
        ci, reason = _interval(b_reps - a_reps)
        excludes = ci is not None and (ci[0] > 0 or ci[1] < 0)
        value = round(b.value - a.value, 4)
        direction = "blind higher" if value > 0 else "assisted higher" if value < 0 else "equal"
        diff = {
            "value": value,
            "ci": ci,
            "reason": reason,
            "excludes_zero": excludes,
            "direction": direction,
            "p": None if ci is None else _p_value(b.value - a.value, b_reps - a_reps),
        }
    return {**out, "difference": diff}


def _p_value(value: float, reps: np.ndarray) -> float:
    """Two-sided p-value of a difference of 0 from the bootstrap standard error (Wald): unlike the share of
    replicates across 0, it has no floor of 2 / (replicates + 1), which a multiplicity adjustment would inflate."""
    finite = reps[np.isfinite(reps)]
    se = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    if se == 0.0:
        return 1.0 if value == 0 else 0.0
    return round(math.erfc(abs(value) / se / math.sqrt(2)), 6)


def _adjust(codes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjust every difference's p-value together (MULTIPLICITY); mark the shifted ones; the shifts, with direction."""
    from statsmodels.stats.multitest import multipletests

    diffs = [(code, stat, s["difference"]) for code, stats in codes.items() for stat, s in stats.items()]
    tested = [(code, stat, d) for code, stat, d in diffs if d.get("p") is not None]
    adjusted = multipletests([d["p"] for _, _, d in tested], alpha=1 - LEVEL, method=MULTIPLICITY)[1] if tested else []
    for _, _, d in diffs:
        d["p_adjusted"], d["shifted"] = None, False
    shifts = []
    for (code, stat, d), p_adj in zip(tested, adjusted, strict=True):
        d["p_adjusted"] = round(float(p_adj), 4)
        d["shifted"] = bool(p_adj < 1 - LEVEL)
        if d["shifted"]:
            shifts.append({"code": code, "figure": stat, "direction": d["direction"], "p_adjusted": d["p_adjusted"]})
    return shifts


def _groups(
    ratings: Ratings, blind: BlindSubset, audit: set[str] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, int], bool]:
    """(blind cells, assisted cells, what was left out, whether the assisted cells are the random audit stream's)
    over the (item, annotator) grid."""
    assert ratings.rounds is not None
    in_subset = np.array([item in blind for item in ratings.items], dtype=bool)[:, None]
    assisted_view = ratings.rated & (ratings.rounds != NO_ROUND)
    blind_cells = ratings.rated & in_subset & ~assisted_view
    assisted_cells = assisted_view & ~in_subset
    left_out = {
        "blind_with_prelabels": int((assisted_view & in_subset).sum()),
        "unassisted_outside_blind": int((ratings.rated & ~in_subset & ~assisted_view).sum()),
    }
    in_audit = np.array([item in (audit or ()) for item in ratings.items], dtype=bool)[:, None]
    random_assisted = bool((assisted_cells & in_audit).any())
    if random_assisted:
        left_out["assisted_outside_audit"] = int((assisted_cells & ~in_audit).sum())
        assisted_cells = assisted_cells & in_audit
    return blind_cells, assisted_cells, left_out, random_assisted


def _model_version(ratings: Ratings, assisted: np.ndarray) -> str | None:
    """The version most assisted annotations were pre-labelled with."""
    assert ratings.rounds is not None
    counts = Counter(ratings.rounds[assisted].tolist())
    return counts.most_common(1)[0][0] if counts else None


def anchoring_check(
    ratings: Ratings,
    blind: BlindSubset,
    models: dict[str, tuple[np.ndarray, np.ndarray]],
    codes: list[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 7,
    audit: set[str] | None = None,
) -> dict[str, Any]:
    """Blind against assisted annotations per code (the report's `anchoring` section); `audit`: the audit stream's
    segments (`task_streams`), whose assisted annotations are then the comparison group."""
    codes = codes or ratings.codes
    if ratings.rounds is None:
        raise ValueError("the anchoring check needs each annotation's pre-label version (workspace ratings)")
    blind_cells, assisted_cells, left_out, random_assisted = _groups(ratings, blind, audit)
    version = _model_version(ratings, assisted_cells)
    model = models.get(version) if version else None
    sides = {
        "blind": _Group(ratings, blind_cells, model, seed),
        "assisted": _Group(ratings, assisted_cells, model, seed + 1),
    }
    out: dict[str, Any] = {
        "blind_fraction": blind.fraction,
        "model_version": version,
        "groups": {name: g.describe() for name, g in sides.items()},
        "left_out": left_out,
        "statistics": STATISTICS,
        "assisted_sample": "audit stream (random)" if random_assisted else "model-ordered stream (not random)",
        "note": NOTE_RANDOM if random_assisted else NOTE_MODEL_CHOSEN,
        "multiplicity": MULTIPLICITY_TEXT,
        "codes": {},
    }
    empty = [name for name, g in sides.items() if g.sub.n_items == 0]
    if empty:
        out["reason"] = f"no {' and no '.join(empty)} annotations yet: pull after annotators code both kinds"
        return out
    weights = {name: g.weights(bootstrap) for name, g in sides.items()}
    for code in codes:
        c = ratings.codes.index(code)
        out["codes"][code] = {
            stat: _compare(*(getattr(sides[n], stat)(c, weights[n]) for n in ("blind", "assisted")))
            for stat in STATISTICS
        }
    out["shifts"] = _adjust(out["codes"])
    out["shifted"] = list(dict.fromkeys(s["code"] for s in out["shifts"]))
    return out
