"""Per-code thresholds from document-grouped cross-validation.

One small validation split leaves a rare code with a handful of positives, so its tuned threshold
is mostly noise. Instead, the training examples are cut into k folds by document (GroupKFold); a
model fitted on the other folds scores each fold, and the thresholds are tuned on these
out-of-fold scores of every training segment. The same scores, decided at those thresholds, are
held-out evidence of how far the model agrees with the humans (per-code admission).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def grouped_folds(groups: list[str], n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs with whole documents on one side; fewer folds if fewer documents."""
    from sklearn.model_selection import GroupKFold

    k = min(n_folds, len(set(groups)))
    if k < 2:
        return []
    index = np.arange(len(groups))
    return list(GroupKFold(n_splits=k).split(index, groups=np.asarray(groups)))


def grouped_cv_scores(
    fit_score: Callable[[np.ndarray, np.ndarray], np.ndarray], groups: list[str], n_codes: int, n_folds: int
) -> tuple[np.ndarray | None, int]:
    """Out-of-fold scores (segments x codes) from `fit_score(train_idx, test_idx)`; None with < 2 documents."""
    folds = grouped_folds(groups, n_folds)
    if not folds:
        return None, 0
    scores = np.zeros((len(groups), n_codes), dtype=np.float64)
    for train_idx, test_idx in folds:
        scores[test_idx] = fit_score(train_idx, test_idx)
    return scores, len(folds)
