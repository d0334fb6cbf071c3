"""train -> prelabel -> push -> two annotators label through the API -> pull -> retrain, end to end."""

from __future__ import annotations

import json
import uuid

import pytest

from pipeline.classifier import current_version, list_models, prelabel, train
from pipeline.flows import retrain
from pipeline.studio import add_annotators, connect, push
from tests.unit.test_classifier_helpers import add_segments, examples, write_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _annotate(http, task_id: int, codes: list[str]) -> None:
    result = (
        [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": codes}}] if codes else []
    )
    resp = http.post(f"/api/tasks/{task_id}/annotations/", json={"result": result, "lead_time": 3.0})
    assert resp.status_code == 201, resp.text


def _server_predictions(settings, project_id: int) -> dict[str, list[str]]:
    tasks = [t.model_dump() for t in connect(settings).sdk.tasks.list(project=project_id, fields="all", page_size=1000)]
    return {t["data"]["segment_id"]: sorted(p["model_version"] for p in (t["predictions"] or [])) for t in tasks}


def test_train_prelabel_push_annotate_pull_retrain(studio_server, tmp_path, codebook):
    from pipeline.store import Store

    ws = tmp_path / "ws"
    settings = studio_server.workspace_settings(
        ws, **{"classifier.method": "head", "classifier.export_onnx": False, "classifier.min_segments": 10}
    )
    store = Store(ws)
    store.record_codebook(codebook)
    rows = examples(n_docs=6, per_doc=6, seed=17)
    seg_ids = add_segments(store, rows)
    labels = dict(zip(seg_ids, (r["codes"] for r in rows), strict=True))

    first = train(store, settings, codebook, gold=write_jsonl(tmp_path / "gold.jsonl", examples()), show_progress=False)
    assert prelabel(store, settings, codebook, show_progress=False).scored == len(seg_ids)

    people = add_annotators(connect(settings), settings, [f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"])
    pushed = push(store, settings, codebook, annotators=[p.email for p in people], show_progress=False)
    projects = {p.annotator: p.id for p in pushed.projects}
    unannotated = [s for s in seg_ids if s.startswith("ws-doc5")]
    disagreed: set[str] = set()
    for n, person in enumerate(people):
        http = studio_server.login(person.email, person.password)
        for i, seg in enumerate(s for s in seg_ids if s not in unannotated):
            (task_id,) = store.conn.execute(
                "SELECT task_id FROM tasks WHERE project_id = ? AND segment_id = ?", (projects[person.email], seg)
            ).fetchone()
            codes = labels[seg] if (n == 0 or i % 5) else []  # the second annotator misses a few
            if codes != labels[seg]:
                disagreed.add(seg)
            _annotate(http, task_id, codes)

    report = retrain(store, settings, codebook, show_progress=False).as_dict()
    assert store.count("annotations") == 2 * (len(seg_ids) - len(unannotated))
    gold = dict(store.conn.execute("SELECT segment_id, codes FROM gold"))
    assert len(gold) == len(seg_ids) - len(unannotated)
    assert disagreed and all(json.loads(gold[s]) == labels[s] for s in gold if s not in disagreed)
    new = report["new"]["model_version"]
    assert new == "clf-002" and report["current"]["model_version"] == first.version
    assert report["held_out_segments"] > 0 and report["held_out_segments"] == report["new"]["segments"]
    assert report["promoted"] == (report["new"]["macro_f1"] > report["current"]["macro_f1"])
    assert current_version(store) == (new if report["promoted"] else first.version)

    # nothing new since clf-002 (issue 26 #2): no version is made, and --force makes clf-002 current
    forced = retrain(store, settings, codebook, force=True, show_progress=False).as_dict()
    assert not forced["trained"] and forced["promoted"] and current_version(store) == "clf-002"
    assert [m["version"] for m in list_models(store)] == [first.version, "clf-002"]
    assert [m["version"] for m in list_models(store) if m["is_current"]] == ["clf-002"]
    # only segments nobody annotated, and only if clf-002 had not scored them as the current model already
    assert forced["prelabel"]["scored"] == (0 if report["promoted"] else len(unannotated))
    on_server = _server_predictions(settings, projects[people[0].email])
    assert all("clf-002" in on_server[s] for s in unannotated)
    store.close()
