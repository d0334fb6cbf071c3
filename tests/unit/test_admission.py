"""Per-code admission: the kappa table, where its evidence comes from, and the gate on pre-ticks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.agreement.admission import admission_rows, measure_admission
from pipeline.classifier.admission import load_heldout, save_heldout
from pipeline.config import AdmissionSettings, load_codebook, load_settings
from pipeline.store.models import get_model, register_model
from pipeline.store.predictions import PredictionRow
from pipeline.studio.gate import Gate, admission_gate, gate_changed
from pipeline.studio.push import _Context, task_payload
from tests.factory import add_gold, add_model, make_workspace

CODES = ["carrot", "stick"]


def labels(n: int, positives: int) -> np.ndarray:
    return (np.arange(n) < positives).astype(float)


def test_perfect_agreement_on_enough_evidence_is_admitted():
    truth = np.column_stack([labels(60, 25), labels(60, 25)])
    (carrot, _) = admission_rows(truth, truth, CODES, AdmissionSettings(), "training", bootstrap=200)
    assert carrot.admitted and carrot.kappa == 1.0 and (carrot.ci_low, carrot.ci_high) == (1.0, 1.0)
    assert (carrot.n, carrot.positives, carrot.predicted, carrot.source) == (60, 25, 25, "training")


def test_low_kappa_and_too_little_evidence_are_not_admitted_and_say_why():
    rng = np.random.default_rng(0)
    truth = np.column_stack([labels(200, 60), labels(200, 8)])
    guesses = np.column_stack([rng.random(200) < 0.3, truth[:, 1]]).astype(float)
    carrot, stick = admission_rows(truth, guesses, CODES, AdmissionSettings(), "project", bootstrap=200)
    assert not carrot.admitted and carrot.reason.startswith(f"kappa {carrot.kappa:.2f} < 0.40")
    assert carrot.ci_low < carrot.kappa < carrot.ci_high
    assert not stick.admitted and stick.kappa == 1.0 and "too little evidence: 8 human positive(s)" in stick.reason


def test_undecided_human_labels_are_left_out_and_admission_off_admits_everything():
    truth = np.column_stack([labels(50, 25), labels(50, 25)])
    truth[:10, 0] = np.nan  # a tie between two annotators
    rows = admission_rows(truth, np.nan_to_num(truth), CODES, AdmissionSettings(enabled=False), "project", 50)
    assert rows[0].n == 40 and all(r.admitted for r in rows) and "admission is off" in rows[0].reason


@pytest.fixture
def book(small_codebook):
    return load_codebook(small_codebook)


def _workspace(tmp_path, book, n=60):
    texts = [f"Turn {i}: {'a bed at the hostel' if i % 2 else 'a warrant was issued'}." for i in range(n)]
    store = make_workspace(tmp_path / "ws", book, {"doc": texts})
    segs = [s.id for s in store.segments()]
    carrot = {s: ["carrot"] if i % 2 else [] for i, s in enumerate(segs)}
    return store, segs, carrot


def test_project_labels_decide_once_they_are_enough(tmp_path, book):
    store, segs, carrot = _workspace(tmp_path, book)
    add_model(store, "v1", book, {s: c + (["stick"] if i < 3 else []) for i, (s, c) in enumerate(carrot.items())})
    add_gold(store, carrot, book)
    settings = load_settings(None, {"workspace": str(tmp_path / "ws"), "agreement.bootstrap": 100})
    table = measure_admission(store, settings, book, "v1")
    rows = {r.code: r for r in table.rows}
    assert rows["carrot"].admitted and rows["carrot"].source == "project" and rows["carrot"].n == 60
    assert not rows["stick"].admitted and "too little evidence: 0 human positive(s)" in rows["stick"].reason
    assert get_model(store, "v1")["metrics"]["admission"]["admitted"] == ["carrot"]


def test_without_enough_project_labels_the_held_out_training_predictions_decide(tmp_path, book):
    store, segs, carrot = _workspace(tmp_path, book, n=6)
    model_dir = tmp_path / "models" / "clf-001"
    model_dir.mkdir(parents=True)
    truth = np.column_stack([labels(80, 30), labels(80, 40)])
    decided = truth.copy()
    decided[:30, 1] = 1 - decided[:30, 1]  # stick: the model is wrong on 30 of 80
    save_heldout(model_dir, CODES, truth, decided, "5-fold CV on the example gold")
    (model_dir / "training.json").write_text(json.dumps({"train_texts": []}))
    with store.transaction():
        register_model(store, "clf-001", "classifier", str(model_dir), book.content_hash, {}, promote=True)
    settings = load_settings(None, {"workspace": str(tmp_path / "ws"), "agreement.bootstrap": 100})
    table = measure_admission(store, settings, book)
    assert table.model_version == "clf-001" and table.admitted == ["carrot"]
    assert [r.source for r in table.rows] == ["training", "training"] and table.rows[1].kappa < 0.4
    assert "5-fold CV on the example gold" in table.sources["training"]
    assert load_heldout(model_dir).matrices(CODES)[0].sum() == 70


def test_segments_the_model_trained_on_are_not_evidence(tmp_path, book):
    from pipeline.classifier.data import text_key

    store, segs, carrot = _workspace(tmp_path, book)
    model_dir = tmp_path / "models" / "clf-001"
    model_dir.mkdir(parents=True)
    trained = [s.text for s in store.segments()[:20]]
    (model_dir / "training.json").write_text(json.dumps({"train_texts": [text_key(t) for t in trained]}))
    with store.transaction():  # registered with its directory first: the factory's row keeps it
        register_model(store, "clf-001", "classifier", str(model_dir), book.content_hash, {})
    add_model(store, "clf-001", book, carrot)
    add_gold(store, carrot, book)
    settings = load_settings(None, {"workspace": str(tmp_path / "ws"), "agreement.bootstrap": 0})
    table = measure_admission(store, settings, book, "clf-001")
    assert table.rows[0].n == 40 and table.rows[0].ci_low is None  # no bootstrap asked for


PRED = PredictionRow("doc-1", "v1", {"carrot": 0.9, "stick": 0.71}, ["carrot", "stick"], "a bed is offered")


def test_the_push_payload_pre_ticks_only_admitted_codes_and_hints_the_others(tmp_path, book):
    store, segs, _ = _workspace(tmp_path, book, n=3)
    seg = store.segment(segs[1])
    gate = Gate("v1", True, frozenset({"carrot"}), "2026-01-01")
    task = task_payload(_Context(store), seg, PRED, "v1", gate)
    (prediction,) = task["predictions"]
    assert prediction["result"][0]["value"]["choices"] == ["carrot"] and prediction["model_version"] == "v1"
    assert task["data"]["rationale"] == (
        "Model's reasoning: a bed is offered\n"
        "Also suggested, not ticked (below the admission bar, check yourself): stick (0.71)"
    )
    closed = task_payload(_Context(store), seg, PRED, "v1", Gate("v1", True))
    assert closed["predictions"][0]["result"] == [] and "carrot (0.90), stick (0.71)" in closed["data"]["rationale"]
    off = task_payload(_Context(store), seg, PRED, "v1", Gate("v1", False))
    assert off["predictions"][0]["result"][0]["value"]["choices"] == ["carrot", "stick"]
    assert off["data"]["rationale"] == "Model's reasoning: a bed is offered"


def test_the_gate_reads_the_stored_table_only_under_the_settings_it_was_measured_with(tmp_path, book):
    store, segs, carrot = _workspace(tmp_path, book)
    add_model(store, "v1", book, carrot)
    add_gold(store, carrot, book)
    settings = load_settings(None, {"workspace": str(tmp_path / "ws"), "agreement.bootstrap": 0})
    assert admission_gate(store, settings.admission, "v1").admitted == frozenset()  # never measured
    measure_admission(store, settings, book, "v1")
    gate = admission_gate(store, settings.admission, "v1")
    assert gate.admitted == {"carrot"} and gate.measured_at
    stricter = settings.admission.model_copy(update={"min_kappa": 0.9})
    assert admission_gate(store, stricter, "v1").admitted == frozenset()
    assert not admission_gate(store, settings.admission.model_copy(update={"enabled": False}), "v1").enabled
    assert gate_changed(gate, {"enabled": True, "admitted": []}) and not gate_changed(gate, gate.as_dict())
    assert not gate_changed(gate, None)


def test_admission_cli_prints_the_table_and_json(tmp_path, book, small_codebook, cli):
    store, segs, carrot = _workspace(tmp_path, book)
    add_model(store, "v1", book, carrot)
    add_gold(store, carrot, book)
    store.close()
    common = ["--workspace", str(tmp_path / "ws"), "--codebook", str(small_codebook)]
    shown = cli("admission", *common)
    assert shown.exit_code == 0, shown.output
    assert "Admission of v1" in shown.output and "1 of 2 codes of v1 are pre-ticked" in shown.output
    data = json.loads(cli("admission", *common, "--model-version", "v1", "--json").stdout)
    assert data["admitted"] == ["carrot"] and {r["code"] for r in data["rows"]} == set(CODES)
    assert set(data["rows"][0]) >= {"kappa", "ci_low", "ci_high", "n", "positives", "admitted", "reason"}
    missing = cli("admission", *common, "--model-version", "v9")
    assert missing.exit_code == 2 and "no model version 'v9'" in missing.output


def test_the_agreement_report_has_an_admission_section():
    from pipeline.agreement.render import admission_markdown

    table = {
        "kind": "classifier",
        "min_kappa": 0.4,
        "min_evidence": 20,
        "admitted": ["carrot"],
        "rows": [
            {"code": "carrot", "kappa": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n": 50, "positives": 25},
            {"code": "stick", "kappa": 0.1, "ci_low": None, "ci_high": None, "n": 50, "positives": 25},
        ],
    }
    table["rows"][0].update(admitted=True, source="project", reason="kappa 0.80 >= 0.40 on 25 positives")
    table["rows"][1].update(admitted=False, source="project", reason="kappa 0.10 < 0.40")
    text = "\n".join(admission_markdown({"v1": table}))
    assert "### v1 (classifier): admitted carrot" in text
    assert "| stick | 0.100 | - | 50 | 25 | no | project | kappa 0.10 < 0.40 |" in text
