"""ONNX Runtime int8 inference: export once per model version, quantize dynamically, score.

`optimum` would downgrade transformers, so export uses `torch.onnx.export(dynamo=False)` and
quantization `onnxruntime.quantization.quantize_dynamic`. Export can leave dropout switched
on, so the model is put in eval mode before and after.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from pipeline.classifier.encoder import ProbabilityModel, length_sorted_batches
from pipeline.errors import CultureCodeError

ONNX_FILE = "onnx/model.int8.onnx"


def _trace(wrapper: ProbabilityModel, sample: Any, fp32: Path) -> None:
    """Trace `wrapper` on `sample` into the fp32 ONNX graph `fp32` (batch and token axes dynamic)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (sample["input_ids"], sample["attention_mask"]),
            str(fp32),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["probabilities"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "probabilities": {0: "batch"},
            },
            opset_version=17,
        )


def export_int8(model, tokenizer, version_dir: Path) -> Path:
    """Write <version_dir>/onnx/model.int8.onnx (the fp32 intermediate is not kept)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = version_dir / ONNX_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    # sdpa attention drops an all-ones mask while tracing, which bakes "no padding" into the
    # graph; eager attention keeps the mask as an input-dependent operation
    previous = model.encoder.config._attn_implementation
    _set_attention(model, "eager")
    wrapper = ProbabilityModel(model).eval()
    sample = tokenizer(["a short example", "a longer example sentence with padding"], padding=True, return_tensors="pt")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _trace(wrapper, sample, fp32)
        _set_attention(model, previous)
        model.eval()
        fused = _fuse_transformer_ops(fp32, model.encoder.config)
        partial = target.with_suffix(".partial")
        # the per-code output layer is tiny and sensitive (thresholds sit on its output): keep it fp32
        # (the quantizer first rewrites Gemm as <name>_MatMul + <name>_Add: exclude those names too)
        head_nodes = [
            name
            for n in onnx.load(str(fused), load_external_data=False).graph.node
            if n.name.startswith("/model/head/")
            for name in (n.name, n.name + "_MatMul")
        ]
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # pre-processing hint
        quantize_dynamic(
            str(fused),
            str(partial),
            weight_type=QuantType.QInt8,
            nodes_to_exclude=head_nodes,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        partial.replace(target)
    return target


def _fuse_transformer_ops(fp32: Path, config) -> Path:
    """Fuse attention, layer norms and GELU (ONNX Runtime's transformer optimizer), if it applies.

    The fused graph then quantizes to QAttention and friends. An encoder the optimizer does not
    know keeps its plain graph: fusion is a speed-up, never a requirement.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    fused = fp32.with_name("model.fused.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimize_model(
                str(fp32),
                model_type="bert",
                num_heads=getattr(config, "num_attention_heads", 0) or 0,
                hidden_size=getattr(config, "hidden_size", 0) or 0,
            )
            optimized.save_model_to_file(str(fused))
    except Exception:  # noqa: BLE001 - any failure of an optional optimisation falls back to the plain graph
        return fp32
    return fused


def _set_attention(model, implementation: str) -> None:
    if hasattr(model.encoder, "set_attn_implementation"):
        model.encoder.set_attn_implementation(implementation)
    else:
        model.encoder.config._attn_implementation = implementation


class OnnxScorer:
    """Per-code probabilities from the int8 ONNX model, batches sorted by length."""

    def __init__(self, path: Path, tokenizer, threads: int | None = None):
        import onnxruntime as ort

        if not path.is_file():
            raise CultureCodeError(f"{path} is missing; rerun with --runtime torch or retrain")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise CultureCodeError(
                f"{path} is not a readable ONNX model ({str(exc)[:120]}); delete it and rerun to export it again"
            ) from None
        self.tokenizer = tokenizer

    def predict_proba(self, texts: list[str], batch_size: int = 32, max_length: int = 128) -> np.ndarray:
        out: np.ndarray | None = None
        for idx, enc in length_sorted_batches(texts, self.tokenizer, batch_size, max_length):
            probs = self.session.run(None, enc)[0]
            if out is None:
                out = np.zeros((len(texts), probs.shape[1]), dtype=np.float32)
            out[idx] = probs
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)
