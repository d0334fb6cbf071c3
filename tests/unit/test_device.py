"""`--device auto|cpu|cuda` (pipeline/device.py): auto takes the GPU when torch sees one, cuda without one is a
one-line error before any work, and reports, metrics and model cards name the device used. These tests run
on CPU-only machines; the GPU path is measured by benchmarks/gpu_check.sh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.device import autocast, describe, precision, resolve_device
from pipeline.errors import CultureCodeError
from tests.unit.test_classifier_helpers import CODEBOOK, examples, tiny_encoder, write_jsonl

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of machines without a GPU")


@no_gpu
def test_auto_resolves_to_the_cpu_without_a_gpu():
    assert resolve_device("auto") == resolve_device(None) == "cpu"
    assert resolve_device("cpu") == "cpu"
    assert describe("cpu") == {"device": "cpu", "precision": "fp32"}


@no_gpu
def test_cuda_without_a_gpu_is_a_user_error():
    with pytest.raises(CultureCodeError, match="--device cuda: torch sees no CUDA GPU here"):
        resolve_device("cuda")


def test_auto_takes_the_gpu_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device("CUDA") == "cuda"
    assert resolve_device("cpu") == "cpu"  # asked for: the CPU, GPU or not


def test_an_unknown_device_names_the_choices():
    with pytest.raises(CultureCodeError, match="use auto, cpu, cuda"):
        resolve_device("gpu")


def test_no_mixed_precision_on_the_cpu():
    model = torch.nn.Linear(3, 2)
    assert precision("cpu") == precision("cpu", training=True) == "fp32"
    with autocast(model):
        assert model(torch.ones(1, 3)).dtype == torch.float32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    config = root / "settings.yaml"
    config.write_text(
        f"classifier:\n  base_model: {tiny_encoder(root / 'encoder')}\n  method: finetune\n  export_onnx: false\n"
        "  min_segments: 10\n  epochs: 1\nbackups:\n  keep: 0\n",
        encoding="utf-8",
    )
    write_jsonl(root / "gold.jsonl", examples())
    return config


@no_gpu
@pytest.mark.parametrize(
    "command",
    [["train", "--gold", "gold.jsonl"], ["prelabel"], ["evaluate"], ["llm", "label", "--llm", "local"]],
    ids=lambda c: " ".join(c[:2]),
)
def test_device_cuda_without_a_gpu_fails_in_one_line_before_any_work(cli, tmp_path, tiny, command):
    result = cli(*command, "--device", "cuda", "-w", tmp_path / "ws", "-c", tiny, "--codebook", CODEBOOK)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(
        "Error: --device cuda: torch sees no CUDA GPU here"
    )
    assert not (tmp_path / "ws").exists()  # refused before the workspace was even created


def test_a_bad_device_value_is_refused(cli, tmp_path, tiny):
    result = cli("prelabel", "--device", "tpu", "-w", tmp_path / "ws", "-c", tiny)
    assert result.exit_code == 2 and "--device tpu: use auto, cpu, cuda" in result.stderr


@no_gpu
def test_train_prelabel_and_evaluate_report_the_device(cli, tmp_path, tiny):
    common = ["-w", tmp_path / "ws", "-c", tiny, "--codebook", CODEBOOK]
    trained = cli("train", "--gold", tiny.parent / "gold.jsonl", "--device", "auto", "--json", "-q", *common)
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)
    assert report["fit"]["device"] == {"device": "cpu", "precision": "fp32"}
    version = Path(report["path"])
    assert json.loads((version / "metrics.json").read_text())["device"]["device"] == "cpu"
    assert "- Trained on: cpu, fp32 precision." in (version / "README.md").read_text()

    with_text = cli("train", "--gold", tiny.parent / "gold.jsonl", "--no-promote", "-q", *common)
    assert with_text.exit_code == 0 and " on cpu (fp32)" in with_text.stdout

    from pipeline.store import Store
    from tests.unit.test_classifier_helpers import add_segments

    with Store(tmp_path / "ws") as store:
        add_segments(store, examples(n_docs=2, seed=4))
    prelabelled = cli("prelabel", "--json", "-q", "--device", "cpu", *common)
    assert prelabelled.exit_code == 0, prelabelled.output
    assert json.loads(prelabelled.stdout)["device"] == "cpu"

    evaluated = cli("evaluate", "--gold", tiny.parent / "gold.jsonl", "--include-training", "--json", *common)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["device"] == "cpu"
