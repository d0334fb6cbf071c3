"""The order Label Studio serves tasks to annotators ("Label All Tasks") and the sampling design behind it.

Every task belongs to one stream (recorded per task in the store: `tasks.stream`, `inclusion_probability`):
- `blind`: the blind subset (pipeline/store/blind.py), a uniformly random sample coded with no pre-labels, inclusion
  probability `studio.blind_fraction`;
- `audit`: the audit stream, a uniformly random sample coded with pre-labels (`studio.audit_fraction`), inclusion
  probability audit x (1 - blind), as a segment drawn for both is pushed blind;
- the model-ordered stream, named by `studio.sampling`: `uncertainty` (the default, least certain pre-label first),
  `sequential` (import order) or any active-learning strategy of `culturecode next` (its order); chosen by the model,
  so no inclusion probability.

In the Community edition the labeling stream is the Data Manager's queue: the UI asks for the next task of its
current tab (view), so the tab's ordering decides (checked in a real browser, label-studio 1.23). The Data Manager
sorts by one field, and blind tasks have no prediction (so no score), so every task carries its place in the stream
as a sort key in its data (`stream_order`, a fixed-width decimal in [0, 1), compared as text) and culturecode orders
each project's tabs by it. The model-ordered tasks take keys (rank + 1/2) / n in the mode's order; the random-stream
tasks (blind and audit) are stratified: in a random order (a stable hash under the workspace's salt) the j-th of m
takes (j + u) / m with u a second stable uniform draw, so one falls in each of m equal stretches of the stream, at a
random place within it. An annotator who codes the first k tasks meets about k x m / (n + m) of them, whatever the
mode. Keys are computed on each push over every segment pushed, and tasks nobody has annotated get their new key
(a new model version re-orders what comes next). A tab someone ordered by hand is left alone (reported).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import CultureCodeError
from pipeline.store.blind import BlindSubset, draw
from pipeline.studio.client import Studio

ORDER_FIELD = "stream_order"  # the task data's sort key (see above)
BY_STREAM = [f"tasks:data.{ORDER_FIELD}"]
BY_UNCERTAINTY = ["tasks:predictions_score"]  # before issue 27: blind tasks (no score) came last
BY_IMPORT = ["tasks:id"]
OURS = [BY_STREAM, BY_UNCERTAINTY, BY_IMPORT, []]
RANDOM_STREAMS = ("blind", "audit")
# strategies ranked for the stream at most this deep; the rest keep score 1 (after every ranked task)
MAX_RANKED = 20_000
TAB_TITLE = "Default"


@dataclass(frozen=True)
class Place:
    """A segment's place in the sampling design: its stream, inclusion probability and sort key."""

    stream: str
    inclusion_probability: float | None
    order: str


def _key(x: float) -> str:
    return f"{min(max(x, 0.0), 0.999999):.6f}"


def plan_stream(
    segment_ids: Sequence[str],
    mode: str,
    blind: BlindSubset,
    audit: BlindSubset,
    model_keys: Mapping[str, float] | None = None,
) -> dict[str, Place]:
    """Every segment's stream and place. `segment_ids` in import order; `model_keys`: the model-ordered stream's sort
    values (lower = asked first; a segment without one comes after those with one, in import order), None for
    `sequential` or when no model pre-labels."""
    random_ids = [s for s in segment_ids if s in blind or s in audit]
    rest = [s for s in segment_ids if s not in blind and s not in audit]
    keys = model_keys or {}
    index = {s: i for i, s in enumerate(rest)}
    ranked = sorted(rest, key=lambda s: (0, keys[s], index[s]) if s in keys else (1, 0.0, index[s]))
    places = {s: Place(mode, None, _key((r + 0.5) / len(ranked))) for r, s in enumerate(ranked)}
    salt = blind.salt or audit.salt
    shuffled = sorted(random_ids, key=lambda s: draw(salt, "stream-order\x00" + s))
    for j, s in enumerate(shuffled):
        u = draw(salt, "stream-place\x00" + s)
        stream, p = ("blind", blind.fraction) if s in blind else ("audit", audit.fraction * (1 - blind.fraction))
        places[s] = Place(stream, round(p, 6), _key((j + u) / len(shuffled)))
    return places


def model_keys(
    mode: str, scores: Mapping[str, Mapping[str, float]], ranks: Mapping[str, float] | None
) -> dict[str, float] | None:
    """The model-ordered stream's sort values: a strategy's ranks, the least certain per-code decision for
    `uncertainty` (as the prediction's score, `labeling.prediction`), None for `sequential`."""
    if mode == "sequential":
        return None
    if ranks is not None:
        return dict(ranks)
    return {s: min((max(p, 1.0 - p) for p in per_code.values()), default=1.0) for s, per_code in scores.items()}


def ordered_by_model(mode: str) -> bool:
    """Whether `mode` orders the model-chosen tasks by the model (rather than import order)."""
    return mode != "sequential"


def order_label_stream(studio: Studio, project_id: int, mode: str) -> list[int]:
    """Give the project's tabs the stream's ordering (`data.stream_order`; a first tab is made when it has none); the
    ids of tabs left alone because someone ordered them by hand."""
    sequential = not ordered_by_model(mode)
    sampling = "Sequential sampling" if sequential else "Uncertainty sampling"
    studio.call(studio.sdk.projects.update, project_id, sampling=sampling)
    wanted = BY_STREAM
    views = studio.call(studio.sdk.views.list, project=project_id)
    if not views:
        studio.call(studio.sdk.views.create, project=project_id, data={"title": TAB_TITLE, "ordering": wanted})
        return []
    kept = []
    for view in views:
        data: dict[str, Any] = dict(view.data or {})
        current = list(data.get("ordering") or [])
        if current == wanted:
            continue
        if current not in OURS:
            kept.append(int(view.id))
            continue
        studio.call(studio.sdk.views.update, str(view.id), project=project_id, data={**data, "ordering": wanted})
    return kept


def stream_ranks(store: Any, mode: str, model_version: str) -> dict[str, float] | None:
    """Each unannotated segment's place in strategy `mode`'s order as a score in [0, 1) (0 = ask first); None for
    `uncertainty` and `sequential`, whose order needs no ranks. An unknown strategy is refused, listing the others."""
    from pipeline.learning import available, next_segments

    if mode in ("uncertainty", "sequential"):
        return None
    if mode not in available():
        raise CultureCodeError(
            f"studio.sampling '{mode}' is not uncertainty, sequential or an installed strategy "
            f"({', '.join(available())}); fix it in the settings"
        )
    picks = next_segments(store, mode, n=MAX_RANKED, model_version=model_version).picks
    return {pick.segment_id: index / max(len(picks), 1) for index, pick in enumerate(picks)}


def stream_rank(ranks: dict[str, float] | None, segment_id: str) -> float | None:
    """The score a segment's prediction carries for the stream: its rank, 1 when unranked; None: its certainty."""
    if ranks is None:
        return None
    return ranks.get(segment_id, 1.0)
