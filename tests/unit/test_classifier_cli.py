"""The classifier commands: train, prelabel, evaluate, models list|show|promote (CLI layer)."""

from __future__ import annotations

import json

import pytest

from pipeline.store import Store
from pipeline.store.models import current_model, promote_model
from tests.factory import add_model
from tests.unit.test_classifier_helpers import CODEBOOK, add_segments, codebook, examples, write_jsonl


def _common(ws):
    return ["--workspace", ws, "--codebook", CODEBOOK]


def test_train_prelabel_evaluate_models_commands(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    ws = tmp_path / "ws"
    gold = write_jsonl(tmp_path / "gold.jsonl", examples())
    trained = cli("train", "--gold", gold, "--method", "head", "--no-onnx", "-q", "--json", *_common(ws))
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)
    assert report["version"] == "clf-001" and report["promoted"] is True
    assert set(report["test"]["per_code"]) == {"carrot", "stick"}

    table = cli("train", "--gold", gold, "--method", "head", "--no-onnx", "--no-promote", "-q", *_common(ws))
    assert table.exit_code == 0, table.output
    assert (
        "precision" in table.stdout
        and "clf-002" in table.stdout
        and "models promote --model-version clf-002" in table.stdout
    )

    with Store(ws) as store:
        store.record_codebook(__import__("pipeline.config", fromlist=["x"]).load_codebook(CODEBOOK))
        add_segments(store, examples(n_docs=2, seed=4))
    pre = cli("prelabel", "-q", "--json", *_common(ws))
    assert pre.exit_code == 0, pre.output
    assert json.loads(pre.stdout)["scored"] == 16 and json.loads(pre.stdout)["model_version"] == "clf-001"

    outside = write_jsonl(
        tmp_path / "outside.jsonl", [{"text": r["text"], "codes": r["codes"]} for r in examples(n_docs=2, seed=8)]
    )
    ev = cli("evaluate", "--gold", outside, "--json", *_common(ws))
    assert ev.exit_code == 0, ev.output
    result = json.loads(ev.stdout)
    assert {"micro_f1", "macro_f1", "per_code"} <= set(result)
    assert set(result["per_code"]["stick"]) == {"precision", "recall", "f1", "support", "cohen_kappa"}

    assert cli("models", "promote", "--model-version", "clf-002", *_common(ws)[:2]).exit_code == 0
    listed = json.loads(cli("models", "list", "--json", *_common(ws)[:2]).stdout)
    assert [(m["version"], m["is_current"]) for m in listed] == [("clf-001", False), ("clf-002", True)]
    shown = cli("models", "show", "--model-version", "clf-001", *_common(ws)[:2])
    assert shown.exit_code == 0 and "model card" in shown.stdout


def test_bad_gold_is_one_line_and_exit_2(cli, tmp_path):
    rows = examples()
    rows[0]["codes"] = ["nonsense"]
    result = cli("train", "--gold", write_jsonl(tmp_path / "g.jsonl", rows), "-q", *_common(tmp_path / "ws"))
    assert result.exit_code == 2
    assert "g.jsonl:1: unknown code(s) nonsense" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_model_version_is_refused(cli, tmp_path):
    ws = tmp_path / "ws"
    Store(ws).close()
    result = cli("models", "promote", "--model-version", "clf-999", "--workspace", ws)
    assert result.exit_code == 2 and "no classifier version 'clf-999'" in result.stderr
    result = cli("prelabel", *_common(ws))
    assert result.exit_code == 2 and "culturecode train" in result.stderr


@pytest.mark.parametrize("name", ["", "  "])
def test_promoting_an_empty_version_is_refused_and_the_current_one_stays(cli, tmp_path, name):
    """Issue 26 #3: `models promote --model-version ''` demoted the current classifier, then failed."""
    ws = tmp_path / "ws"
    with Store(ws) as store:
        add_model(store, "clf-001", codebook(), {})
    result = cli("models", "promote", "--model-version", name, "--workspace", ws)
    assert result.exit_code == 2 and "empty model version" in result.stderr and "clf-001" in result.stderr
    with Store(ws, create=False) as store:
        assert current_model(store) == "clf-001"


def test_promote_model_refuses_a_version_that_is_not_there_and_changes_nothing(tmp_path):
    with Store(tmp_path / "ws") as store:
        add_model(store, "clf-001", codebook(), {})
        with pytest.raises(ValueError, match="nothing was promoted"), store.transaction():
            promote_model(store, "clf-404", "classifier")
        assert current_model(store) == "clf-001"
