"""Which new segment an edited segment became, so a re-ingest can carry its annotations over.

The old and new turns of a re-ingested document are aligned like `diff` aligns lines: a segment
dropped from a run of unchanged turns pairs with nothing (it was deleted), one in a run of changed
turns pairs with the most similar new turn of that run, provided the texts are at least
`min_similarity` alike (difflib's ratio: 1.0 for the same text, about 0.93 for one word changed in
a 40-character turn). Each new segment takes the work of one old segment at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from pipeline.store import Segment

# a run of changed turns larger than this (old x new) is paired position by position, not all pairs
_MAX_PAIRS = 250_000


@dataclass(frozen=True)
class Successor:
    segment_id: str
    similarity: float


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def match_successors(
    old: list[Segment], new: list[Segment], dropped: list[str], min_similarity: float
) -> dict[str, Successor]:
    """{id of a dropped old segment: the new segment it became} for the dropped segments that have one.

    `old` and `new` are a document's active segments before and after, in document order; only new
    segments that did not exist before can be successors (an unchanged turn keeps its own work),
    except for a turn whose ID changed with its text unchanged (a repeated turn renumbered)."""
    wanted = set(dropped)
    if not wanted:
        return {}
    old_ids = {s.id for s in old}
    fresh_ids = {s.id for s in new if s.id not in old_ids}
    blocks = SequenceMatcher(None, [_key(s) for s in old], [_key(s) for s in new], autojunk=False).get_opcodes()
    found: dict[str, Successor] = {}
    taken: set[str] = set()
    for tag, i1, i2, j1, j2 in blocks:
        olds = [s for s in old[i1:i2] if s.id in wanted]
        if tag == "equal":
            pairs = [(o, n, 1.0) for o, n in zip(old[i1:i2], new[j1:j2], strict=True) if o.id in wanted]
        elif tag == "replace":
            pairs = _ranked_pairs(olds, [s for s in new[j1:j2] if s.id in fresh_ids], min_similarity)
        else:
            continue
        for o, n, score in pairs:
            if o.id not in found and n.id not in taken:
                found[o.id] = Successor(n.id, round(score, 3))
                taken.add(n.id)
    return found


def _key(seg: Segment) -> tuple[str | None, str]:
    return (seg.speaker, seg.text)


def _ranked_pairs(
    olds: list[Segment], news: list[Segment], min_similarity: float
) -> list[tuple[Segment, Segment, float]]:
    """Candidate (old, new, similarity) pairs at or above `min_similarity`, best first (ties: nearest)."""
    if not olds or not news:
        return []
    if len(olds) * len(news) > _MAX_PAIRS:
        candidates = list(zip(olds, news, strict=False))
    else:
        candidates = [(o, n) for o in olds for n in news]
    pairs = []
    for o, n in candidates:
        quick = SequenceMatcher(None, o.text, n.text, autojunk=False)
        if quick.real_quick_ratio() < min_similarity or quick.quick_ratio() < min_similarity:
            continue
        score = quick.ratio()
        if score >= min_similarity:
            pairs.append((o, n, score))
    olds_at = {o.id: i for i, o in enumerate(olds)}
    news_at = {n.id: i for i, n in enumerate(news)}
    pairs.sort(key=lambda p: (-p[2], abs(olds_at[p[0].id] - news_at[p[1].id])))
    return pairs
