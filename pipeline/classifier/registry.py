"""Model versions: directories under <workspace>/models/<version>/ and rows in `models`.

A version directory holds the encoder (config + model.safetensors), the tokenizer, the head
(head.safetensors), classifier.json (codes, thresholds, codebook hash), training.json,
metrics.json and a model card (README.md). A version is written to a hidden temporary
directory and becomes visible (renamed + registered) in one transaction, so an interrupted
training run leaves nothing half-registered. Rows hold the directory relative to the workspace
(`pipeline.store.models`), so a moved or copied workspace keeps its models.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pipeline.classifier.encoder import CodeClassifier, load_encoder, load_tokenizer
from pipeline.config import Codebook
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from pipeline.store.models import current_model, get_model, model_versions, promote_model, register_model
from pipeline.store.models import list_models as list_model_rows

KIND = "classifier"
MANIFEST = "classifier.json"


@dataclass
class LoadedModel:
    version: str
    path: Path
    tokenizer: object
    codes: list[str]
    thresholds: np.ndarray
    manifest: dict
    head: dict[str, torch.Tensor] = field(repr=False)
    _model: CodeClassifier | None = field(default=None, repr=False)

    @property
    def model(self) -> CodeClassifier:
        """The torch model, loaded on first use: the ONNX path never needs it (saves ~4 s)."""
        if self._model is None:
            normalize = bool(self.manifest.get("normalize", False))  # versions before it was an option: False
            model = CodeClassifier(load_encoder(str(self.path)), len(self.codes), normalize=normalize)
            with torch.no_grad():
                model.head.weight.copy_(self.head["weight"])
                model.head.bias.copy_(self.head["bias"])
            self._model = model.eval()
        return self._model

    def decide(self, probs: np.ndarray) -> list[list[str]]:
        hits = probs >= self.thresholds
        return [[c for c, h in zip(self.codes, row, strict=True) if h] for row in hits]


def models_dir(store: Store) -> Path:
    return store.workspace / "models"


def next_version(store: Store) -> str:
    numbers = [int(m.group(1)) for v in model_versions(store, KIND) if (m := re.fullmatch(r"clf-(\d+)", v))]
    return f"clf-{max(numbers, default=0) + 1:03d}"


def save_model(model: CodeClassifier, tokenizer, path: Path, manifest: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    save_file(
        {"weight": model.head.weight.detach().contiguous(), "bias": model.head.bias.detach().contiguous()},
        str(path / "head.safetensors"),
    )
    write_json(path / MANIFEST, manifest)


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def register(store: Store, tmp_dir: Path, version: str, codebook_hash: str, metrics: dict, promote: bool) -> Path:
    """Move the finished directory into place and add the row, both or neither."""
    final = models_dir(store) / version
    if final.exists():
        shutil.rmtree(final)  # a leftover of a run that died between rename and commit
    try:
        with store.transaction():
            tmp_dir.rename(final)
            register_model(store, version, KIND, final, codebook_hash, metrics, promote)  # stored as models/<v>
    except BaseException:
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        raise
    return final


def current_version(store: Store) -> str | None:
    return current_model(store, KIND)


def list_models(store: Store) -> list[dict]:
    return list_model_rows(store, KIND)


def model_row(store: Store, version: str | None) -> dict:
    """The row of `version`, or of the current classifier when `version` is None (an empty name is no version)."""
    if version is not None and not version.strip():
        raise CultureCodeError(
            f"an empty model version names no classifier; pick one of: {_known(store)} (`culturecode models list`)"
        )
    version = current_version(store) if version is None else version
    if version is None:
        raise CultureCodeError(
            f"no classifier in {store.workspace}: train one with `culturecode train --gold examples/gold/`"
        )
    row = get_model(store, version, KIND)
    if row is None:
        raise CultureCodeError(f"no classifier version '{version}' in {store.workspace} (versions: {_known(store)})")
    return row


def _known(store: Store) -> str:
    return ", ".join(m["version"] for m in list_models(store)) or "none"


def show_model(store: Store, version: str | None = None) -> dict:
    row = model_row(store, version)
    path = Path(row["path"])
    details = {name: _read_json(path / f"{name}.json") for name in ("classifier", "training", "metrics")}
    return {**row, **details, "model_card": str(path / "README.md")}


def promote(store: Store, version: str) -> dict:
    """Make `version` current; every check comes first, so a refused promotion leaves the current one current."""
    row = model_row(store, version)
    _check_dir(Path(row["path"]), row["version"])
    with store.transaction():
        promote_model(store, row["version"], KIND)
    return model_row(store, row["version"])


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _check_dir(path: Path, version: str) -> None:
    missing = [
        n for n in ("config.json", "model.safetensors", "head.safetensors", MANIFEST) if not (path / n).is_file()
    ]
    if missing:
        raise CultureCodeError(
            f"model {version}: {path} is missing {', '.join(missing)} (only safetensors weights are "
            f"loaded); retrain with `culturecode train` or promote another version"
        )


def load_model(store: Store, codebook: Codebook, version: str | None = None) -> LoadedModel:
    """Load a registered version; refuses a model trained with another codebook."""
    row = model_row(store, version)
    return load_model_dir(Path(row["path"]), codebook, row["version"])


def load_model_dir(path: Path, codebook: Codebook, version: str | None = None) -> LoadedModel:
    version = version or path.name
    _check_dir(path, version)
    manifest = _read_json(path / MANIFEST)
    if manifest.get("codebook_hash") != codebook.content_hash:
        raise CultureCodeError(
            f"model {version} was trained with codebook {manifest.get('codebook_id')} "
            f"({manifest.get('codebook_hash')}), not the workspace's codebook {codebook.id} "
            f"({codebook.content_hash}); train a new model with this codebook or use the original codebook"
        )
    try:
        head = load_file(str(path / "head.safetensors"))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CultureCodeError(
            f"model {version}: {path / 'head.safetensors'} is corrupt ({exc}); retrain with `culturecode train`"
        ) from None
    return LoadedModel(
        version,
        path,
        load_tokenizer(str(path)),
        manifest["codes"],
        np.array(manifest["thresholds"], dtype=np.float32),
        manifest,
        head,
    )
