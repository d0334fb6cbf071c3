"""The order Label Studio serves tasks to annotators ("Label All Tasks"), set from `studio.sampling`.

In the Community edition the labeling stream is the Data Manager's queue: the UI always asks for the next task of its
current tab (view), so the tab's ordering decides (checked in a real browser, label-studio 1.23). culturecode gives
each project's tabs the ordering `tasks:predictions_score` ascending: our prediction score is the least certain
per-code decision (`labeling.prediction`), so the least certain pre-label comes first, and a new model version's
predictions re-order what comes next. The project's own sampling is set to match, for clients of its `next` API.
A tab someone ordered by hand is left alone (reported). Tasks without a prediction (the blind subset) sort first.
"""

from __future__ import annotations

from typing import Any

from pipeline.studio.client import Studio

BY_UNCERTAINTY = ["tasks:predictions_score"]
ORDERINGS: dict[str, list[str]] = {"uncertainty": BY_UNCERTAINTY, "sequential": ["tasks:id"]}
SAMPLING = {"uncertainty": "Uncertainty sampling", "sequential": "Sequential sampling"}
OURS = [ordering for ordering in ORDERINGS.values()] + [[]]
TAB_TITLE = "Default"


def order_label_stream(studio: Studio, project_id: int, mode: str) -> list[int]:
    """Give the project's tabs the ordering of `mode` (a first tab is made when it has none); the ids of tabs left
    alone because someone ordered them by hand."""
    studio.call(studio.sdk.projects.update, project_id, sampling=SAMPLING[mode])
    wanted = ORDERINGS[mode]
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
