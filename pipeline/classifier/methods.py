"""The two training methods behind `train(method=...)`.

- `head`: frozen encoder; one logistic regression per code on mean-pooled (optionally L2-normalised)
  embeddings, plus, optionally, the segment's similarity to each code's codebook text; folded into
  the linear layer. Per-code thresholds come from document-grouped cross-validation (out-of-fold
  scores). Seconds to train once the texts are embedded; good for small data and quick rounds.
- `finetune`: the whole network with BCE weighted against class imbalance, a higher learning rate
  for the head than the body (a sparse multi-label head otherwise stays all-negative), and early
  stopping on validation mean average precision.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from pipeline.classifier.codebook_vectors import Embedder, code_vectors
from pipeline.classifier.codebook_vectors import codebook_texts as codebook_texts  # the benchmarks read it here
from pipeline.classifier.data import Example, label_matrix
from pipeline.classifier.encoder import CodeClassifier, embed, predict_proba
from pipeline.classifier.metrics import mean_average_precision
from pipeline.config import ClassifierSettings, Codebook
from pipeline.device import autocast, device_of, on_device
from pipeline.progress import progress_bar

NEVER = -20.0  # bias for a code with no training positives: it is never predicted


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


CODEBOOK_SCALE = 3.0  # standardised codebook-similarity features weigh this much more than one embedding dimension


def feature_map(dim: int, codes: np.ndarray | None) -> np.ndarray:
    """The linear map from embeddings to head features: the embedding itself, then (with codebook
    features) its similarity to each code vector. Linear, so the fitted heads fold back into one layer."""
    eye = np.eye(dim)
    return eye if codes is None else np.concatenate([eye, codes.T], axis=1)


def fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    settings: ClassifierSettings,
    projection: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    start: dict[int, tuple[np.ndarray, float]] | None = None,
    fitted: dict[int, tuple[np.ndarray, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One logistic regression per code on standardised features `x @ projection`, folded into a
    (codes x dim) weight and a bias that apply to `x` directly. `fitted`, when given, receives each code's
    (coefficients, intercept) on the standardised features; `start`, such a dict from a fit on similar data (the
    full set, for its cross-validation folds), is where each code's solver starts: the same optimum, fewer steps."""
    projection = feature_map(x.shape[1], None) if projection is None else projection
    f = x.astype(np.float64) @ projection
    # standardise, with a floor on the spread: near-constant features would otherwise get
    # enormous folded weights that int8 quantisation cannot represent
    # (weighted like the fit, so a weight of 3 is the same as three copies of the example)
    mean = np.average(f, axis=0, weights=sample_weight)
    spread = np.sqrt(np.average((f - mean) ** 2, axis=0, weights=sample_weight))
    spread = np.maximum(spread, 0.1 * float(np.median(spread)) + 1e-12)
    scale = np.ones(f.shape[1])
    scale[x.shape[1] :] = CODEBOOK_SCALE
    fs = (f - mean) / spread * scale
    weight = np.zeros((y.shape[1], x.shape[1]), dtype=np.float64)
    bias = np.full(y.shape[1], NEVER, dtype=np.float64)
    # one BLAS thread: these small problems ran 20x slower with OpenBLAS threads on two busy cores (measured)
    with threadpool_limits(1):
        _fit_codes(fs, y, settings, sample_weight, start, fitted, (projection, scale, spread, mean), (weight, bias))
    return weight, bias


def _fit_codes(fs, y, settings, sample_weight, start, fitted, fold, out) -> None:
    """Each code's logistic regression on the standardised features `fs`, folded back (`fold`: projection, scale,
    spread, mean) into `out` (weight, bias) in place."""
    projection, scale, spread, mean = fold
    weight, bias = out
    for j in range(y.shape[1]):
        n_pos = int(y[:, j].sum())
        if n_pos == len(y):
            bias[j] = -NEVER
        elif n_pos:
            clf = LogisticRegression(
                class_weight=settings.head_class_weight, C=settings.head_c, max_iter=2000, warm_start=j in (start or {})
            )
            if start and j in start:
                clf.coef_, clf.intercept_ = start[j][0][None, :].copy(), np.array([start[j][1]])
            clf.fit(fs, y[:, j], sample_weight=sample_weight)
            if fitted is not None:
                fitted[j] = (clf.coef_[0].copy(), float(clf.intercept_[0]))
            # fold standardisation, scale and projection: w.((xP - mu)/sd * s) + b
            w = clf.coef_[0] * scale / spread
            weight[j] = projection @ w
            bias[j] = clf.intercept_[0] - float(np.dot(w, mean))


def linear_proba(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ weight.T + bias)))


def example_weights(examples: list[Example]) -> np.ndarray | None:
    weights = np.array([e.weight for e in examples], dtype=np.float64)
    return None if np.all(weights == weights[0]) else weights


def fit_head(
    model: CodeClassifier,
    tokenizer,
    train: list[Example],
    code_ids: list[str],
    settings: ClassifierSettings,
    show_progress: bool = True,
    codebook: Codebook | None = None,
    embed_texts: Embedder | None = None,
) -> dict:
    """Fit the output layer on frozen embeddings; per-code thresholds from document-grouped CV.
    `embed_texts(texts, bar)`, when given, replaces encoding every text (e.g. reads the embedding cache)."""
    from pipeline.classifier.thresholds import grouped_cv_scores

    texts = [e.text for e in train]
    with progress_bar("embedding", total=len(texts), enabled=show_progress) as bar:
        if embed_texts is not None:
            x = embed_texts(texts, bar)
        else:
            x = embed(model, tokenizer, texts, settings.batch_size * 2, settings.max_length, bar)
    use_codes = settings.codebook_features and codebook
    codes = code_vectors(model, tokenizer, codebook, settings, embed_texts) if use_codes and codebook else None
    projection = feature_map(x.shape[1], codes)
    y, weights = label_matrix(train, code_ids), example_weights(train)
    full: dict[int, tuple[np.ndarray, float]] = {}
    weight, bias = fit_linear(x, y, settings, projection, weights, fitted=full)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(weight))
        model.head.bias.copy_(torch.from_numpy(bias))

    def fit_score(train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
        w = None if weights is None else weights[train_idx]
        return linear_proba(x[test_idx], *fit_linear(x[train_idx], y[train_idx], settings, projection, w, start=full))

    oof, folds = grouped_cv_scores(fit_score, [e.document for e in train], len(code_ids), settings.cv_folds)
    return {"epochs": 0, "cv_folds": folds, "oof_scores": oof}


def fit_finetune(
    model: CodeClassifier,
    tokenizer,
    train: list[Example],
    val: list[Example],
    code_ids: list[str],
    settings: ClassifierSettings,
    show_progress: bool = True,
) -> dict:
    seed_everything(settings.seed)
    y = torch.from_numpy(label_matrix(train, code_ids)).to(device_of(model))
    y_val = label_matrix(val, code_ids)
    enc = tokenizer([e.text for e in train], truncation=True, max_length=settings.max_length)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=_pos_weight(y))
    optimizer, scheduler = _optimizer(model, settings, len(train))
    generator = torch.Generator().manual_seed(settings.seed)
    best, best_state, stale, history = -1.0, None, 0, []
    steps = settings.epochs * -(-len(train) // settings.batch_size)
    with progress_bar("fine-tuning", total=steps, enabled=show_progress) as bar:
        for epoch in range(1, settings.epochs + 1):
            model.train()
            for batch in torch.randperm(len(train), generator=generator).split(settings.batch_size):
                ids = batch.tolist()
                padded = tokenizer.pad(
                    {
                        "input_ids": [enc["input_ids"][i] for i in ids],
                        "attention_mask": [enc["attention_mask"][i] for i in ids],
                    },
                    return_tensors="pt",
                )
                with autocast(model, training=True):
                    logits = model(*on_device(model, padded["input_ids"], padded["attention_mask"]))
                loss = loss_fn(logits.float(), y[batch.to(y.device)])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                bar.advance()
            probs = predict_proba(model, tokenizer, [e.text for e in val], settings.batch_size * 2, settings.max_length)
            score = mean_average_precision(y_val, probs)
            history.append({"epoch": epoch, "val_map": round(score, 4), "loss": round(loss.item(), 4)})
            if score > best + 1e-6:
                best, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= settings.early_stopping_patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"epochs": len(history), "best_epoch": max(history, key=lambda h: h["val_map"])["epoch"], "history": history}


def _pos_weight(y: torch.Tensor) -> torch.Tensor:
    pos = y.sum(0)
    weight = (len(y) - pos) / pos.clamp(min=1)
    return torch.where(pos > 0, weight.clamp(1.0, 50.0), torch.ones_like(weight))


def _optimizer(model: CodeClassifier, settings: ClassifierSettings, n_train: int):
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": settings.learning_rate},
            {"params": model.head.parameters(), "lr": settings.head_learning_rate},
        ],
        weight_decay=0.01,
    )
    total = settings.epochs * -(-n_train // settings.batch_size)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)
