"""The annotator's label stream in the real Label Studio UI follows the model: "Label All Tasks" serves the least
certain pre-label first, a new model version's predictions re-order what comes next, another chosen strategy's order
is followed, and blind tasks (no prediction, so no score) are met early and throughout (issues 14, 27).

In the Community edition the stream is the Data Manager tab's order; culturecode orders the tabs by each task's
`stream_order` (the model's order, `studio.sampling`, with the random streams interleaved;
pipeline/studio/stream.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from pipeline.learning import next_segments
from pipeline.store.blind import SALT_KEY, draw
from pipeline.studio import add_annotators, connect, push
from tests import factory
from tests.e2e.test_studio_browser import HOW, chromium
from tests.integration.conftest import make_workspace, rows

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _scores(store, certainties: list[float]) -> dict[str, dict[str, float]]:
    """Per segment (document order): carrot scored so that the decision's certainty is the given one."""
    return {seg.id: {"carrot": c, "stick": 0.02} for seg, c in zip(store.segments(), certainties, strict=True)}


def test_label_all_tasks_serves_the_least_certain_first_and_follows_a_new_model(studio_server, tmp_path, codebook):
    ws = tmp_path / "ws"
    store = make_workspace(ws, n_docs=1, turns=6, model_version=None)
    ids = [seg.id for seg in store.segments()]
    factory.add_scores(store, "v1", codebook, _scores(store, [0.97, 0.62, 0.88, 0.53, 0.75, 0.93]))
    settings = studio_server.workspace_settings(ws)
    (person,) = add_annotators(connect(settings), settings, [f"stream-{uuid.uuid4().hex[:8]}"])
    project = push(store, settings, codebook, annotators=[person.email], show_progress=False).projects[0]
    task_segment = _task_segments(store)

    with _label_stream(studio_server.url, person, project.id) as (page, first):
        assert task_segment[first] == ids[3]  # certainty 0.53: the least certain
        page.get_by_text(store.segment(ids[3]).text).first.wait_for()
        assert task_segment[_submit_for_next(page)] == ids[1]  # 0.62 next

        # a retrained model (as `culturecode serve` would push it): now segment 5 is the least certain
        factory.add_scores(store, "v2", codebook, _scores(store, [0.99, 0.9, 0.8, 0.7, 0.96, 0.51]))
        push(store, settings, codebook, show_progress=False)
        assert task_segment[_submit_for_next(page)] == ids[5]  # segment 1 is done; the stream asks again


def test_the_stream_follows_another_chosen_strategy(studio_server, tmp_path, codebook):
    """`studio.sampling: rare`: the UI serves the segments in the order `culturecode next --strategy rare` gives."""
    ws = tmp_path / "ws"
    store = make_workspace(ws, n_docs=1, turns=6, model_version=None)
    scores = {
        seg.id: {"carrot": carrot, "stick": stick}
        for seg, carrot, stick in zip(
            store.segments(), [0.97, 0.62, 0.88, 0.53, 0.75, 0.93], [0.1, 0.05, 0.3, 0.02, 0.8, 0.45], strict=True
        )
    }
    factory.add_scores(store, "v1", codebook, scores)
    order = [p.segment_id for p in next_segments(store, "rare", n=10).picks]
    by_certainty = sorted(scores, key=lambda s: min(max(p, 1 - p) for p in scores[s].values()))
    assert order[0] not in (by_certainty[0], store.segments()[0].id)  # the strategy's own order is what is checked
    settings = studio_server.workspace_settings(ws, **{"studio.sampling": "rare"})
    (person,) = add_annotators(connect(settings), settings, [f"rare-{uuid.uuid4().hex[:8]}"])
    project = push(store, settings, codebook, annotators=[person.email], show_progress=False).projects[0]
    task_segment = _task_segments(store)

    with _label_stream(studio_server.url, person, project.id) as (page, first):
        assert task_segment[first] == order[0]
        assert task_segment[_submit_for_next(page)] == order[1]


def test_blind_tasks_are_served_early_and_throughout_the_model_ordered_stream(studio_server, tmp_path, codebook):
    """Issue 27: blind segments have no prediction (no score), yet under `uncertainty` sampling the stream serves one
    in each half of the stream at a random place (their `stream_order`), the others least certain first."""
    ws = tmp_path / "ws"
    store = make_workspace(ws, n_docs=1, turns=8, model_version=None)
    ids = [seg.id for seg in store.segments()]
    with store.transaction():
        store.set_meta(SALT_KEY, "stream-test")
    first_two = sorted(ids, key=lambda i: draw("stream-test", i))[:2]
    fraction = draw("stream-test", first_two[1]) + 1e-9  # exactly these two segments are blind
    certainty = dict(zip(ids, [0.62, 0.88, 0.75, 0.51, 0.97, 0.66, 0.58, 0.93], strict=True))
    factory.add_scores(store, "v1", codebook, _scores(store, [certainty[i] for i in ids]))
    settings = studio_server.workspace_settings(ws, **{"studio.blind_fraction": fraction})
    (person,) = add_annotators(connect(settings), settings, [f"blind-{uuid.uuid4().hex[:8]}"])
    report = push(store, settings, codebook, annotators=[person.email], show_progress=False)
    assert report.blind_segments == 2 and "random positions" in report.order_rule
    task_segment = _task_segments(store)
    planned = [r["segment_id"] for r in rows(store, "SELECT segment_id FROM tasks ORDER BY stream_order")]

    with _label_stream(studio_server.url, person, report.projects[0].id) as (page, first):
        served = [task_segment[first]] + [task_segment[_submit_for_next(page)] for _ in ids[1:]]
    assert served == planned
    blind_at = [served.index(i) for i in first_two]
    assert min(blind_at) < 4 and max(blind_at) >= 4  # one in each half: met early, and again later
    labelled = [i for i in served if i not in first_two]
    assert labelled == sorted(labelled, key=certainty.get)  # the rest: least certain first


def _task_segments(store) -> dict[int, str]:
    return {r["task_id"]: r["segment_id"] for r in rows(store, "SELECT task_id, segment_id FROM tasks")}


@contextmanager
def _label_stream(url: str, person, project_id: int) -> Iterator[tuple[Any, int]]:
    """The annotator logged in to Debian's chromium, in "Label All Tasks" of the project: the page and the id of
    the first task the stream served."""
    sync_api = pytest.importorskip("playwright.sync_api", reason=f"playwright is not installed: {HOW}")
    browser_path = chromium()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, headless=True, args=["--no-sandbox"])
        page = _logged_in(browser, url, person)
        with page.expect_response(_next_task) as served:
            page.goto(f"{url}/projects/{project_id}/data?labeling=1")  # "Label All Tasks"
        yield page, served.value.json()["id"]
        browser.close()


def _submit_for_next(page) -> int:
    """Submit the open task; the id of the task the stream serves next."""
    with page.expect_response(_next_task) as served:
        _submit(page)
    return served.value.json()["id"]


def _logged_in(browser, url: str, person):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", person.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u)
    return page


def _next_task(response) -> bool:
    """The labeling stream's request for the next task (the Data Manager's `next_task` action)."""
    return "id=next_task" in response.url and response.request.method == "POST" and response.status == 200


def _submit(page) -> None:
    with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as posted:
        page.get_by_test_id("bottombar-submit-button").click()
    assert posted.value.status == 201
