"""The network: a transformer encoder, mean pooling and one linear output per code.

Both training methods produce this same shape (the `head` method freezes the encoder and fits
the linear layer by logistic regression), so saving, ONNX export and pre-labelling are shared.
Everything loads through `from_pretrained` on a directory, from safetensors only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from pipeline.device import autocast, on_device
from pipeline.errors import CultureCodeError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def resolve_base_model(name: str) -> str:
    """'minilm' / 'mpnet' -> the packaged encoder's folder (pipeline/classifier/packaged.py);
    a directory as is; else a hub name."""
    from pipeline.classifier.packaged import PACKAGED, packaged_path

    if name in PACKAGED:
        return packaged_path(name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise CultureCodeError(
                f"base model directory {path} has no config.json; "
                f"point classifier.base_model at a transformers model folder"
            )
        return str(path)
    return name  # a hub name, for users who are online


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise CultureCodeError(f"cannot load a tokenizer from '{path}': {str(exc).splitlines()[0]}") from None


def load_encoder(path: str) -> PreTrainedModel:
    from safetensors import SafetensorError
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per command is ours; no per-file loading bars
    try:
        return AutoModel.from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError, SafetensorError) as exc:
        raise CultureCodeError(
            f"cannot load encoder weights from '{path}' (safetensors only): {str(exc).splitlines()[0]}"
        ) from None


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class CodeClassifier(nn.Module):
    """Encoder + mean pooling (+ L2 normalisation when `normalize`) + dropout + one logit per code."""

    encoder: PreTrainedModel

    def __init__(self, encoder: PreTrainedModel, n_codes: int, dropout: float = 0.1, normalize: bool = False):
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_codes)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The features the head reads: mean-pooled, and unit length when `normalize`."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = mean_pool(out.last_hidden_state, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pooled(input_ids, attention_mask)))


class ProbabilityModel(nn.Module):
    """What ONNX export traces: token ids in, per-code probabilities out."""

    def __init__(self, model: CodeClassifier):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(input_ids, attention_mask))


def length_sorted_batches(
    texts: list[str], tokenizer, batch_size: int, max_length: int
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Batches of texts sorted by token count, so there is almost no padding; yields the original
    indices and numpy encodings (right-padded)."""
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"] if texts else []
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    order = np.argsort(lengths, kind="stable")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        width = int(lengths[idx].max())
        input_ids = np.full((len(idx), width), pad, dtype=np.int64)
        attention_mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            input_ids[row, : lengths[i]] = ids[i]
            attention_mask[row, : lengths[i]] = 1
        yield idx, {"input_ids": input_ids, "attention_mask": attention_mask}


@torch.inference_mode()
def _over_batches(
    model: CodeClassifier,
    tokenizer,
    texts: list[str],
    width: int,
    *,
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    finish: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    batch_size: int = 32,
    max_length: int = 128,
    bar=None,
) -> np.ndarray:
    """`step(input_ids, attention_mask)` on each length-sorted batch, on the model's device and in its autocast, then
    `finish` in float32; the rows (`width` columns each) back in the order of `texts`."""
    model.eval()
    out = np.zeros((len(texts), width), dtype=np.float32)
    for idx, enc in length_sorted_batches(texts, tokenizer, batch_size, max_length):
        ids, mask = on_device(model, torch.from_numpy(enc["input_ids"]), torch.from_numpy(enc["attention_mask"]))
        with autocast(model):
            result = step(ids, mask)
        out[idx] = finish(result.float()).cpu().numpy()
        if bar is not None:
            bar.advance(len(idx))
    return out


def predict_proba(
    model: CodeClassifier, tokenizer, texts: list[str], batch_size: int = 32, max_length: int = 128
) -> np.ndarray:
    """Per-code probabilities of `texts`."""
    width = model.head.out_features
    return _over_batches(
        model, tokenizer, texts, width, step=model, finish=torch.sigmoid, batch_size=batch_size, max_length=max_length
    )


def embed(
    model: CodeClassifier, tokenizer, texts: list[str], batch_size: int = 32, max_length: int = 128, bar=None
) -> np.ndarray:
    """Mean-pooled encoder embeddings (the features of the `head` method)."""
    width = model.head.in_features
    return _over_batches(
        model, tokenizer, texts, width, step=model.pooled, batch_size=batch_size, max_length=max_length, bar=bar
    )


@torch.inference_mode()
def linear_sigmoid(x: np.ndarray, weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """sigmoid(x W^T + b) in float32 on the CPU: the head's probabilities from pooled embeddings."""
    if len(x) == 0:
        return np.zeros((0, weight.shape[0]), dtype=np.float32)
    logits = nn.functional.linear(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), weight.float().cpu(), bias.float().cpu()
    )
    return torch.sigmoid(logits).numpy()


def head_proba(model: CodeClassifier, x: np.ndarray) -> np.ndarray:
    """What `predict_proba` returns, from `embed`'s output instead of texts (dropout is off in eval)."""
    return linear_sigmoid(x, model.head.weight.detach(), model.head.bias.detach())
