"""What the model-server tests share: a workspace whose first model the loop must beat, pushed to Label Studio for
some annotators, and the annotators' side (submitting an annotation, waiting for the loop to settle)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.classifier import prelabel, train
from pipeline.config import Codebook, Settings
from pipeline.store import Store
from pipeline.store.loop import loop_state
from pipeline.studio import add_annotators, connect, push
from pipeline.studio.users import Annotator
from tests.unit.test_classifier_helpers import add_segments, examples, write_jsonl


@dataclass
class ServedProject:
    """A workspace pre-labelled by a deliberately wrong first model and pushed, one project per annotator."""

    store: Store
    segment_ids: list[str]
    labels: dict[str, list[str]]  # the right codes of each segment, as an annotator answers
    first_model: str
    people: list[Annotator]
    projects: dict[str, int]  # annotator's email -> project id

    def tasks_of(self, project_id: int) -> dict[str, int]:
        """segment id -> task id in one project."""
        sql = "SELECT segment_id, task_id FROM tasks WHERE project_id = ?"
        return dict(self.store.conn.execute(sql, (project_id,)))


def swapped(rows: list[dict]) -> list[dict]:
    """The same texts with carrot and stick exchanged: a first model the loop's model must beat."""
    swap = {"carrot": "stick", "stick": "carrot"}
    return [{**r, "codes": sorted(swap[c] for c in r["codes"])} for r in rows]


def served_project(ws: Path, settings: Settings, codebook: Codebook, seed: int, prefixes: list[str]) -> ServedProject:
    """Six documents of six segments (seeded) in workspace `ws`, the first model trained on `swapped` examples
    (written beside it), its pre-labels pushed to one project per new annotator (a name from each prefix)."""
    store = Store(ws)
    store.record_codebook(codebook)
    rows = examples(n_docs=6, per_doc=6, seed=seed)
    seg_ids = add_segments(store, rows)
    labels = dict(zip(seg_ids, (r["codes"] for r in rows), strict=True))
    gold = write_jsonl(ws.parent / "gold.jsonl", swapped(examples()))
    first = train(store, settings, codebook, gold=gold, show_progress=False).version
    prelabel(store, settings, codebook, show_progress=False)
    people = add_annotators(connect(settings), settings, [f"{p}-{uuid.uuid4().hex[:6]}" for p in prefixes])
    pushed = push(store, settings, codebook, annotators=[p.email for p in people], show_progress=False)
    projects = {p.annotator: p.id for p in pushed.projects}
    return ServedProject(store, seg_ids, labels, first, people, projects)


def annotate(http: httpx.Client, task_id: int, codes: list[str]) -> None:
    """Submit one annotation choosing `codes` (none: an empty result) as the logged-in annotator."""
    result = (
        [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": codes}}] if codes else []
    )
    resp = http.post(f"/api/tasks/{task_id}/annotations/", json={"result": result, "lead_time": 3.0})
    assert resp.status_code == 201, resp.text


def wait_for_loop(ws: Path, every: int, timeout: float = 600) -> dict:
    """The loop's state once a retrain has finished, none is running and fewer than `every` labels wait (the last
    webhook may still be on its way)."""
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        with Store(ws, create=False) as store:
            state = loop_state(store)
        if state["retrains"] and not state["training"] and len(state["pending"]) < every:
            return state
        time.sleep(1)
    raise AssertionError(f"no finished retrain within {timeout} s: {state}")
