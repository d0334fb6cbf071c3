"""Three annotators in a real Label Studio: agreement, review project for an adjudicator, gold, export.

An integration test (needs the session's real Label Studio from tests/integration/conftest.py);
it lives here because it exercises the agreement and gold stages end to end.
"""

from __future__ import annotations

import json
import uuid

import pytest
from datasets import load_from_disk

from pipeline.agreement import agreement_report, disagreements
from pipeline.flows import push_disagreements
from pipeline.gold import adjudicate, export
from pipeline.studio import add_annotators, connect, pull, push
from tests.integration.conftest import codebook, make_workspace, rows, studio_server  # noqa: F401

pytestmark = pytest.mark.integration


def annotate(http, task_id: int, codes: list[str]) -> None:
    result = [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": codes}}]
    resp = http.post(f"/api/tasks/{task_id}/annotations/", json={"result": result, "lead_time": 3.0})
    assert resp.status_code == 201, resp.text


def task_for(store, project_id: int, segment_id: str) -> int:
    return rows(store, "SELECT task_id FROM tasks WHERE project_id = ? AND segment_id = ?", (project_id, segment_id))[
        0
    ][0]


def test_three_annotators_review_and_gold(studio_server, tmp_path, codebook):  # noqa: F811
    store = make_workspace(tmp_path / "ws", n_docs=3, turns=2)
    settings = studio_server.workspace_settings(tmp_path / "ws", **{"agreement.bootstrap": 100})
    people = add_annotators(connect(settings), settings, [f"coder-{uuid.uuid4().hex[:6]}" for _ in range(3)])
    report = push(store, settings, codebook, annotators=[p.email for p in people], show_progress=False)
    projects = {p.annotator: p.id for p in report.projects}
    segs = [s.id for s in store.segments()]
    choices = [["carrot"], ["stick"], [], ["carrot", "stick"], ["carrot"], ["stick"]]
    for k, person in enumerate(people):
        http = studio_server.login(person.email, person.password)
        for i, seg in enumerate(segs):
            codes = choices[i] if not (k == 2 and i in (0, 1)) else ["carrot", "stick"]  # the third disagrees twice
            annotate(http, task_for(store, projects[person.email], seg), codes)
    assert pull(store, settings, codebook, show_progress=False).new == 18

    result = agreement_report(store, settings, codebook, out_dir=tmp_path / "reports")
    assert result.report["n_annotators"] == 3 and result.report["n_items"] == 6
    assert result.report["codes"]["carrot"]["krippendorff_alpha"] < 1.0
    contested = disagreements(store, codebook)
    assert {r["item"] for r in contested} == set(segs[:2])

    pushed = push_disagreements(store, settings, codebook, contested, show_progress=False)
    review = [p for p in pushed.projects if p.role == "review"]
    assert review and all(p.tasks == 2 for p in review)
    admin_email = studio_server.settings.studio.username
    admin = studio_server.login(admin_email, studio_server.password(admin_email))
    annotate(admin, task_for(store, review[0].id, segs[1]), ["stick"])
    pull(store, settings, codebook, show_progress=False)
    # the review decision is not a rater's annotation: agreement is unchanged
    again = agreement_report(store, settings, codebook, out_dir=None).report
    assert again["codes"]["carrot"]["krippendorff_alpha"] == result.report["codes"]["carrot"]["krippendorff_alpha"]

    gold = adjudicate(store, codebook, method="adjudicator")
    assert gold.adjudicated == 1 and gold.fallback_majority == 5
    row = rows(store, "SELECT codes, method, votes FROM gold WHERE segment_id = ?", (segs[1],))[0]
    assert (json.loads(row["codes"]), row["method"]) == (["stick"], "adjudicator")
    assert json.loads(row["votes"])["adjudicator"] == admin_email

    exported = export(store, settings, codebook, ["hf"], tmp_path / "export")
    dd = load_from_disk(str(tmp_path / "export" / "hf"))
    assert sum(split.num_rows for split in dd.values()) == exported.rows == 6
