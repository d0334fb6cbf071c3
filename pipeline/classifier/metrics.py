"""Per-code precision, recall, F1 and Cohen's kappa; micro and macro F1; per-code thresholds."""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import average_precision_score, cohen_kappa_score, precision_recall_fscore_support

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def _kappa(truth: np.ndarray, pred: np.ndarray) -> float | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = cohen_kappa_score(truth, pred)
    return None if math.isnan(value) else round(float(value), 4)


def code_metrics(y_true: np.ndarray, y_pred: np.ndarray, code_ids: list[str]) -> dict:
    """Macro F1 averages the codes that occur in `y_true` (absent codes have no recall to score)."""
    y_true, y_pred = y_true.astype(int), y_pred.astype(int)
    p, r, f, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0, labels=list(range(len(code_ids)))
    )
    per_code = {
        code: {
            "precision": round(float(p[j]), 4),
            "recall": round(float(r[j]), 4),
            "f1": round(float(f[j]), 4),
            "support": int(support[j]),
            "cohen_kappa": _kappa(y_true[:, j], y_pred[:, j]),
        }
        for j, code in enumerate(code_ids)
    }
    present = [j for j in range(len(code_ids)) if support[j] > 0]
    tp = float((y_true & y_pred).sum())
    denom = float(y_true.sum() + y_pred.sum())
    return {
        "micro_f1": round(2 * tp / denom, 4) if denom else 0.0,
        "macro_f1": round(float(np.mean(f[present])), 4) if present else 0.0,
        "segments": int(len(y_true)),
        "per_code": per_code,
    }


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray, default: float) -> np.ndarray:
    """Per code, the grid threshold with the best validation F1 (default when no positives)."""
    thresholds = np.full(y_true.shape[1], default, dtype=np.float32)
    for j in range(y_true.shape[1]):
        truth = y_true[:, j].astype(bool)
        if not truth.any():
            continue
        best, best_f1 = default, -1.0
        for t in sorted(THRESHOLD_GRID, key=lambda t: abs(t - default)):  # ties keep the default side
            pred = probs[:, j] >= t
            tp = float((pred & truth).sum())
            f1 = 2 * tp / (pred.sum() + truth.sum())
            if f1 > best_f1 + 1e-9:
                best, best_f1 = float(t), f1
        thresholds[j] = best
    return thresholds


def mean_average_precision(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Threshold-free ranking quality over codes with validation positives (early stopping)."""
    scores = [average_precision_score(y_true[:, j], probs[:, j]) for j in range(y_true.shape[1]) if y_true[:, j].any()]
    return float(np.mean(scores)) if scores else 0.0
