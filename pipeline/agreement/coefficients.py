"""Agreement coefficients over a units x raters matrix, with every edge case wrapped here.

Input everywhere: `ratings`, a float array of shape (units, raters) holding category indices
0..k-1 and NaN where a rater did not code a unit. Each function returns a `Coef`: a value, or
`None` with the reason it is undefined -- never NaN, never a silent 0, never an exception.

Libraries: the tests check alpha against `krippendorff` and nltk, Cohen's kappa against scikit-learn. Fleiss'
kappa and Gwet's AC1 use the missing-data forms of Gwet (2014, ch. 2 and 4), which equal the
classic formulas (statsmodels' `fleiss_kappa`) when every unit has the same number of raters;
the tests check both against published examples and against the libraries. The bootstrap
recomputes alpha from per-unit coincidence counts, so 1,000 replicates are one matrix product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

ONE_RATER = "only one annotator coded these items"
NO_PAIRS = "no item was coded by two or more annotators"


@dataclass(frozen=True)
class Coef:
    """A coefficient value, or None with the reason it is undefined."""

    value: float | None
    reason: str | None = None

    @classmethod
    def undefined(cls, reason: str) -> "Coef":
        return cls(None, reason)

    @classmethod
    def of(cls, value: float, reason_if_nan: str) -> "Coef":
        value = float(value)
        return cls(value) if math.isfinite(value) else cls(None, reason_if_nan)


def value_counts(ratings: np.ndarray, k: int) -> np.ndarray:
    """Per unit, how many raters chose each category: shape (units, k)."""
    rated = ~np.isnan(ratings)
    units = np.nonzero(rated)[0]
    flat = units * k + ratings[rated].astype(np.int64)
    return np.bincount(flat, minlength=ratings.shape[0] * k).reshape(ratings.shape[0], k)


def _one_category_reason(counts: np.ndarray, labels: list[str] | None) -> str:
    used = int(np.argmax(counts.sum(axis=0)))
    name = labels[used] if labels else str(used)
    return f"only one category ('{name}') among the pairable values, so chance agreement is total"


def _check_raters(ratings: np.ndarray, per_unit: np.ndarray | None = None) -> str | None:
    """Why no agreement coefficient exists (one rater, nothing pairable), or None."""
    rated = ~np.isnan(ratings)
    if rated.any(axis=0).sum() < 2:
        return ONE_RATER
    if per_unit is None:
        per_unit = rated @ np.ones(ratings.shape[1])
    if not (per_unit >= 2).any():
        return NO_PAIRS
    return None


def percent_agreement(ratings: np.ndarray) -> Coef:
    """Mean over rater pairs of the share of units both coded on which they agree."""
    if reason := _check_raters(ratings):
        return Coef.undefined(reason)
    shares = []
    for a, b in combinations(range(ratings.shape[1]), 2):
        shared = ~np.isnan(ratings[:, a]) & ~np.isnan(ratings[:, b])
        if shared.any():
            shares.append(float((ratings[shared, a] == ratings[shared, b]).mean()))
    return Coef(float(np.mean(shares)))


def cohen_kappa(x: np.ndarray, y: np.ndarray, k: int, labels: list[str] | None = None) -> Coef:
    """Cohen's kappa of two raters over the units both coded."""
    shared = ~np.isnan(x) & ~np.isnan(y)
    if not shared.any():
        return Coef.undefined("the two annotators coded no item in common")
    xs, ys = x[shared].astype(int), y[shared].astype(int)
    px = np.bincount(xs, minlength=k) / len(xs)
    py = np.bincount(ys, minlength=k) / len(ys)
    pe = float(px @ py)
    if pe >= 1 - 1e-12:
        # scikit-learn returns NaN here; kappa is 0/0 when both raters used one category only
        return Coef.undefined(_one_category_reason(np.vstack([px, py]), labels))
    # the same formula as sklearn.metrics.cohen_kappa_score (the tests compare them), without
    # its input validation, which costs 25 ms per call on 10,000 items
    po = float((xs == ys).mean())
    return Coef.of((po - pe) / (1 - pe), "kappa is undefined here")


def cohen_pairs(ratings: np.ndarray, k: int, labels: list[str] | None = None) -> dict[tuple[int, int], Coef]:
    return {
        (a, b): cohen_kappa(ratings[:, a], ratings[:, b], k, labels)
        for a, b in combinations(range(ratings.shape[1]), 2)
    }


def mean_of(coefs: list[Coef], empty_reason: str = ONE_RATER) -> Coef:
    """Mean of the defined values; undefined (with the first reason) when none is defined."""
    values = [c.value for c in coefs if c.value is not None]
    if values:
        return Coef(float(np.mean(values)))
    return Coef.undefined(next((c.reason for c in coefs if c.reason), empty_reason))


def _pa_and_shares(counts: np.ndarray) -> tuple[float, np.ndarray]:
    """Observed agreement over units with 2+ ratings and the mean category shares per unit.

    Callers run `_check_raters` first, so at least one unit has 2+ ratings."""
    m = counts.sum(axis=1)
    pairable = m >= 2
    c, mp = counts[pairable], m[pairable]
    pa = float(np.mean((c * (c - 1)).sum(axis=1) / (mp * (mp - 1))))
    rated = m >= 1
    shares = (counts[rated] / m[rated, None]).mean(axis=0)
    return pa, shares


def fleiss_kappa(ratings: np.ndarray, k: int, labels: list[str] | None = None) -> Coef:
    """Fleiss' kappa; with missing ratings, Gwet's generalisation (equal when none are missing)."""
    if reason := _check_raters(ratings):
        return Coef.undefined(reason)
    counts = value_counts(ratings, k)
    pa, shares = _pa_and_shares(counts)
    pe = float((shares**2).sum())
    if pe >= 1 - 1e-12:
        return Coef.undefined(_one_category_reason(counts, labels))
    return Coef.of((pa - pe) / (1 - pe), "Fleiss' kappa is undefined here")


def gwet_ac1(ratings: np.ndarray, k: int) -> Coef:
    """Gwet's AC1 for k categories, missing ratings allowed (Gwet 2014, eq. 4.1)."""
    if reason := _check_raters(ratings):
        return Coef.undefined(reason)
    if k < 2:
        return Coef.undefined("AC1 needs at least two possible categories")
    pa, shares = _pa_and_shares(value_counts(ratings, k))
    pe = float((shares * (1 - shares)).sum() / (k - 1))
    return Coef.of((pa - pe) / (1 - pe), "AC1 is undefined here")


def krippendorff_alpha(ratings: np.ndarray, k: int, labels: list[str] | None = None) -> Coef:
    """Nominal Krippendorff's alpha, missing data allowed.

    Computed from the coincidence totals (`nominal_alpha`), which the tests check against the
    `krippendorff` package and nltk; the package itself takes 6 ms per call on 10,000 units,
    too slow for 15 codes plus rounds plus models, and it raises (one value overall) or returns
    NaN (a stray value in a single-rated unit) where alpha is undefined.
    """
    counts = value_counts(ratings, k).astype(np.float64)
    m = counts @ np.ones(k)  # row sums by BLAS: numpy's axis=1 sum is slow on (10000, 2)
    if reason := _check_raters(ratings, m):
        return Coef.undefined(reason)
    n_c = (m >= 2).astype(np.float64) @ counts  # category totals over pairable units
    if (n_c > 0).sum() < 2:
        return Coef.undefined(_one_category_reason(n_c[None, :], labels))
    return Coef.of(nominal_alpha(counts, m, n_c), "alpha is undefined here")


def nominal_alpha(counts: np.ndarray, m: np.ndarray, n_c: np.ndarray) -> float:
    """Nominal alpha from value counts (m: units' sizes, n_c: category totals over pairable units):
    1 - (n - 1) * sum over pairable units of (m^2 - sum_c n_uc^2) / (m - 1), over n^2 - sum_c n_c^2."""
    inverse = np.divide(1.0, m - 1, out=np.zeros_like(m), where=m >= 2)  # units of one value add 0
    observed = float((m * m - (counts * counts) @ np.ones(counts.shape[1])) @ inverse)
    n = n_c.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(1 - (n - 1) * observed / (n**2 - (n_c**2).sum()))


# --------------------------------------------------------------------------- bootstrap


def bootstrap_weights(n_units: int, replicates: int, seed: int) -> np.ndarray:
    """How often each unit is drawn in each replicate: shape (replicates, units), float32."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_units, size=(replicates, n_units), dtype=np.int32)
    weights = np.empty((replicates, n_units), dtype=np.float32)
    for r in range(replicates):  # row by row stays in cache: 3x faster than one big bincount
        weights[r] = np.bincount(draws[r], minlength=n_units)
    return weights


def alpha_from_counts(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Nominal alpha for each row of unit weights (a weight of 1 everywhere is the point value).

    Units with fewer than two values add nothing, so they are zeroed instead of dropped (no copy
    of the weight matrix); one float32 product gives every replicate's coincidence totals.
    """
    m = counts.sum(axis=1).astype(np.float64)
    pairable = m >= 2
    c = np.where(pairable[:, None], counts, 0).astype(np.float64)
    off_diagonal = np.where(pairable, (m**2 - (c**2).sum(axis=1)) / np.maximum(m - 1, 1), 0.0)
    totals = (weights @ np.column_stack([off_diagonal, c]).astype(weights.dtype)).astype(np.float64)
    observed, n_c = totals[:, 0], totals[:, 1:]
    n = n_c.sum(axis=1)
    expected = n**2 - (n_c**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 - (n - 1) * observed / expected


def alpha_interval(
    counts: np.ndarray, weights: np.ndarray, level: float = 0.95
) -> tuple[list[float] | None, str | None]:
    """Percentile bootstrap interval over units; None with a reason when it cannot be formed."""
    if weights.shape[0] == 0:
        return None, "no bootstrap replicates were requested"
    values = alpha_from_counts(counts, weights)
    values = values[np.isfinite(values)]
    if len(values) < 0.5 * weights.shape[0]:
        return None, "alpha is undefined in most bootstrap replicates (too little variation)"
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)], None


# --------------------------------------------------------------------------- interpretation


LANDIS_KOCH = [
    (0.0, "poor"),
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (1.0, "almost perfect"),
]


def kappa_band(value: float | None) -> str:
    """Landis & Koch (1977) label for a kappa-type coefficient."""
    if value is None:
        return "undefined"
    if value < 0:
        return "poor"
    for upper, label in LANDIS_KOCH[1:]:
        if value <= upper + 1e-12:
            return label
    return "almost perfect"


def alpha_band(value: float | None) -> str:
    """Krippendorff's (2004) thresholds: >= .800 reliable, >= .667 tentative conclusions only."""
    if value is None:
        return "undefined"
    if value >= 0.800:
        return "reliable"
    if value >= 0.667:
        return "tentative"
    return "unreliable"
