"""Mean estimators for a code's prevalence: model only, human sample only, and prediction-powered (PPI++).

The human-only and prediction-powered intervals are those of `ppi-python` (Angelopoulos, Bates, Fannjiang, Jordan
and Zrnic, Science 2023; PPI++ with power tuning: Angelopoulos, Duchi and Zrnic 2024), the authors' reference
implementation: `classical_mean_ci` and `ppi_mean_ci` with the tuning parameter lambda estimated from the data and
clipped to [0, 1] (lambda 0 is the human-only estimate, 1 plain PPI). Sample weights are 1 / inclusion probability,
normalised as ppi-python does. `ppi_by_formula` writes the same estimator out in numpy, for the tests and for
readers who want to see the arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass
class Interval:
    """One estimate: the point, its confidence interval and standard error, and how many values it rests on."""

    estimate: float
    ci_low: float | None = None
    ci_high: float | None = None
    se: float | None = None
    n: int = 0  # human labels (human, ppi), segments (model)
    n_effective: float | None = None  # ppi: the human labels a human-only interval would need for this width
    note: str | None = None  # why there is no interval


def z_value(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def _as_arrays(*values: object) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float).ravel() for v in values]


def model_mean(yhat_all: object) -> Interval:
    """The model-only share: biased by the model's errors, so no interval."""
    (values,) = _as_arrays(yhat_all)
    return Interval(float(values.mean()) if len(values) else math.nan, n=len(values), note="biased: no valid CI")


def human_mean(y: object, weights: object | None = None, level: float = 0.95) -> Interval:
    """The human sample's (inclusion-weighted) mean and its CLT interval (ppi-python's classical_mean_ci)."""
    from ppi_py import classical_mean_ci

    (labels,) = _as_arrays(y)
    w = None if weights is None else _as_arrays(weights)[0]
    n = len(labels)
    scaled = labels if w is None else w / w.sum() * n * labels
    estimate = float(scaled.mean())
    low, high = classical_mean_ci(labels, w=w, alpha=1 - level)
    return Interval(estimate, float(low), float(high), float(scaled.std() / math.sqrt(n)), n)


def ppi_mean(y: object, yhat: object, yhat_all: object, weights: object | None = None, level: float = 0.95) -> Interval:
    """PPI++ with power tuning: `y` the human labels and `yhat` the model's scores on the labelled segments,
    `yhat_all` the model's scores on every segment of the population, `weights` the labelled segments' sample
    weights (1 / inclusion probability; None: a uniform sample). ppi-python's ppi_mean_ci and point estimate."""
    from ppi_py import ppi_mean_ci, ppi_mean_pointestimate

    labels, scores, everyone = _as_arrays(y, yhat, yhat_all)
    w = None if weights is None else _as_arrays(weights)[0]
    alpha = 1 - level
    # scores that never vary carry no information: lambda 0, the human-only estimate (ppi-python would divide by 0)
    lam = 0.0 if np.ptp(np.concatenate([scores, everyone])) == 0 else None
    low, high = ppi_mean_ci(labels, scores, everyone, alpha=alpha, w=w, lam=lam)
    estimate = ppi_mean_pointestimate(labels, scores, everyone, w=w, lam=lam)
    low, high, estimate = float(np.ravel(low)[0]), float(np.ravel(high)[0]), float(np.ravel(estimate)[0])
    se = (high - low) / (2 * z_value(level))
    human = human_mean(labels, w, level)
    effective = len(labels) * (human.se / se) ** 2 if se > 0 and human.se else float(len(labels))
    return Interval(estimate, low, high, se, len(labels), n_effective=effective)


def ppi_by_formula(
    y: object, yhat: object, yhat_all: object, weights: object | None = None, level: float = 0.95
) -> Interval:
    """The same PPI++ mean estimate and interval as `ppi_mean`, written out (ppi-python 0.2.3's formulas):
    theta(lam) = mean(w_u * lam * f_u) + mean(w * (y - lam * f)); lam = cov(y, f) terms over 2 (1 + n/N) var(f),
    clipped to [0, 1], both computed around the lam = 1 estimate; se^2 = var(w_u lam f_u)/N + var(w (y - lam f))/n."""
    labels, scores, everyone = _as_arrays(y, yhat, yhat_all)
    n, big_n = len(labels), len(everyone)
    w = np.ones(n) if weights is None else _as_arrays(weights)[0] / _as_arrays(weights)[0].sum() * n
    theta1 = everyone.mean() + (w * (labels - scores)).mean()
    grads, grads_hat = w * (labels - theta1), w * (scores - theta1)
    cov = 2 * ((grads - grads.mean()) * (grads_hat - grads_hat.mean())).sum() / n
    var_hat = np.var(np.concatenate([grads_hat, everyone - theta1]), ddof=1)
    lam = float(np.clip(cov / (2 * (1 + n / big_n) * var_hat), 0, 1)) if var_hat > 0 else 0.0
    estimate = float((lam * everyone).mean() + (w * (labels - lam * scores)).mean())
    se = math.sqrt((lam * everyone).std() ** 2 / big_n + (w * (labels - lam * scores)).std() ** 2 / n)
    z = z_value(level)
    return Interval(estimate, estimate - z * se, estimate + z * se, se, n)


def difference(a: Interval, b: Interval, level: float = 0.95) -> Interval:
    """a - b for estimates on disjoint groups (independent samples): se = sqrt(se_a^2 + se_b^2)."""
    if a.se is None or b.se is None:
        return Interval(a.estimate - b.estimate, n=a.n + b.n, note="no interval for one of the groups")
    se = math.sqrt(a.se**2 + b.se**2)
    z = z_value(level)
    diff = a.estimate - b.estimate
    return Interval(diff, diff - z * se, diff + z * se, se, a.n + b.n)


def weighted_rate(hits: object, weights: object | None = None, level: float = 0.95) -> Interval:
    """A (weighted) proportion with a Wilson score interval at the Kish effective sample size, which stays inside
    [0, 1] and is not zero-width at 0 or 1 (error rates on small audit cells often are)."""
    (values,) = _as_arrays(hits)
    w = np.ones(len(values)) if weights is None else _as_arrays(weights)[0]
    n = len(values)
    if n == 0:
        return Interval(math.nan, n=0, note="no labels")
    p = float((w * values).sum() / w.sum())
    n_eff = float(w.sum() ** 2 / (w**2).sum())
    z = z_value(level)
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z / (1 + z * z / n_eff) * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff))
    se = math.sqrt(max(p * (1 - p), 0.25 / n_eff) / n_eff)  # for differences: never 0 at p = 0 or 1
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), se, n, n_effective=n_eff)
