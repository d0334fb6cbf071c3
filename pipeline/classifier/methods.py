"""The two training methods behind `train(method=...)`.

- `head`: frozen encoder; one class-balanced logistic regression per code on mean-pooled
  embeddings, folded into the linear layer. Seconds to train; good for small data and quick rounds.
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

from pipeline.classifier.data import Example, label_matrix
from pipeline.classifier.encoder import CodeClassifier, embed, predict_proba
from pipeline.classifier.metrics import mean_average_precision
from pipeline.config import ClassifierSettings
from pipeline.progress import progress_bar

NEVER = -20.0  # bias for a code with no training positives: it is never predicted


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit_head(
    model: CodeClassifier,
    tokenizer,
    train: list[Example],
    code_ids: list[str],
    settings: ClassifierSettings,
    show_progress: bool = True,
) -> dict:
    texts = [e.text for e in train]
    with progress_bar("embedding", total=len(texts), enabled=show_progress) as bar:
        x = embed(model, tokenizer, texts, settings.batch_size * 2, settings.max_length, bar)
    y = label_matrix(train, code_ids)
    # standardise, with a floor on the spread: near-constant dimensions would otherwise get
    # enormous folded weights that int8 quantisation cannot represent
    mean, spread = x.mean(0), x.std(0)
    spread = np.maximum(spread, 0.1 * float(np.median(spread)) + 1e-12)
    xs = (x - mean) / spread
    weight = np.zeros((len(code_ids), x.shape[1]), dtype=np.float64)
    bias = np.full(len(code_ids), NEVER, dtype=np.float64)
    for j in range(len(code_ids)):
        n_pos = int(y[:, j].sum())
        if n_pos == len(y):
            bias[j] = -NEVER
        elif n_pos:
            clf = LogisticRegression(class_weight="balanced", C=settings.head_c, max_iter=2000)
            clf.fit(xs, y[:, j])
            # fold the standardisation into the linear layer: w.(x-mu)/sd + b
            weight[j] = clf.coef_[0] / spread
            bias[j] = clf.intercept_[0] - float(np.dot(weight[j], mean))
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(weight))
        model.head.bias.copy_(torch.from_numpy(bias))
    return {"epochs": 0}


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
    y = torch.from_numpy(label_matrix(train, code_ids))
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
                loss = loss_fn(model(padded["input_ids"], padded["attention_mask"]), y[batch])
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
