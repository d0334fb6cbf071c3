"""Project calibration (pipeline/agreement/calibration.py): thresholds re-tuned on the project's own labels from
the stored scores, the model's own kept for codes with too little evidence, stored once (a rerun changes
nothing), the pre-labels of unlabelled segments re-decided, and `status` saying which thresholds are in force."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.agreement.calibration import CALIBRATED, TOO_FEW, UNCHANGED, calibrate
from pipeline.classifier.calibration import MODEL, PROJECT, tune_on_project, with_calibration
from pipeline.classifier.registry import LoadedModel
from pipeline.config import load_codebook
from pipeline.flows import prior_gold
from pipeline.status import workspace_status
from pipeline.store.calibration import calibration_of, count_calibrations
from pipeline.store.models import set_model_metric
from pipeline.store.predictions import predictions_of
from pipeline.studio.gate import admission_gate, gate_changed
from tests import factory
from tests.unit.test_classifier_helpers import settings

BOOK_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "codebook_small.yaml"
BOOK = load_codebook(BOOK_PATH)
LABELLED, FRESH = 40, 10


def _scores(i: int) -> dict[str, float]:
    """carrot: odd turns score 0.4 (below the model's 0.5, yet every one is a human positive); stick: 0.9 on
    turns 0 and 2 only (two positives: too few to re-tune)."""
    return {"carrot": 0.4 if i % 2 else 0.1, "stick": 0.9 if i in (0, 2) else 0.2}


def _truth(i: int) -> list[str]:
    return [c for c, s in _scores(i).items() if (c == "carrot" and s > 0.3) or (c == "stick" and s > 0.5)]


@pytest.fixture
def store(tmp_path):
    docs = {"lab": [f"Labelled turn {i}." for i in range(LABELLED)], "new": [f"New turn {i}." for i in range(FRESH)]}
    store = factory.make_workspace(tmp_path / "ws", BOOK, docs)
    scores = {f"lab-{i}": _scores(i) for i in range(LABELLED)} | {f"new-{i}": _scores(i) for i in range(FRESH)}
    factory.add_scores(store, "v1", BOOK, scores)
    factory.add_project(store, 1, "ana@example.org", BOOK)
    yield store
    store.close()


def _annotate(store, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        factory.add_annotation(store, 100 + i, 1, f"lab-{i}", "ana@example.org", _truth(i), BOOK, version="v1")


def test_thresholds_are_tuned_per_code_and_fall_back_without_evidence():
    y = np.array([[1, 1], [0, np.nan], [1, 0], [0, 0], [1, 0], [0, 0]], dtype=np.float64)
    s = np.array([[0.4, 0.9], [0.1, 0.9], [0.35, 0.1], [0.2, 0.1], [0.45, 0.2], [0.1, 0.3]])
    fallback = {"carrot": 0.5, "stick": 0.6}
    carrot, stick = tune_on_project(y, s, ["carrot", "stick"], fallback, min_positives=3, prior=0)
    assert (carrot.source, carrot.positives, carrot.negatives) == (PROJECT, 3, 3)
    assert carrot.threshold == 0.3 and carrot.model == 0.5  # the middle of 0.25-0.35: every positive, no negative
    assert (stick.source, stick.threshold, stick.positives, stick.negatives) == (MODEL, 0.6, 1, 4)  # NaN: a tie
    shrunk = tune_on_project(y, s, ["carrot", "stick"], fallback, min_positives=3, prior=10)[0]
    assert shrunk.threshold == round(0.5 + 3 / 13 * (0.3 - 0.5), 2)  # the model's weighs as 10 positives


def test_calibration_retunes_refreshes_unlabelled_pre_labels_and_is_idempotent(store):
    _annotate(store, 30)
    cfg = settings(store.workspace)
    before = predictions_of(store, "v1")
    assert not any("carrot" in p.codes for p in before.values())

    result = calibrate(store, cfg, BOOK)
    assert result.status == CALIBRATED and result.labels == 30
    by_code = {c.code: c for c in result.codes}
    assert by_code["carrot"].source == PROJECT and by_code["carrot"].before == 0.5 and by_code["carrot"].after < 0.4
    assert by_code["stick"].source == MODEL and by_code["stick"].after == 0.5  # 2 positives: the model's kept
    found = calibration_of(store, "v1")
    assert found is not None and found.labels == 30 and found.thresholds["carrot"] == by_code["carrot"].after
    after = predictions_of(store, "v1")
    unlabelled = [s for s in after if not s.startswith("lab-") or int(s.split("-")[1]) >= 30]
    assert len(unlabelled) == FRESH + LABELLED - 30
    assert all(after[s].codes == _truth(int(s.split("-")[1])) for s in unlabelled)  # re-decided
    assert all(after[f"lab-{i}"].codes == before[f"lab-{i}"].codes for i in range(30))  # annotated: untouched
    assert result.predictions_changed == sum("carrot" in _truth(int(s.split("-")[1])) for s in unlabelled)

    runs = len(store.last_runs(50))
    again = calibrate(store, cfg, BOOK)
    assert again.status == UNCHANGED and again.predictions_changed == 0
    assert count_calibrations(store, "v1") == 1 and len(store.last_runs(50)) == runs
    assert predictions_of(store, "v1") == after


def test_too_few_labels_keep_the_model_thresholds_and_new_labels_recalibrate(store):
    _annotate(store, 29)
    cfg = settings(store.workspace)
    result = calibrate(store, cfg, BOOK)
    assert result.status == TOO_FEW and "29" in result.message and count_calibrations(store) == 0
    assert all(c.after == c.model == 0.5 for c in result.codes)
    dry = calibrate(store, settings(store.workspace, calibration_min_labels=29), BOOK, dry_run=True)
    assert dry.status == CALIBRATED and count_calibrations(store) == 0  # a dry run writes nothing

    _annotate(store, 2, first=29)
    assert calibrate(store, cfg, BOOK).labels == 31
    _annotate(store, 3, first=31)
    assert calibrate(store, cfg, BOOK).status == CALIBRATED and count_calibrations(store, "v1") == 2


def test_status_shows_which_thresholds_are_in_force(store):
    status = workspace_status(store, BOOK)
    assert status.thresholds is not None and status.thresholds.source == "model"
    assert status.as_dict()["thresholds"]["line"] == "model (v1)"
    _annotate(store, 30)
    calibrate(store, settings(store.workspace), BOOK)
    data = workspace_status(store, BOOK).as_dict()["thresholds"]
    assert data["source"] == "project" and data["labels"] == 30 and data["retuned_codes"] == 1
    assert data["line"].startswith("project calibration on 30 labels, 20") and data["line"].endswith("(v1)")


def test_a_new_calibration_changes_the_gate_so_push_resends_unannotated_tasks(store):
    cfg = settings(store.workspace)
    pushed = admission_gate(store, cfg.admission, "v1").as_dict()
    assert pushed["calibration"] is None
    _annotate(store, 30)
    calibrate(store, cfg, BOOK)  # no Label Studio task in this workspace: nothing to send
    gate = admission_gate(store, cfg.admission, "v1")
    assert gate.calibration == calibration_of(store, "v1").id and gate_changed(gate, pushed)
    assert not gate_changed(gate, gate.as_dict())


def test_new_pre_labels_follow_the_calibration(store):
    _annotate(store, 30)
    calibrate(store, settings(store.workspace), BOOK)
    loaded = LoadedModel("v1", Path("."), None, ["carrot", "stick"], np.array([0.5, 0.5], dtype=np.float32), {}, {})
    probs = np.array([[0.4, 0.2], [0.1, 0.9]])
    assert loaded.decide(probs) == [[], ["stick"]]
    assert with_calibration(store, loaded).decide(probs) == [["carrot"], ["stick"]]


def test_retrain_adds_the_project_labels_to_the_gold_the_current_model_was_trained_on(store, tmp_path):
    assert prior_gold(store, BOOK) == (None, None)  # v1 records no gold, and the bundled examples use other codes
    gold = tmp_path / "examples.jsonl"
    rows = [{"id": f"e{i}", "text": f"Example {i}.", "codes": ["carrot"], "document": "ex"} for i in range(3)]
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    model_dir = tmp_path / "models" / "v2"
    model_dir.mkdir(parents=True)
    (model_dir / "training.json").write_text(json.dumps({"source": str(gold)}), encoding="utf-8")
    factory.add_scores(store, "v2", BOOK, {}, path=model_dir)  # now the current classifier
    source, examples = prior_gold(store, BOOK)  # train --gold FILE recorded it as training.json's source
    assert source == str(gold.resolve()) and [e.text for e in examples] == [r["text"] for r in rows]
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({**rows[0], "id": "o"}) + "\n", encoding="utf-8")
    with store.transaction():
        set_model_metric(store, "v2", "prior", str(other))
    assert prior_gold(store, BOOK)[0] == str(other.resolve())  # what retrain recorded wins


def test_the_calibrate_and_status_commands_print_the_thresholds_in_force(store):
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    where = ["-w", str(store.workspace), "--codebook", str(BOOK_PATH)]
    few = runner.invoke(app, ["calibrate", *where])
    assert few.exit_code == 0 and "not re-tuned: 0 human-labelled segment(s)" in few.output
    _annotate(store, 30)
    dry = runner.invoke(app, ["calibrate", *where, "--dry-run", "--json"])
    assert dry.exit_code == 0 and json.loads(dry.stdout)["status"] == CALIBRATED and count_calibrations(store) == 0
    done = runner.invoke(app, ["calibrate", *where])
    assert done.exit_code == 0 and "re-tuned 1 code threshold(s) on 30" in done.output, done.output
    status = runner.invoke(app, ["status", *where, "--json"])
    assert json.loads(status.stdout)["thresholds"]["line"].startswith("project calibration on 30 labels")
    shown = runner.invoke(app, ["status", *where])
    assert "project calibration on 30 labels" in shown.output
