"""Selection strategies: which unannotated segments an annotator should see next, and why.

A strategy is a function `(pool, n) -> list[Pick]`: it reads the current model's scores of the segments
nobody has annotated (`Pool`) and returns at most `n` of them, best first, each with the figures that
explain the choice. Strategies are plugins of the entry-point group `culturecode.strategies`; the built-ins
below register in culturecode's own pyproject.toml exactly as a plugin package would in its own:

    [project.entry-points."culturecode.strategies"]
    uncertainty = "pipeline.learning.strategies:uncertainty"

- `uncertainty`: the segments whose score for some code lies closest to that code's threshold;
- `rare`: the best-scored segments for the codes with the fewest labels so far, the rarest first, in turns;
- `diversity`: k-center greedy on the score vectors, starting from the labelled segments (no encoder needed);
- `hybrid`: uncertainty summed over the codes, each code weighted by its rarity, then k-center greedy for a
  diverse batch among the most valuable candidates (on their embeddings when the pool carries them, else on
  their score vectors);
- `random`: a seeded random draw, the baseline the others are measured against.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.plugins import Registry

if TYPE_CHECKING:
    import numpy as np

GROUP = "culturecode.strategies"
REGISTRY = Registry(GROUP, "strategy", "docs/learning.md")
DEFAULT_THRESHOLD = 0.5  # models that store no thresholds (LLM labels, plugins) decide at 0.5
MAX_LABELLED_CENTRES = 2000  # diversity starts from at most this many labelled segments (a seeded sample)


@dataclass
class Candidate:
    """One unannotated segment with the current model's score per code."""

    segment_id: str
    scores: dict[str, float]
    document_id: str = ""
    speaker: str | None = None
    text: str = ""
    vector: Any = None  # the segment's embedding, when known (hybrid's diversity step uses it)


@dataclass
class Pool:
    """What a strategy chooses from: the candidates in document order and what is known so far."""

    candidates: list[Candidate]
    codes: list[str]  # the codes the model scores, in a fixed order
    thresholds: dict[str, float] = field(default_factory=dict)  # score at or above which the model predicts a code
    label_counts: dict[str, int] = field(default_factory=dict)  # how often each code was chosen so far
    counts_from: str = "annotations"  # where label_counts come from: annotations | gold | predictions
    labelled: list[dict[str, float]] = field(default_factory=list)  # score vectors of segments already labelled
    seed: int = 0
    labelled_vectors: list[Any] = field(default_factory=list)  # embeddings of labelled segments, when known
    labelled_codes: list[set[str]] = field(default_factory=list)  # the codes of each labelled segment, when known
    code_vectors: dict[str, Any] = field(default_factory=dict)  # each code's codebook-text embedding, when known

    def threshold(self, code: str) -> float:
        return self.thresholds.get(code, DEFAULT_THRESHOLD)

    def matrix(self, rows: list[dict[str, float]] | None = None) -> np.ndarray:
        """Scores as an array (rows: the candidates, or `rows`; columns: `codes`)."""
        import numpy as np

        vectors = [c.scores for c in self.candidates] if rows is None else rows
        return np.array([[v.get(code, 0.0) for code in self.codes] for v in vectors], dtype=np.float64).reshape(
            len(vectors), len(self.codes)
        )


@dataclass
class Pick:
    """A chosen segment: the strategy's priority (higher first) and the figures behind it."""

    segment_id: str
    priority: float
    reason: str
    code: str | None = None  # the code the choice is about
    score: float | None = None  # the model's score for that code
    threshold: float | None = None
    margin: float | None = None  # score - threshold: how far from flipping the decision
    labels_so_far: int | None = None  # human labels of `code` so far (rare)
    cluster: int | None = None  # diversity: the pick's cluster (its rank) ...
    cluster_size: int | None = None  # ... and the candidates nearer to it than to any other pick
    rank: int = 0
    document_id: str = ""
    speaker: str | None = None
    text: str = ""


Strategy = Callable[[Pool, int], list[Pick]]


def available() -> list[str]:
    """The strategies installed, sorted."""
    return REGISTRY.available()


def check(name: str) -> str:
    return REGISTRY.check(name, "--strategy")


def load(name: str) -> Strategy:
    return REGISTRY.load(name, "--strategy")


def register(name: str, target: str | Strategy) -> None:
    """Make a strategy available in this process under `name` (tests, notebooks)."""
    REGISTRY.register(name, target)


def unregister(name: str) -> None:
    REGISTRY.unregister(name)


# --------------------------------------------------------------------------- built-in strategies


def _closest_code(pool: Pool, scores: dict[str, float]) -> tuple[str, float, float]:
    """(code, score, margin) of the code whose score lies closest to its threshold."""
    best: tuple[str, float, float] | None = None
    for code in pool.codes:
        score = scores.get(code, 0.0)
        margin = score - pool.threshold(code)
        if best is None or abs(margin) < abs(best[2]):
            best = (code, score, margin)
    assert best is not None  # a pool has at least one code
    return best


def uncertainty(pool: Pool, n: int) -> list[Pick]:
    """The segments the model is least sure of: smallest |score - threshold| over the codes."""
    if not pool.codes:
        return []
    picks = []
    for cand in pool.candidates:
        code, score, margin = _closest_code(pool, cand.scores)
        side = "above" if margin >= 0 else "below"
        reason = (
            f"{code} scored {score:.2f}, {abs(margin):.2f} {side} its threshold {pool.threshold(code):.2f}: "
            "a label here settles the closest call"
        )
        picks.append(Pick(cand.segment_id, -abs(margin), reason, code, score, pool.threshold(code), margin))
    picks.sort(key=lambda p: -p.priority)  # stable: ties stay in document order
    return picks[:n]


def _rarity_order(pool: Pool) -> list[str]:
    """The codes from the fewest labels to the most (ties by name)."""
    return sorted(pool.codes, key=lambda code: (pool.label_counts.get(code, 0), code))


def _rare_codes(pool: Pool) -> list[str]:
    """The rarest third of the codes (at least one), with every code tied with the last of them."""
    order = _rarity_order(pool)
    if not order:
        return []
    cut = pool.label_counts.get(order[max(1, math.ceil(len(order) / 3)) - 1], 0)
    return [code for code in order if pool.label_counts.get(code, 0) <= cut]


def _best_for(pool: Pool, code: str) -> list[Candidate]:
    """The candidates from the highest score for `code` down (ties in document order)."""
    return sorted(pool.candidates, key=lambda cand: -cand.scores.get(code, 0.0))


def rare(pool: Pool, n: int) -> list[Pick]:
    """The segments the model scores highest for the codes with the fewest labels so far, taking turns from
    the rarest code: a code nobody has labelled yet (machismo, violence) gets its best bets first."""
    codes = _rare_codes(pool)
    ranked = {code: iter(_best_for(pool, code)) for code in codes}
    taken: set[str] = set()
    picks: list[Pick] = []
    while len(picks) < n and ranked:
        for code in list(ranked):
            cand = next((c for c in ranked[code] if c.segment_id not in taken), None)
            if cand is None:
                del ranked[code]
                continue
            taken.add(cand.segment_id)
            picks.append(_rare_pick(pool, cand, code, len(picks)))
            if len(picks) == n:
                break
    return picks


def _rare_pick(pool: Pool, cand: Candidate, code: str, index: int) -> Pick:
    count, score, threshold = pool.label_counts.get(code, 0), cand.scores.get(code, 0.0), pool.threshold(code)
    what = {"annotations": "label(s) so far", "gold": "gold label(s) so far"}.get(
        pool.counts_from, "predicted segment(s): no labels yet"
    )
    reason = f"{code} is rare ({count} {what}); the model scores this {score:.2f} for it (threshold {threshold:.2f})"
    return Pick(cand.segment_id, -float(index), reason, code, score, threshold, score - threshold, count)


def diversity(pool: Pool, n: int) -> list[Pick]:
    """k-center greedy on the score vectors: each pick is the candidate farthest from everything labelled or
    picked so far, so the batch covers the kinds of segments the model sees rather than repeating one kind."""
    import numpy as np

    if not pool.candidates or not pool.codes:
        return []
    points = pool.matrix()
    nearest = _distance_to_labelled(pool, points)
    chosen: list[int] = []
    reach: list[float] = []
    for _ in range(min(n, len(points))):
        i = int(np.argmax(nearest))
        chosen.append(i)
        reach.append(float(nearest[i]))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[i], axis=1))
        nearest[chosen] = -1.0  # never again
    owner = np.argmin(np.stack([np.linalg.norm(points - points[i], axis=1) for i in chosen]), axis=0)
    sizes = np.bincount(owner, minlength=len(chosen))
    return [_diverse_pick(pool, pool.candidates[i], k, reach[k], int(sizes[k])) for k, i in enumerate(chosen)]


def _distance_to_labelled(pool: Pool, points: np.ndarray) -> np.ndarray:
    """Each candidate's distance to its nearest labelled segment; with none labelled, to the candidates' mean."""
    import numpy as np

    labelled = pool.labelled
    if len(labelled) > MAX_LABELLED_CENTRES:
        labelled = _random.Random(pool.seed).sample(labelled, MAX_LABELLED_CENTRES)
    if not labelled:
        return np.linalg.norm(points - points.mean(axis=0), axis=1)
    centres = pool.matrix(labelled)
    nearest = np.full(len(points), np.inf)
    for start in range(0, len(centres), 256):  # bounded memory: 256 centres at a time
        block = centres[start : start + 256]
        nearest = np.minimum(nearest, np.linalg.norm(points[:, None, :] - block[None, :, :], axis=2).min(axis=1))
    return nearest


def _diverse_pick(pool: Pool, cand: Candidate, cluster: int, reach: float, size: int) -> Pick:
    code = max(pool.codes, key=lambda c: cand.scores.get(c, 0.0))
    score = cand.scores.get(code, 0.0)
    start = "everything labelled or picked before" if pool.labelled else "the picks before it"
    reason = (
        f"farthest from {start} (distance {reach:.2f} in score space); stands for {size} unannotated "
        f"segment(s) like it; its top code is {code} ({score:.2f})"
    )
    return Pick(
        cand.segment_id,
        reach,
        reason,
        code,
        score,
        pool.threshold(code),
        score - pool.threshold(code),
        cluster=cluster,
        cluster_size=size,
    )


SHORTLIST_FACTOR = 5  # hybrid: the diversity step chooses among this many times n of the most valuable candidates


def hybrid(pool: Pool, n: int) -> list[Pick]:
    """Uncertainty where labels are scarce, spread out: each candidate's value is its closeness to every code's
    threshold, summed over the codes, each code weighted by 1/sqrt(1 + its labels so far) (a code nobody has
    labelled, like machismo or violence, weighs most); then k-center greedy among the 5n most valuable, each pick
    the candidate whose value times distance from everything labelled or picked is largest."""
    import numpy as np

    if not pool.candidates or not pool.codes:
        return []
    closeness, weights = _closeness(pool), _rarity_weights(pool)
    value = (closeness * weights).sum(axis=1)
    shortlist = np.argsort(-value, kind="stable")[: min(len(value), SHORTLIST_FACTOR * n)]
    points, centres, space = _diversity_space(pool, shortlist)
    scale = float(value[shortlist].max()) or 1.0
    chosen = _weighted_k_center(points, centres, value[shortlist] / scale, n)
    picks = []
    for rank, k in enumerate(chosen):
        i = int(shortlist[k])
        j = int(np.argmax(closeness[i] * weights))
        picks.append(_hybrid_pick(pool, pool.candidates[i], pool.codes[j], float(value[i]), -float(rank), space))
    return picks


def _closeness(pool: Pool) -> np.ndarray:
    """Per candidate and code: 1 at the code's threshold, falling linearly to 0 at a score of 0 or 1."""
    import numpy as np

    scores = pool.matrix()
    thresholds = np.array([pool.threshold(code) for code in pool.codes])
    room = np.where(scores >= thresholds, 1.0 - thresholds, thresholds)
    return np.clip(1.0 - np.abs(scores - thresholds) / np.maximum(room, 1e-9), 0.0, 1.0)


def _rarity_weights(pool: Pool) -> np.ndarray:
    import numpy as np

    counts = np.array([pool.label_counts.get(code, 0) for code in pool.codes], dtype=np.float64)
    return 1.0 / np.sqrt(1.0 + counts)


def _diversity_space(pool: Pool, shortlist: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(shortlisted points, labelled points, what they are): unit embeddings when every shortlisted candidate
    and labelled segment has one, else score vectors."""
    import numpy as np

    chosen = [pool.candidates[int(i)] for i in shortlist]
    labelled = pool.labelled_vectors
    if all(c.vector is not None for c in chosen) and len(labelled) == len(pool.labelled):
        points = _unit(np.array([c.vector for c in chosen], dtype=np.float64))
        centres = _unit(np.array(labelled, dtype=np.float64).reshape(len(labelled), points.shape[1]))
        return points, centres, "embedding"
    return pool.matrix([c.scores for c in chosen]), pool.matrix(pool.labelled), "score"


def _unit(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def _weighted_k_center(points: np.ndarray, centres: np.ndarray, value: np.ndarray, n: int) -> list[int]:
    """Greedy: each time the point with the largest value x distance to the nearest centre or earlier pick."""
    import numpy as np

    nearest = np.ones(len(points))
    if len(centres):
        sample = centres if len(centres) <= MAX_LABELLED_CENTRES else centres[:: -(-len(centres) // 2000)]
        nearest = np.full(len(points), np.inf)
        for start in range(0, len(sample), 256):  # bounded memory: 256 centres at a time
            block = sample[start : start + 256]
            nearest = np.minimum(nearest, np.linalg.norm(points[:, None, :] - block[None], axis=2).min(axis=1))
    chosen: list[int] = []
    for _ in range(min(n, len(points))):
        gain = value * nearest
        gain[chosen] = -1.0
        i = int(np.argmax(gain))
        chosen.append(i)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[i], axis=1))
    return chosen


def _hybrid_pick(pool: Pool, cand: Candidate, code: str, value: float, priority: float, space: str) -> Pick:
    score, threshold = cand.scores.get(code, 0.0), pool.threshold(code)
    count = pool.label_counts.get(code, 0)
    reason = (
        f"{code} scored {score:.2f} against its threshold {threshold:.2f} with {count} label(s) so far "
        f"(value {value:.2f}: closeness to every code's threshold, rarer codes weighing more); "
        f"unlike the segments labelled or picked before it ({space} space)"
    )
    return Pick(cand.segment_id, priority, reason, code, score, threshold, score - threshold, count)


def random(pool: Pool, n: int) -> list[Pick]:
    """A seeded random draw: the baseline the other strategies are measured against."""
    drawn = _random.Random(pool.seed).sample(pool.candidates, min(n, len(pool.candidates)))
    return [Pick(c.segment_id, 0.0, f"a random draw (seed {pool.seed}): the baseline") for c in drawn]


def run_strategy(name: str, pool: Pool, n: int) -> list[Pick]:
    """The picks of strategy `name`, ranked from 1 and carrying their segment's document, speaker and text."""
    if n < 1:
        return []
    picks: list[Any] = load(name)(pool, n)
    by_id = {c.segment_id: c for c in pool.candidates}
    for rank, pick in enumerate(picks[:n], start=1):
        cand = by_id.get(pick.segment_id)
        pick.rank = rank
        if cand is not None:
            pick.document_id, pick.speaker, pick.text = cand.document_id, cand.speaker, cand.text
    return picks[:n]
