"""Strategies that seek the rare codes' positives: a cold start without labels, anchors for the rare codes, and
`auto`, which moves from one to the other as labels arrive (issue 29).

- `typical`: per code, the unlabelled segments most typical of the code's codebook text (definition, include rules,
  examples) and of dense regions of the pool, taking turns over the codes and spreading over documents;
- `anchor`: for the codes with fewer than `ANCHOR_BELOW` positives so far, the nearest unlabelled neighbours of the
  labelled positives and of the codebook text, ranked by the current model's margin for the code;
- `auto`: `typical` while fewer than `COLD_START` segments are labelled; then margin with diversity (`hybrid`),
  with `anchor` taking a share of each batch for the codes that are still rare. Every pick says which part chose it.

They read the segments' embeddings (`Candidate.vector`, `Pool.labelled_vectors`) and the codebook texts' vectors
(`Pool.code_vectors`) when the pool carries them; without embeddings they fall back to the score vectors, and
without codebook vectors to the model's scores.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from pipeline.learning.strategies import Pick, Pool, hybrid

if TYPE_CHECKING:
    import numpy as np

ANCHOR_BELOW = 20  # anchor serves the codes with fewer positives than this so far
COLD_START = 40  # auto: typical until this many segments are labelled
NEIGHBOURS = 10  # density: the mean similarity to this many nearest segments of the pool
DENSITY_SAMPLE = 2000  # density is measured against at most this many segments (a seeded sample)
ANCHOR_RETRIEVE = 10  # anchor retrieves this many nearest neighbours per anchor before ranking by margin
AUTO_ANCHOR_SHARE = 0.5  # auto: at most this share of a batch goes to anchor while some code is rare


def _unit(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def _has_vectors(pool: Pool) -> bool:
    return bool(pool.candidates) and all(c.vector is not None for c in pool.candidates)


def _points(pool: Pool) -> tuple[np.ndarray, str]:
    """The candidates as unit rows: their embeddings when every one has one, else their score vectors."""
    import numpy as np

    if _has_vectors(pool):
        return _unit(np.array([c.vector for c in pool.candidates], dtype=np.float64)), "embedding"
    return _unit(pool.matrix()), "score"


def _density(points: np.ndarray, seed: int) -> np.ndarray:
    """Each point's mean cosine similarity to its `NEIGHBOURS` nearest points (of a sample of at most
    `DENSITY_SAMPLE`): high in the dense regions of the pool, low for outliers."""
    import numpy as np

    reference = points
    if len(points) > DENSITY_SAMPLE:
        reference = points[np.random.default_rng(seed).choice(len(points), DENSITY_SAMPLE, replace=False)]
    k = min(NEIGHBOURS, len(reference) - 1)
    if k < 1:
        return np.zeros(len(points))
    out = np.empty(len(points))
    for start in range(0, len(points), 1024):  # bounded memory
        sims = points[start : start + 1024] @ reference.T
        top = -np.partition(-sims, k, axis=1)[
            :, : k + 1
        ]  # the k + 1 largest similarities (the largest: usually the point itself)
        out[start : start + 1024] = (top.sum(axis=1) - top.max(axis=1)) / k
    return out


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


def _code_affinity(pool: Pool, points: np.ndarray, space: str) -> tuple[np.ndarray, bool]:
    """(per candidate and code: cosine similarity to the code's codebook vector, True) in embedding space when the
    pool carries the codebook vectors; else (the model's scores, False)."""
    import numpy as np

    vectors = pool.code_vectors
    if space == "embedding" and vectors and all(vectors.get(code) is not None for code in pool.codes):
        centres = _unit(np.array([vectors[code] for code in pool.codes], dtype=np.float64))
        if centres.shape[1] == points.shape[1]:
            return points @ centres.T, True
    return pool.matrix(), False


def _take_turns(
    pool: Pool, order: list[str], ranked: dict[str, list[int]], n: int, taken: set[int], spread: bool = True
) -> list[tuple[str, int]]:
    """Round robin over `order`: each code takes its best candidate not taken yet; with `spread`, preferring
    documents the batch has not used (among its next 50)."""
    used_docs: set[str] = set()
    out: list[tuple[str, int]] = []
    queues = {code: list(ranked[code]) for code in order}
    while len(out) < n and any(queues.values()):
        for code in order:
            queue = queues[code]
            while queue and queue[0] in taken:
                queue.pop(0)
            if not queue:
                continue
            fresh = (k for k, i in enumerate(queue[:50]) if pool.candidates[i].document_id not in used_docs)
            pos = next(fresh, 0) if spread else 0
            i = queue.pop(pos)
            taken.add(i)
            used_docs.add(pool.candidates[i].document_id)
            out.append((code, i))
            if len(out) == n:
                break
    return out


def typical(pool: Pool, n: int) -> list[Pick]:
    """A cold start without labels: per code, the segments most typical of its codebook text and of the dense
    regions of the pool (z-scored similarity to the code's vector plus z-scored density), taking turns over the
    codes (fewest labels first) and spreading over documents."""
    if not pool.candidates or not pool.codes:
        return []
    points, space = _points(pool)
    density = _z(_density(points, pool.seed))
    affinity, from_text = _code_affinity(pool, points, space)
    import numpy as np

    value = np.stack([_z(affinity[:, j]) for j in range(len(pool.codes))], axis=1) + density[:, None]
    order = sorted(pool.codes, key=lambda code: (pool.label_counts.get(code, 0), code))
    ranked = {code: list(np.argsort(-value[:, pool.codes.index(code)], kind="stable")) for code in order}
    picks = []
    for rank, (code, i) in enumerate(_take_turns(pool, order, ranked, n, set())):
        j = pool.codes.index(code)
        cand = pool.candidates[i]
        score, threshold = cand.scores.get(code, 0.0), pool.threshold(code)
        about = f"similarity {affinity[i, j]:.2f} to its codebook text" if from_text else f"score {score:.2f}"
        reason = (
            f"typical of {code} ({about}) and of a dense region of the pool (density z {density[i]:+.2f}); "
            "cold start: spread over the codes and documents"
        )
        picks.append(
            Pick(
                cand.segment_id,
                -float(rank),
                reason,
                code,
                score,
                threshold,
                score - threshold,
                pool.label_counts.get(code, 0),
            )
        )
    return picks


def _positives(pool: Pool, code: str, space: str) -> np.ndarray:
    """The labelled positives of `code` as unit rows in `space` (empty when unknown)."""
    import numpy as np

    rows = [k for k, codes in enumerate(pool.labelled_codes) if code in codes]
    if not rows:
        return np.zeros((0, 0))
    if space == "embedding":
        if len(pool.labelled_vectors) != len(pool.labelled_codes):
            return np.zeros((0, 0))
        return _unit(np.array([pool.labelled_vectors[k] for k in rows], dtype=np.float64))
    if len(pool.labelled) != len(pool.labelled_codes):
        return np.zeros((0, 0))
    return _unit(pool.matrix([pool.labelled[k] for k in rows]))


def rare_codes(pool: Pool, below: int = ANCHOR_BELOW) -> list[str]:
    """The codes with fewer than `below` positives so far, fewest first."""
    return sorted(
        (c for c in pool.codes if pool.label_counts.get(c, 0) < below), key=lambda c: (pool.label_counts.get(c, 0), c)
    )


def anchor_ranking(pool: Pool, code: str, points: np.ndarray, space: str) -> tuple[list[int], np.ndarray, int]:
    """(candidates retrieved for `code`, best by margin first; their similarity to the nearest anchor; anchors)."""
    import numpy as np

    anchors = _positives(pool, code, space)
    if space == "embedding" and pool.code_vectors.get(code) is not None:
        vec = _unit(np.array([pool.code_vectors[code]], dtype=np.float64))
        if vec.shape[1] == points.shape[1]:
            anchors = vec if not len(anchors) else np.vstack([anchors, vec])
    scores = np.array([c.scores.get(code, 0.0) for c in pool.candidates])
    if not len(anchors) or anchors.shape[1] != points.shape[1]:
        return list(np.argsort(-scores, kind="stable")), np.zeros(len(points)), 0
    sims = points @ anchors.T
    retrieved: set[int] = set()
    per = max(ANCHOR_RETRIEVE, math.ceil(3 * ANCHOR_RETRIEVE / len(anchors)))
    for a in range(len(anchors)):
        retrieved.update(int(i) for i in np.argsort(-sims[:, a], kind="stable")[:per])
    nearest = sims.max(axis=1)
    inside = sorted(retrieved, key=lambda i: (-(scores[i] + nearest[i]), i))
    rest = [int(i) for i in np.argsort(-scores, kind="stable") if int(i) not in retrieved]
    return inside + rest, nearest, len(anchors)


def anchor(pool: Pool, n: int) -> list[Pick]:
    """For the codes with fewer than `ANCHOR_BELOW` positives: the nearest unlabelled neighbours of the labelled
    positives and of the codebook text, ranked by the model's margin for the code plus the similarity to the nearest
    anchor (where the model knows nothing yet, the similarity leads), taking turns from the rarest.
    With no code that rare, the closest calls (hybrid) fill the batch."""
    codes = rare_codes(pool)
    if not pool.candidates or not codes:
        return hybrid(pool, n)
    points, space = _points(pool)
    ranked, nearest, anchors = {}, {}, {}
    for code in codes:
        ranked[code], nearest[code], anchors[code] = anchor_ranking(pool, code, points, space)
    picks = []
    for rank, (code, i) in enumerate(_take_turns(pool, codes, ranked, n, set(), spread=False)):
        cand = pool.candidates[i]
        score, threshold, count = cand.scores.get(code, 0.0), pool.threshold(code), pool.label_counts.get(code, 0)
        near = (
            f"near its {anchors[code]} anchor(s) (labelled positives and codebook text; similarity "
            f"{nearest[code][i]:.2f}, {space} space)"
            if anchors[code]
            else "no anchors yet"
        )
        reason = (
            f"{code} is rare ({count} positive(s) so far, fewer than {ANCHOR_BELOW}); {near}; "
            f"the model scores it {score:.2f} (margin {score - threshold:+.2f})"
        )
        picks.append(Pick(cand.segment_id, -float(rank), reason, code, score, threshold, score - threshold, count))
    if len(picks) < n:
        done = {p.segment_id for p in picks}
        picks += hybrid(_without(pool, done), n - len(picks))
    return picks


def auto(pool: Pool, n: int) -> list[Pick]:
    """`typical` while fewer than `COLD_START` segments are labelled; then margin with diversity (`hybrid`), with
    `anchor` taking `AUTO_ANCHOR_SHARE` of the batch for the codes that
    still have fewer than `ANCHOR_BELOW` positives."""
    labelled = len(pool.labelled)
    if labelled < COLD_START:
        head = f"auto: cold start ({labelled} segment(s) labelled, fewer than {COLD_START}), typical: "
        return [_prefixed(p, head) for p in typical(pool, n)]
    rare = rare_codes(pool)
    share = math.ceil(AUTO_ANCHOR_SHARE * n) if rare else 0
    picks = [_prefixed(p, "auto: anchor for a rare code: ") for p in anchor(pool, share)] if share else []
    done = {p.segment_id for p in picks}
    rest = _without(pool, done)
    head = f"auto: margin with diversity ({labelled} segment(s) labelled): "
    picks += [_prefixed(p, head) for p in hybrid(rest, n - len(picks))]
    for rank, pick in enumerate(picks):
        pick.priority = -float(rank)
    return picks


def _without(pool: Pool, done: set[str]) -> Pool:
    return replace(pool, candidates=[c for c in pool.candidates if c.segment_id not in done])


def _prefixed(pick: Pick, head: str) -> Pick:
    pick.reason = head + pick.reason
    return pick


__all__ = ["anchor", "auto", "rare_codes", "typical"]
