"""Classifier library: data checks, split, metrics, training, registry, prelabel, evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from pipeline.classifier import evaluate, list_models, load_model, prelabel, promote, registry, train
from pipeline.classifier.admission import load_heldout
from pipeline.classifier.data import Example, read_gold, split_by_document
from pipeline.classifier.metrics import code_metrics, tune_thresholds
from pipeline.classifier.onnx import ONNX_FILE
from pipeline.config import ClassifierSettings, load_codebook
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from tests.factory import add_annotation, add_gold
from tests.unit.test_classifier_helpers import (
    CODEBOOK,
    add_segments,
    codebook,
    examples,
    settings,
    tiny_encoder,
    write_jsonl,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One workspace with a head-method model trained on generated data (copied per test)."""
    root = tmp_path_factory.mktemp("trained")
    gold = write_jsonl(root / "gold.jsonl", examples())
    store = Store(root / "ws")
    store.record_codebook(codebook())
    report = train(store, settings(root / "ws"), codebook(), gold=gold, show_progress=False)
    store.close()
    return root, report


@pytest.fixture
def workspace(trained, tmp_path):
    root, report = trained
    ws = tmp_path / "ws"
    shutil.copytree(root / "ws", ws)  # model paths are stored relative to the workspace: the copy finds its own
    return ws, report, root / "gold.jsonl"


# ------------------------------------------------------------------ bad input


def test_unknown_label_names_file_line_and_code(tmp_path):
    rows = examples()
    rows[3]["codes"] = ["carrot", "banana"]
    path = write_jsonl(tmp_path / "gold.jsonl", rows)
    with pytest.raises(CultureCodeError, match=r"gold.jsonl:4: unknown code\(s\) banana"):
        read_gold(path, codebook())


def test_empty_gold_file_is_refused(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(CultureCodeError, match="empty"):
        read_gold(path, codebook())


def test_tiny_gold_set_says_how_many_are_needed(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", examples(n_docs=3, per_doc=2))
    with Store(tmp_path / "ws") as store, pytest.raises(CultureCodeError, match="needs at least 10"):
        train(store, settings(tmp_path / "ws"), codebook(), gold=gold, show_progress=False)


def test_all_segments_in_one_document_is_refused(tmp_path):
    rows = [{**r, "document": "only"} for r in examples()]
    gold = write_jsonl(tmp_path / "gold.jsonl", rows)
    with Store(tmp_path / "ws") as store, pytest.raises(CultureCodeError, match="1 document"):
        train(store, settings(tmp_path / "ws"), codebook(), gold=gold, show_progress=False)


def test_training_line_without_document_is_refused(tmp_path):
    rows = examples()
    del rows[0]["document"]
    with pytest.raises(CultureCodeError, match="gold.jsonl:1: no 'document'"):
        read_gold(write_jsonl(tmp_path / "gold.jsonl", rows), codebook())


def test_code_with_no_positives_is_reported_and_never_predicted(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", examples(codes=("carrot",)))
    with Store(tmp_path / "ws") as store:
        report = train(store, settings(tmp_path / "ws"), codebook(), gold=gold, show_progress=False)
        assert report.too_few_positives == {"stick": 0}
        add_segments(store, examples(n_docs=2, seed=5))
        prelabel(store, settings(tmp_path / "ws"), codebook(), show_progress=False)
        predicted = [json.loads(r[0]) for r in store.conn.execute("SELECT codes FROM predictions")]
    assert not any("stick" in codes for codes in predicted)
    assert any("carrot" in codes for codes in predicted)


def test_missing_model_directory_is_a_clear_error(workspace):
    ws, report, _ = workspace
    shutil.rmtree(ws / "models" / report.version)
    with Store(ws) as store, pytest.raises(CultureCodeError, match=f"model {report.version}: .* is missing"):
        load_model(store, codebook())


def test_corrupt_weights_are_a_clear_error(workspace):
    ws, report, _ = workspace
    (ws / "models" / report.version / "head.safetensors").write_bytes(b"not a safetensors file")
    with Store(ws) as store, pytest.raises(CultureCodeError, match="corrupt"):
        load_model(store, codebook())


def test_pickle_weights_are_not_loaded(workspace):
    ws, report, _ = workspace
    weights = ws / "models" / report.version / "model.safetensors"
    weights.rename(weights.with_name("pytorch_model.bin"))
    with Store(ws) as store, pytest.raises(CultureCodeError, match="safetensors"):
        load_model(store, codebook())


def test_model_of_another_codebook_is_refused(workspace, tmp_path):
    ws, _, _ = workspace
    other = load_codebook(CODEBOOK).model_copy(update={"version": "2"})
    with Store(ws) as store, pytest.raises(CultureCodeError, match="trained with codebook"):
        load_model(store, other)


def test_interrupted_training_registers_nothing(tmp_path, monkeypatch):
    gold = write_jsonl(tmp_path / "gold.jsonl", examples())

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.classifier.training.write_model_card", interrupt)
    with Store(tmp_path / "ws") as store:
        with pytest.raises(KeyboardInterrupt):
            train(store, settings(tmp_path / "ws"), codebook(), gold=gold, show_progress=False)
        assert store.count("models") == 0
    assert list((tmp_path / "ws" / "models").iterdir()) == []


# ------------------------------------------------------------------ split and metrics


def test_split_keeps_each_document_on_one_side():
    exs = [Example(f"k{i}", f"text {i}", [], f"doc{i % 7}") for i in range(70)]
    split = split_by_document(exs, ClassifierSettings())
    docs = [{e.document for e in part} for part in (split.train, split.validation, split.test)]
    assert all(docs) and not (docs[0] & docs[1] or docs[0] & docs[2] or docs[1] & docs[2])
    assert len(split.train) + len(split.validation) + len(split.test) == 70


@pytest.mark.parametrize("seed", range(5))
def test_a_retrains_test_split_holds_out_only_project_documents(seed):
    project = [Example(f"p{i}", f"text {i}", [], f"project{i % 5}") for i in range(50)]
    prior = [Example(f"x{i}", f"example {i}", [], f"example{i % 20}") for i in range(200)]
    cfg = ClassifierSettings(seed=seed, test_fraction=0.4)
    split = split_by_document(project + prior, cfg, {e.document for e in project})
    assert split.test and {e.document for e in split.test} <= {e.document for e in project}
    assert len(split.train) + len(split.validation) + len(split.test) == 250
    unrestricted = split_by_document(project + prior, cfg)
    assert {e.document for e in unrestricted.test} - {e.document for e in project}  # it could have taken examples


@pytest.mark.parametrize("seed", range(5))
def test_two_project_documents_are_enough_to_keep_every_prior_example_trainable(seed):
    project = [Example(f"p{i}", f"text {i}", [], f"project{i % 2}") for i in range(16)]
    prior = [Example(f"x{i}", f"example {i}", [], f"example{i % 20}") for i in range(200)]
    split = split_by_document(project + prior, ClassifierSettings(seed=seed), {"project0", "project1"})
    assert {e.document for e in split.test} in ({"project0"}, {"project1"})  # the other one trains
    assert len(split.train) + len(split.validation) == 208


def test_one_project_document_cannot_be_held_out_and_trained_on_so_any_document_may_be_held_out():
    project = [Example(f"p{i}", f"text {i}", [], "project0") for i in range(8)]
    prior = [Example(f"x{i}", f"example {i}", [], f"example{i % 20}") for i in range(200)]
    split = split_by_document(project + prior, ClassifierSettings(), {"project0"})
    assert split.test and split.train and len(split.train) + len(split.validation) + len(split.test) == 208


def test_code_metrics_by_hand():
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    pred = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    m = code_metrics(truth, pred, ["a", "b"])
    assert m["per_code"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "cohen_kappa": 0.0}
    assert m["per_code"]["b"]["cohen_kappa"] is None  # both raters constant: kappa undefined
    assert m["macro_f1"] == 0.5  # b has no support and is not averaged
    assert m["micro_f1"] == 0.5


def test_thresholds_separate_validation_classes():
    truth = np.array([[1], [1], [0], [0]])
    probs = np.array([[0.3], [0.35], [0.1], [0.2]])
    assert 0.2 < tune_thresholds(truth, probs, 0.5)[0] <= 0.3


# ------------------------------------------------------------------ training and registry


def test_head_training_registers_a_complete_current_version(workspace):
    ws, report, _ = workspace
    version_dir = ws / "models" / report.version
    names = {p.name for p in version_dir.iterdir()}
    assert {
        "model.safetensors",
        "head.safetensors",
        "classifier.json",
        "training.json",
        "metrics.json",
        "README.md",
        "tokenizer.json",
    } <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    card = (version_dir / "README.md").read_text()
    assert "carrot" in card and "stick" in card and "held-out" in card.lower()
    with Store(ws) as store:
        rows = list_models(store)
    assert [(r["version"], r["is_current"]) for r in rows] == [(report.version, True)]
    assert report.test["macro_f1"] > 0.6  # keyword-like data: the frozen encoder separates it


def test_promote_keeps_exactly_one_current(workspace):
    ws, report, gold = workspace
    with Store(ws) as store:
        second = train(store, settings(ws), codebook(), gold=gold, promote=False, show_progress=False)
        assert registry.current_version(store) == report.version
        promote(store, second.version)
        currents = [r["version"] for r in list_models(store) if r["is_current"]]
    assert currents == [second.version]


def test_finetune_is_reproducible_with_a_seed(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", examples())
    base = str(tiny_encoder(tmp_path / "tiny"))
    results = []
    for run in range(2):
        ws = tmp_path / f"ws{run}"
        with Store(ws) as store:
            report = train(
                store,
                settings(ws, method="finetune", base_model=base, epochs=2),
                codebook(),
                gold=gold,
                show_progress=False,
            )
            head = load_model(store, codebook()).model.head.weight.detach().numpy()
        results.append((report.test, report.thresholds, head))
    assert results[0][0] == results[1][0] and results[0][1] == results[1][1]
    assert np.array_equal(results[0][2], results[1][2])
    assert report.fit["epochs"] >= 1


# ------------------------------------------------------------------ prelabel and evaluate


def test_prelabel_scores_each_segment_once_in_chunks(workspace):
    ws, report, _ = workspace
    cfg = settings(ws)
    with Store(ws) as store:
        ids = add_segments(store, examples(n_docs=3, seed=9))
        first = prelabel(store, cfg, codebook(), show_progress=False)
        rows = store.conn.execute("SELECT * FROM predictions").fetchall()
        again = prelabel(store, cfg, codebook(), show_progress=False)
        add_segments(store, [{"text": "we arrested him at the flat", "codes": [], "document": "new"}], "late")
        third = prelabel(store, cfg, codebook(), show_progress=False)
    assert first.scored == len(ids) == len(rows) and again.scored == 0 and third.scored == 1
    thresholds = report.thresholds
    for row in rows:
        scores = json.loads(row["scores"])
        assert set(scores) == {"carrot", "stick"} and row["model_version"] == report.version
        assert json.loads(row["codes"]) == [c for c in ("carrot", "stick") if scores[c] >= thresholds[c] - 1e-4]
        assert row["codebook_hash"] == codebook().content_hash


def test_onnx_backend_agrees_with_torch(workspace):
    ws, _, _ = workspace
    cfg = settings(ws)
    with Store(ws) as store:
        add_segments(store, examples(n_docs=3, seed=3))
        torch_report = prelabel(store, cfg, codebook(), show_progress=False)
        torch_codes = dict(store.conn.execute("SELECT segment_id, codes FROM predictions"))
        store.conn.execute("DELETE FROM predictions")
        onnx_report = prelabel(store, cfg, codebook(), runtime="onnx", show_progress=False)
        onnx_codes = dict(store.conn.execute("SELECT segment_id, codes FROM predictions"))
    assert onnx_report.runtime == "onnx" and onnx_report.scored == torch_report.scored
    same = sum(torch_codes[k] == onnx_codes[k] for k in torch_codes) / len(torch_codes)
    assert same >= 0.9
    graph = onnx.load(str(Path(ws) / "models" / onnx_report.model_version / ONNX_FILE)).graph
    operators = {node.op_type for node in graph.node}
    assert "QAttention" in operators, "attention was not fused before int8 quantization"
    assert not any(node.name.startswith("/model/head/") and node.op_type.endswith("Integer") for node in graph.node), (
        "the per-code head must stay fp32"
    )


def test_evaluate_outside_file_leaves_out_training_segments(workspace, tmp_path):
    ws, report, gold = workspace
    held_out = write_jsonl(
        tmp_path / "outside.jsonl", [{"text": r["text"], "codes": r["codes"]} for r in examples(n_docs=2, seed=11)]
    )
    with Store(ws) as store:
        outside = evaluate(store, settings(ws), codebook(), gold_file=held_out)
        on_train_all = evaluate(store, settings(ws), codebook(), gold_file=gold, include_training=True)
        # refit_on_all (the default): once measured, the version learned its test documents too
        with pytest.raises(CultureCodeError, match=r"outside its training data \(48 were trained on"):
            evaluate(store, settings(ws), codebook(), gold_file=gold)
        measured_only = train(store, settings(ws, refit_on_all=False), codebook(), gold=gold, show_progress=False)
        on_train = evaluate(store, settings(ws), codebook(), gold_file=gold, model_version=measured_only.version)
    assert outside.excluded_training == 0 and outside.segments == 16
    assert set(outside.per_code["carrot"]) == {"precision", "recall", "f1", "support", "cohen_kappa"}
    assert "annotators" not in outside.as_dict()  # only against the workspace's own labels
    assert on_train.segments == report.test["segments"]  # without the refit only the held-out documents remain
    assert on_train_all.segments == 48 and on_train_all.excluded_training == 0


def test_a_refit_version_reports_the_figures_of_the_model_that_had_not_seen_its_test_documents(workspace):
    ws, report, gold = workspace
    version = ws / "models" / report.version
    training = json.loads((version / "training.json").read_text())
    test_docs = set(report.split["test"]["documents"])
    assert test_docs and training["fit"]["refit_on_all"] is True
    assert len(training["train_texts"]) == 48  # every example, the test documents' included
    assert report.test_decisions is not None and report.test_decisions.shape == (len(report.test_examples), 2)
    codes = ["carrot", "stick"]
    truth = np.array([[c in e.codes for c in codes] for e in report.test_examples])
    assert report.test == code_metrics(truth, report.test_decisions, codes)
    # admission's evidence: out-of-fold decisions on every learned segment, none on a segment the model learned
    heldout = load_heldout(version)
    assert heldout is not None and len(heldout.truth) == 48 and heldout.source == "grouped cross-validation"


def test_evaluate_against_workspace_gold_and_each_annotator(workspace):
    ws, _, _ = workspace
    rows = examples(n_docs=2, seed=21)
    book = codebook()
    with Store(ws) as store:
        ids = add_segments(store, rows)
        with store.transaction():
            add_gold(store, {seg_id: row["codes"] for seg_id, row in zip(ids, rows, strict=True)}, book)
            for i, (seg_id, row) in enumerate(zip(ids, rows, strict=True)):
                add_annotation(store, i, 1, seg_id, "ann@a", row["codes"], book)
                add_annotation(store, len(ids) + i, 1, seg_id, "ann@b", [], book)
        result = evaluate(store, settings(ws), book)
    assert result.segments == 16 and result.source == "workspace gold"
    assert set(result.annotators) == {"ann@a", "ann@b"}
    assert result.annotators["ann@a"]["micro_f1"] == result.micro_f1  # ann@a agrees with gold
    assert result.annotators["ann@b"]["micro_f1"] == 0.0  # ann@b ticked nothing
