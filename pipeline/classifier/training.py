"""`train(...)`: labelled segments -> a new registered model version with held-out metrics."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.classifier import methods
from pipeline.classifier.card import write_model_card
from pipeline.classifier.data import (
    Example,
    Split,
    check_trainable,
    gold_from_store,
    label_matrix,
    positives,
    read_gold,
    split_by_document,
    text_key,
)
from pipeline.classifier.embedding_cache import EmbeddingCache, cache_for, weights_sha256
from pipeline.classifier.encoder import (
    CodeClassifier,
    embed,
    head_proba,
    load_encoder,
    load_tokenizer,
    predict_proba,
    resolve_base_model,
)
from pipeline.classifier.metrics import code_metrics, tune_thresholds
from pipeline.classifier.onnx import OnnxScorer, export_int8
from pipeline.classifier.registry import MANIFEST, models_dir, next_version, register, save_model, write_json
from pipeline.config import ClassifierSettings, Codebook, Settings
from pipeline.device import describe, resolve_device
from pipeline.store import Store, now

MIN_POSITIVES = 5  # fewer training positives than this and a code is reported as unreliable


@dataclass
class TrainReport:
    version: str
    method: str
    path: str
    promoted: bool
    seconds: float
    test: dict
    thresholds: dict[str, float]
    too_few_positives: dict[str, int]
    split: dict
    onnx_int8: dict | None = None
    fit: dict = field(default_factory=dict)
    test_examples: list[Example] = field(default_factory=list)  # the held-out split, for comparisons
    # the decisions on `test_examples` of the model fitted without them (before a refit on all examples)
    test_decisions: np.ndarray | None = None
    source: str = ""  # the labelled data it learned from and was measured on (a gold file, or the gold table)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("test_examples", "test_decisions")}


def load_examples(
    store: Store,
    codebook: Codebook,
    gold: str | Path | None,
    extra: list[Example] | None = None,
    project_weight: float = 1.0,
) -> tuple[list[Example], str]:
    """Examples from a gold file/folder, else from the workspace's gold table. Next to `extra`
    examples (e.g. the bundled example gold), the workspace's own labels weigh `project_weight` each."""
    if gold is not None:
        return read_gold(gold, codebook) + list(extra or []), str(gold)
    return with_prior(gold_from_store(store, codebook), extra, project_weight), f"gold table of {store.workspace}"


def with_prior(project: list[Example], prior: list[Example] | None, project_weight: float) -> list[Example]:
    """The project's own labelled examples, each weighing `project_weight` next to the `prior` (bundled example
    gold), then the prior; without a prior, the project's examples as they are."""
    if prior:
        for example in project:
            example.weight = project_weight
    return project + list(prior or [])


def training_split(examples: list[Example], n_prior: int, cfg: ClassifierSettings) -> Split:
    """Train/validation/test by document. With a prior (the last `n_prior` examples), only the project's own
    documents are held out for the test (from two on): all the prior trains."""
    project_docs = {e.document for e in examples[: len(examples) - n_prior]}
    return split_by_document(examples, cfg, project_docs if n_prior else None)


def train(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    gold: str | Path | None = None,
    method: str | None = None,
    promote: bool = True,
    show_progress: bool = True,
    extra: list[Example] | None = None,
) -> TrainReport:
    """Train on `gold` (JSONL file or folder) or the workspace gold table; register a new version."""
    cfg = settings.classifier if method is None else settings.classifier.model_copy(update={"method": method})
    examples, source = load_examples(store, codebook, gold, extra, cfg.project_weight)
    code_ids = codebook.code_ids
    check_trainable(examples, code_ids, cfg.min_segments, source)
    split = training_split(examples, len(extra or []), cfg)
    started = time.monotonic()
    with store.run("train", {"gold": source, "method": cfg.method}) as summary:
        version = next_version(store)
        tmp = models_dir(store) / f".tmp-{version}"
        _clean_stale(models_dir(store))
        try:
            report = _fit_and_save(tmp, version, split, code_ids, cfg, codebook, source, show_progress, store)
            report.path = str(register(store, tmp, version, codebook.content_hash, _row_metrics(report), promote))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        report.promoted, report.seconds = promote, round(time.monotonic() - started, 1)
        report.source = source
        summary.update(
            {
                "version": version,
                "method": cfg.method,
                "macro_f1": report.test["macro_f1"],
                "micro_f1": report.test["micro_f1"],
                "promoted": promote,
            }
        )
    return report


def _clean_stale(root: Path) -> None:
    for stale in root.glob(".tmp-*") if root.exists() else []:
        shutil.rmtree(stale, ignore_errors=True)


def _fit_and_save(
    tmp: Path,
    version: str,
    split: Split,
    code_ids: list[str],
    cfg: ClassifierSettings,
    codebook: Codebook,
    source: str,
    show_progress: bool,
    store: Store | None = None,
) -> TrainReport:
    methods.seed_everything(cfg.seed)
    base = resolve_base_model(cfg.base_model)
    tokenizer = load_tokenizer(base)
    device = resolve_device(cfg.device)
    model = CodeClassifier(load_encoder(base), len(code_ids), normalize=cfg.normalize).to(device)
    cache, embed_texts = _head_embedder(store, model, tokenizer, cfg, device)
    fitted, test_decisions = fit_version(model, tokenizer, split, code_ids, cfg, codebook, embed_texts, show_progress)
    y_test = label_matrix(split.test, code_ids)
    test = code_metrics(y_test, test_decisions, code_ids)  # held out: the figures the version reports
    fit, learned, oof, thresholds, score = fitted.fit, fitted.learned, fitted.oof, fitted.thresholds, fitted.score
    fit["device"] = describe(device, training=cfg.method == "finetune")
    test_probs = score(split.test)
    unseen = [] if fit.get("refit_on_all") else split.test  # admission's evidence: decisions on unlearned segments
    _save_heldout(tmp, code_ids, learned if oof is not None else [], oof, unseen, test_probs[: len(unseen)], thresholds)
    train_pos = positives(learned, code_ids)
    rounded_thresholds = [round(float(t), 2) for t in thresholds]
    too_few = {c: n for c, n in train_pos.items() if n < MIN_POSITIVES}
    split_summary = split.summary()
    manifest = {
        "version": version,
        "codes": code_ids,
        "thresholds": rounded_thresholds,
        "codebook_id": codebook.id,
        "codebook_hash": codebook.content_hash,
        "method": cfg.method,
        "base_model": cfg.base_model,
        "normalize": cfg.normalize,
        "codebook_features": cfg.codebook_features and cfg.method == "head",
        "thresholds_from": "grouped_cv" if oof is not None else "validation",
        "max_length": cfg.max_length,
        "seed": cfg.seed,
        # the frozen encoder's weights (head method): pre-labelling reuses the embedding cache under this hash
        **({"encoder_sha256": cache.weights} if cache is not None else {}),
        "created_at": now(),
    }
    training = {
        "source": source,
        "segments": sum(len(p) for p in (split.train, split.validation, split.test)),
        "documents": len({e.document for e in split.train + split.validation + split.test}),
        "split": split_summary,
        "positives": train_pos,
        "fit": fit,
        "too_few_positives": too_few,
        # every text the saved version learned from (after a refit, the test split's too), which `evaluate` leaves out
        "train_texts": [text_key(e.text) for e in learned + ([] if cfg.method == "head" else split.validation)],
        "test_keys": [e.key for e in split.test],
        "settings": cfg.model_dump(),
    }
    if cache is not None:
        fit["embedding_cache"] = cache.cache.stats()
    metrics = {"test": test, "device": fit["device"]}
    model.cpu()  # saved, exported to ONNX and scored from the CPU
    save_model(model, tokenizer, tmp, manifest)
    if cfg.export_onnx:
        metrics["onnx_int8"] = _check_onnx(model, tokenizer, tmp, split.test, y_test, test_probs, thresholds, cfg)
        # after a refit the check's segments were learned: it compares the two runtimes, not held-out quality
        metrics["onnx_int8"]["segments_learned"] = bool(fit.get("refit_on_all"))
    write_json(tmp / "training.json", training)
    write_json(tmp / "metrics.json", metrics)
    write_model_card(tmp, manifest, training, metrics, codebook)
    return TrainReport(
        version,
        cfg.method,
        str(tmp),
        False,
        0.0,
        test,
        dict(zip(code_ids, rounded_thresholds, strict=True)),
        too_few,
        split_summary,
        metrics.get("onnx_int8"),
        fit,
        split.test,
        test_decisions,
    )


@dataclass
class Fitted:
    """A model fitted on a split: what it learned from, its per-code thresholds, and how it scores texts."""

    fit: dict
    learned: list[Example]
    oof: np.ndarray | None  # out-of-fold scores of `learned` (head method), else None
    thresholds: np.ndarray
    score: Callable[[list[Example]], np.ndarray]


def fit_and_threshold(
    model: CodeClassifier,
    tokenizer,
    split: Split,
    code_ids: list[str],
    cfg: ClassifierSettings,
    codebook: Codebook,
    embed_texts: methods.Embedder | None = None,
    show_progress: bool = False,
) -> Fitted:
    """Fit `model` on `split` by `cfg.method` and tune its per-code thresholds: what `train` and `retrain` do
    before saving, and what the real-speech benchmark repeats per fold. Head: validation joins training
    (no early stopping to feed) and thresholds come from grouped CV; finetune: from the validation split.
    `embed_texts` (texts, bar) -> frozen-encoder vectors, e.g. from the embedding cache."""
    learned = split.train + split.validation if cfg.method == "head" else split.train
    if cfg.method == "head":
        fit = methods.fit_head(model, tokenizer, learned, code_ids, cfg, show_progress, codebook, embed_texts)
    else:
        fit = methods.fit_finetune(model, tokenizer, split.train, split.validation, code_ids, cfg, show_progress)
    model.eval()

    def score(part: list[Example]) -> np.ndarray:
        texts = [e.text for e in part]
        if embed_texts is not None:  # the head on cached vectors: what predict_proba computes, without encoding
            return head_proba(model, embed_texts(texts, None))
        return predict_proba(model, tokenizer, texts, cfg.inference_batch_size, cfg.max_length)

    oof = fit.pop("oof_scores", None)
    if oof is not None:
        y_learned = label_matrix(learned, code_ids)
        thresholds = tune_thresholds(y_learned, oof, cfg.default_threshold)
        fit["cv"] = code_metrics(y_learned, oof >= thresholds, code_ids)
    else:
        thresholds = tune_thresholds(
            label_matrix(split.validation, code_ids), score(split.validation), cfg.default_threshold
        )
    return Fitted(fit, learned, oof, thresholds, score)


def fit_version(
    model: CodeClassifier,
    tokenizer,
    split: Split,
    code_ids: list[str],
    cfg: ClassifierSettings,
    codebook: Codebook,
    embed_texts: methods.Embedder | None = None,
    show_progress: bool = False,
) -> tuple[Fitted, np.ndarray]:
    """What a new version learns, as `train` and `retrain` fit it: fitted on the split and measured on its test
    documents (those decisions are returned), then, with `refit_on_all`, fitted again with the test documents
    too. The real-speech benchmark calls this for each choice of fed documents."""
    fitted = fit_and_threshold(model, tokenizer, split, code_ids, cfg, codebook, embed_texts, show_progress)
    test_decisions = fitted.score(split.test) >= fitted.thresholds
    if refits(cfg, split):
        fitted = fit_and_threshold(model, tokenizer, refit_split(split), code_ids, cfg, codebook, embed_texts)
        fitted.fit["refit_on_all"] = True
    return fitted, test_decisions


def refits(cfg: ClassifierSettings, split: Split) -> bool:
    """Whether the version learns from its test split too once measured on it: the head method (seconds to fit
    again) with `refit_on_all`, when there is a test split."""
    return cfg.method == "head" and cfg.refit_on_all and bool(split.test)


def refit_split(split: Split) -> Split:
    """The same split with its test documents moved into training (the head's thresholds come from grouped CV
    over every learned document, so the refit's out-of-fold decisions stay held-out evidence)."""
    return Split(split.train + split.test, split.validation, [])


@dataclass
class _HeadCache:
    weights: str
    cache: EmbeddingCache


def _head_embedder(store: Store | None, model: CodeClassifier, tokenizer, cfg: ClassifierSettings, device: str):
    """For the head method with a workspace: (the weights hash and embedding cache, texts -> embeddings through
    the cache); else (None, None) and every text is encoded."""
    if cfg.method != "head" or store is None or cfg.embedding_cache_rows <= 0:
        return None, None
    weights = weights_sha256(model.encoder)
    cache = cache_for(store, weights, cfg.normalize, cfg.max_length, device, cfg.embedding_cache_rows)
    assert cache is not None

    def embed_texts(texts: list[str], bar) -> np.ndarray:
        def encode(missing: list[str]) -> np.ndarray:
            return embed(model, tokenizer, missing, cfg.batch_size * 2, cfg.max_length, bar)

        before = cache.encoded
        out = cache.embed(texts, encode)
        if bar is not None:  # `encode` advanced it by the texts it encoded; the cached ones count too
            bar.advance(len(texts) - (cache.encoded - before))
        return out

    return _HeadCache(weights, cache), embed_texts


def _save_heldout(
    tmp: Path,
    code_ids: list[str],
    learned: list[Example],
    oof: np.ndarray | None,
    test: list[Example],
    test_probs: np.ndarray,
    thresholds: np.ndarray,
) -> None:
    """Decisions on segments the deciding model never learned from, for per-code admission:
    out-of-fold decisions on the training segments (grouped CV) and the final model's on the test split."""
    from pipeline.classifier.admission import save_heldout

    tmp.mkdir(parents=True, exist_ok=True)
    examples = learned + test
    scores = test_probs if oof is None else np.concatenate([oof, test_probs])
    source = "grouped cross-validation" + (" and test split" if test else "") if oof is not None else "test split"
    save_heldout(tmp, code_ids, label_matrix(examples, code_ids), scores >= thresholds, source)


def _check_onnx(
    model,
    tokenizer,
    path: Path,
    test: list[Example],
    y_test: np.ndarray,
    fp32_probs: np.ndarray,
    thresholds: np.ndarray,
    cfg: ClassifierSettings,
) -> dict:
    """Export int8 and record its macro F1 next to the fp32 model's on the same test split."""
    scorer = OnnxScorer(export_int8(model, tokenizer, path), tokenizer)
    int8 = scorer.predict_proba([e.text for e in test], cfg.inference_batch_size, cfg.max_length) >= thresholds
    fp32 = fp32_probs >= thresholds
    codes = list(range(y_test.shape[1]))
    return {
        "macro_f1": code_metrics(y_test, int8, [str(c) for c in codes])["macro_f1"],
        "fp32_macro_f1": code_metrics(y_test, fp32, [str(c) for c in codes])["macro_f1"],
        "same_decisions": round(float((int8 == fp32).mean()), 4) if len(test) else 1.0,
    }


def _row_metrics(report: TrainReport) -> dict:
    return {
        "method": report.method,
        "micro_f1": report.test["micro_f1"],
        "macro_f1": report.test["macro_f1"],
        "test_segments": report.test["segments"],
        **({"onnx_int8_macro_f1": report.onnx_int8["macro_f1"]} if report.onnx_int8 else {}),
    }


__all__ = [
    "MANIFEST",
    "Fitted",
    "TrainReport",
    "fit_and_threshold",
    "load_examples",
    "train",
    "training_split",
    "with_prior",
]
