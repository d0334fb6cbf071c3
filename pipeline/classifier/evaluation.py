"""`evaluate(...)`: a model version against human labels.

Against the workspace's adjudicated gold labels (and each annotator's own labels), or against
an outside JSONL file with `text` and `codes`. Segments the model was trained or validated on
are left out unless `include_training` is set, so the figures are held-out figures.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.classifier.data import Example, gold_from_store, label_matrix, read_gold, text_key
from pipeline.classifier.metrics import code_metrics
from pipeline.classifier.predict import scorer_for
from pipeline.classifier.registry import LoadedModel, load_model
from pipeline.config import Codebook, Settings
from pipeline.device import resolve_device
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from pipeline.store.annotations import live_annotations


@dataclass
class EvaluationResult:
    """A model version against human labels; `annotators` only against the workspace's own labels."""

    model_version: str
    source: str
    excluded_training: int
    micro_f1: float
    macro_f1: float
    segments: int
    per_code: dict[str, dict[str, Any]]
    annotators: dict[str, dict[str, Any]] | None = None
    device: str = "cpu"  # where the model ran (`pipeline.device`)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.annotators is None:
            del data["annotators"]
        return data


def score_examples(
    loaded: LoadedModel, examples: list[Example], settings: Settings, backend: str = "torch", store: Store | None = None
) -> dict:
    """Held-out figures of `loaded` on `examples`; with the workspace `store`, through its embedding cache."""
    cfg = settings.classifier
    score = scorer_for(
        loaded, backend, cfg.inference_batch_size, cfg.max_length, cfg.device, store, cfg.embedding_cache_rows
    )
    probs = score([e.text for e in examples])
    return code_metrics(label_matrix(examples, loaded.codes), probs >= loaded.thresholds, loaded.codes)


def _training_texts(loaded: LoadedModel) -> set[str]:
    path = loaded.path / "training.json"
    try:
        return set(json.loads(path.read_text(encoding="utf-8")).get("train_texts", []))
    except (OSError, json.JSONDecodeError):
        return set()


def _held_out(loaded: LoadedModel, examples: list[Example], include_training: bool) -> tuple[list[Example], int]:
    if include_training:
        return examples, 0
    seen = _training_texts(loaded)
    kept = [e for e in examples if text_key(e.text) not in seen]
    return kept, len(examples) - len(kept)


def evaluate(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    model_version: str | None = None,
    gold_file: str | Path | None = None,
    include_training: bool = False,
    backend: str = "torch",
) -> EvaluationResult:
    """Per-code P/R/F1/support/kappa, micro and macro F1 of a model version against human labels."""
    if gold_file is not None:  # a bad file fails before the model is loaded
        examples, source = read_gold(gold_file, codebook, need_document=False), str(gold_file)
    else:
        examples, source = gold_from_store(store, codebook), "workspace gold"
    loaded = load_model(store, codebook, model_version)
    examples, excluded = _held_out(loaded, examples, include_training)
    if not examples:
        raise CultureCodeError(
            f"nothing to evaluate {loaded.version} on: {source} has no labelled segments"
            + (
                f" outside its training data ({excluded} were trained on; --include-training counts them)"
                if excluded
                else "; run `culturecode adjudicate` or pass --gold FILE.jsonl"
            )
        )
    with store.run("evaluate", {"model_version": loaded.version, "source": source}) as summary:
        scores = score_examples(loaded, examples, settings, backend)
        result = EvaluationResult(loaded.version, source, excluded, **scores)
        result.device = resolve_device(settings.classifier.device) if backend == "torch" else "cpu"
        if gold_file is None:
            result.annotators = _per_annotator(store, loaded, codebook, settings, include_training)
        summary.update({k: getattr(result, k) for k in ("model_version", "micro_f1", "macro_f1", "segments")})
    return result


def _per_annotator(
    store: Store, loaded: LoadedModel, codebook: Codebook, settings: Settings, include_training: bool
) -> dict[str, dict]:
    """The model against each annotator on the segments that annotator labelled (not review projects)."""
    by_annotator: dict[str, dict[str, Example]] = {}
    for a in live_annotations(store, codebook_hash=codebook.content_hash):  # oldest first: the latest wins
        by_annotator.setdefault(a.annotator, {})[a.segment_id] = Example(
            a.segment_id, a.text, codebook.check_codes(a.codes, "annotation"), a.document_id
        )
    result = {}
    for annotator, items in sorted(by_annotator.items()):
        examples, _ = _held_out(loaded, list(items.values()), include_training)
        if examples:
            m = score_examples(loaded, examples, settings)
            kappas = [v["cohen_kappa"] for v in m["per_code"].values() if v["cohen_kappa"] is not None]
            result[annotator] = {
                "segments": m["segments"],
                "micro_f1": m["micro_f1"],
                "macro_f1": m["macro_f1"],
                "mean_kappa": round(float(np.mean(kappas)), 4) if kappas else None,
            }
    return result
