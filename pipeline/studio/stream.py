"""The order Label Studio serves tasks to annotators ("Label All Tasks"), set from `studio.sampling`: `sequential`
(import order), `uncertainty` (the default) or the name of any active-learning strategy (`culturecode next`).

In the Community edition the labeling stream is the Data Manager's queue: the UI always asks for the next task of its
current tab (view), so the tab's ordering decides (checked in a real browser, label-studio 1.23). culturecode gives
each project's tabs the ordering `tasks:predictions_score` ascending: our prediction score is the least certain
per-code decision (`labeling.prediction`), so the least certain pre-label comes first, and a new model version's
predictions re-order what comes next. The project's own sampling is set to match, for clients of its `next` API.
With another strategy (`rare`, `diversity`, `hybrid`, ...) each prediction's score is instead its place in that
strategy's order (0 = ask first), computed when the predictions are pushed, so the stream follows the strategy and is
re-ordered with every new model version. A tab someone ordered by hand is left alone (reported). Tasks without a
prediction (the blind subset) come after every pre-labelled task: the Data Manager sorts an empty score last (nulls
last, on SQLite and PostgreSQL alike); `push` says so when it applies.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import CultureCodeError
from pipeline.studio.client import Studio

BY_UNCERTAINTY = ["tasks:predictions_score"]  # lowest first: the least certain, or the strategy's first
BY_IMPORT = ["tasks:id"]
OURS = [BY_UNCERTAINTY, BY_IMPORT, []]
# strategies ranked for the stream at most this deep; the rest keep score 1 (after every ranked task)
MAX_RANKED = 20_000
TAB_TITLE = "Default"


def ordered_by_model(mode: str) -> bool:
    """Whether `mode` orders the stream by prediction score (then tasks with no prediction come last)."""
    return mode != "sequential"


def order_label_stream(studio: Studio, project_id: int, mode: str) -> list[int]:
    """Give the project's tabs the ordering of `mode` (a first tab is made when it has none); the ids of tabs left
    alone because someone ordered them by hand."""
    sequential = not ordered_by_model(mode)
    sampling = "Sequential sampling" if sequential else "Uncertainty sampling"
    studio.call(studio.sdk.projects.update, project_id, sampling=sampling)
    wanted = BY_IMPORT if sequential else BY_UNCERTAINTY
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
