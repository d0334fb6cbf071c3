"""Agreement over whole label sets: Krippendorff's alpha with MASI or Jaccard distance, exact match.

nltk's `masi_distance`/`jaccard_distance` divide by zero for two empty sets (two annotators who
both said "no code" agree perfectly: distance 0). Calling them for every pair of distinct sets
is also far too slow for thousands of sets, so the distances are computed here on boolean
vectors with the same definitions (MASI per Passonneau 2006 as in nltk 3.10: monotonicity 1,
2/3, 1/3, 0) and the tests check them against nltk. The expected disagreement n'Dn is summed
block by block so the distance matrix over distinct sets is never held in memory at once.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from pipeline.agreement.coefficients import NO_PAIRS, ONE_RATER, Coef

METRICS = ("masi", "jaccard")


def set_distance(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Distances between boolean label vectors a (..., C) and b (..., C), broadcasting."""
    inter = (a & b).sum(axis=-1).astype(np.float64)
    size_a, size_b = a.sum(axis=-1), b.sum(axis=-1)
    union = size_a + size_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        jaccard = np.where(union > 0, inter / np.maximum(union, 1), 1.0)  # two empty sets are equal
    if metric == "jaccard":
        return 1.0 - jaccard
    if metric != "masi":
        raise ValueError(f"unknown set distance '{metric}'")
    same = (size_a == size_b) & (inter == size_a)
    subset = inter == np.minimum(size_a, size_b)
    monotonicity = np.select([same, subset, inter > 0], [1.0, 2 / 3, 1 / 3], default=0.0)
    return 1.0 - jaccard * monotonicity


def encode_sets(labels: np.ndarray, rated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct label sets: ids (units, raters) with -1 where missing, and their vectors (S, C)."""
    flat = labels[rated]
    packed = np.ascontiguousarray(np.packbits(flat, axis=-1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()  # one sortable key per set
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    ids = np.full(rated.shape, -1, dtype=np.int64)
    ids[rated] = inverse.ravel()
    return ids, flat[first].astype(bool)


def _expected_sums(vectors: np.ndarray, n_s: np.ndarray, block: int) -> dict[str, float]:
    """n' D n over distinct sets for both metrics, D built block by block from one matrix product."""
    v = vectors.astype(np.float32)
    sizes = v.sum(axis=1)
    n32 = n_s.astype(np.float32)
    totals = dict.fromkeys(METRICS, 0.0)
    for start in range(0, len(v), block):
        inter = v[start : start + block] @ v.T
        size_a, size_b = sizes[start : start + block, None], sizes[None, :]
        union = size_a + size_b - inter
        jaccard = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)  # empty vs empty: equal
        subset = inter == np.minimum(size_a, size_b)
        same = subset & (size_a == size_b)
        monotonicity = np.where(same, 1, np.where(subset, 2 / 3, np.where(inter > 0, 1 / 3, 0))).astype(np.float32)
        weights = n32[start : start + block]
        totals["jaccard"] += float(weights @ (1 - jaccard) @ n32)
        totals["masi"] += float(weights @ (1 - jaccard * monotonicity) @ n32)
    return totals


def set_alphas(labels: np.ndarray, rated: np.ndarray, block: int = 1024) -> dict[str, Coef]:
    """Krippendorff's alpha over label sets with MASI and Jaccard distance.

    labels (units, raters, codes) bool; rated (units, raters) bool.
    """
    if (rated.sum(axis=0) > 0).sum() < 2:
        return dict.fromkeys(METRICS, Coef.undefined(ONE_RATER))
    m = rated.sum(axis=1)
    keep = m >= 2
    if not keep.any():
        return dict.fromkeys(METRICS, Coef.undefined(NO_PAIRS))
    labels, rated, m = labels[keep], rated[keep], m[keep].astype(np.float64)
    ids, vectors = encode_sets(labels, rated)
    n_s = np.bincount(ids[ids >= 0], minlength=len(vectors)).astype(np.float64)
    n = n_s.sum()
    expected = _expected_sums(vectors, n_s, block)
    out = {}
    for metric in METRICS:
        observed = np.zeros(len(m))
        for a, b in combinations(range(rated.shape[1]), 2):
            both = rated[:, a] & rated[:, b]
            observed[both] += 2 * set_distance(labels[both, a], labels[both, b], metric)
        if expected[metric] <= 0:
            out[metric] = Coef.undefined("every annotator chose the same label set, so chance agreement is total")
        else:
            out[metric] = Coef.of(
                1 - (n - 1) * float((observed / (m - 1)).sum()) / expected[metric], "alpha is undefined here"
            )
    return out


def set_alpha(labels: np.ndarray, rated: np.ndarray, metric: str) -> Coef:
    return set_alphas(labels, rated)[metric]


def exact_match(labels: np.ndarray, rated: np.ndarray) -> Coef:
    """Mean over annotator pairs of the share of shared units with identical label sets."""
    if (rated.sum(axis=0) > 0).sum() < 2:
        return Coef.undefined(ONE_RATER)
    shares = []
    for a, b in combinations(range(rated.shape[1]), 2):
        both = rated[:, a] & rated[:, b]
        if both.any():
            shares.append(float((labels[both, a] == labels[both, b]).all(axis=-1).mean()))
    return Coef(float(np.mean(shares))) if shares else Coef.undefined(NO_PAIRS)
