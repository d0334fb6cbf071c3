"""Where models run: `--device auto|cpu|cuda` (settings `classifier.device`, `llm.device`).

`auto` takes the GPU when torch sees one (`torch.cuda.is_available()`), else the CPU; `cuda` on a machine
without one is a one-line error. On a GPU, forward passes run under `torch.autocast`: bfloat16 where the
card supports it (training and inference), float16 for inference on older cards, and float32 training
there (float16 training would need loss scaling). Scores come back as float32 on the CPU either way.
torch is imported inside the functions: the CLI loads this module at start-up.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from pipeline.errors import CultureCodeError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
DEVICE_PATTERN = "^(auto|cpu|cuda)$"


def resolve_device(requested: str | None = "auto") -> str:
    """'cpu' or 'cuda' for a requested 'auto', 'cpu' or 'cuda' (None: auto)."""
    choice = (requested or "auto").strip().lower()
    if choice not in DEVICES:
        raise CultureCodeError(f"unknown device '{requested}'; use {', '.join(DEVICES)}")
    if choice == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if choice == "cuda":
        raise CultureCodeError(
            f"--device cuda: torch sees no CUDA GPU here ({_why_no_cuda(torch)}); use --device auto or cpu"
        )
    return "cpu"


def _why_no_cuda(torch: Any) -> str:
    built = getattr(torch.version, "cuda", None)
    return (
        f"torch {torch.__version__} built for CUDA {built}, no device visible"
        if built
        else (f"torch {torch.__version__} is a CPU-only build")
    )


def device_of(model: torch.nn.Module) -> torch.device:
    """The device a model's weights are on."""
    return next(model.parameters()).device


def on_device(model: torch.nn.Module, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """`tensors` moved to where `model` is (no copy when already there)."""
    device = device_of(model)
    return [t.to(device, non_blocking=True) for t in tensors]


def precision(device: str, training: bool = False) -> str:
    """The autocast precision used on `device`: 'bf16', 'fp16' or 'fp32'."""
    if device != "cuda":
        return "fp32"
    import torch

    if torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32" if training else "fp16"


def autocast(model: torch.nn.Module, training: bool = False) -> AbstractContextManager[Any]:
    """Mixed precision for forward passes of `model` where safe (see `precision`); a no-op on the CPU."""
    device = device_of(model).type
    chosen = precision(device, training)
    if chosen == "fp32":
        return nullcontext()
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16 if chosen == "bf16" else torch.float16)


def describe(device: str, training: bool = False) -> dict[str, Any]:
    """What reports and model cards say about the device: its kind, name and precision."""
    info: dict[str, Any] = {"device": device, "precision": precision(device, training)}
    if device == "cuda":
        import torch

        info["name"] = torch.cuda.get_device_name(0)
    return info
