"""Project calibration, the arithmetic: per-code thresholds re-tuned on the project's own human labels.

The ranking a classifier learned on the bundled examples transfers to real text far better than its
thresholds do (docs/calibration.md). Once the project has human labels on segments the model scored but did
not train on, each code's threshold is tuned again on those labels and the stored scores: no retraining, no
encoding. The project's best threshold (the middle of the grid thresholds with the best F1 on its labels) is
shrunk towards the model's own, which counts as `prior` human positives: with p positives the new threshold
is model + p / (p + prior) x (best - model). Tuning on a few dozen labels alone overfits them (measured in
benchmarks/bench_corrections.py). A code with fewer than `min_positives` human positives, or as few
negatives, keeps the model's threshold (cross-validated at training).
The flow around it (which labels, storing, refreshing the pre-labels) is `pipeline.agreement.calibration`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.store import Store
from pipeline.store.calibration import calibration_of

if TYPE_CHECKING:
    import numpy as np

    from pipeline.classifier.registry import LoadedModel

PROJECT, MODEL = "project", "model"


@dataclass
class CodeThreshold:
    """One code's threshold after calibration and the evidence behind it."""

    code: str
    model: float  # the model's own (from training)
    threshold: float  # in force after this calibration
    source: str  # project (re-tuned) | model (too little evidence: kept)
    positives: int  # project labels ticking the code
    negatives: int


def model_thresholds(model_dir: str | Path | None, codes: list[str], default: float) -> dict[str, float]:
    """A version's own thresholds (its classifier.json); `default` for codes it does not list or without a file."""
    try:
        manifest = json.loads((Path(model_dir or "") / "classifier.json").read_text(encoding="utf-8"))
        found = dict(zip(manifest["codes"], manifest["thresholds"], strict=True))
    except (OSError, ValueError, KeyError, TypeError):
        found = {}
    return {c: float(found.get(c, default)) for c in codes}


def best_threshold(truth: np.ndarray, scores: np.ndarray) -> float:
    """The middle of the grid thresholds with the best F1 on (truth, scores)."""
    import numpy as np

    from pipeline.classifier.metrics import THRESHOLD_GRID

    positive = truth.astype(bool)
    ticked = scores[None, :] >= THRESHOLD_GRID[:, None]  # grid x segments
    tp = (ticked & positive[None, :]).sum(axis=1)
    f1 = 2 * tp / np.maximum(ticked.sum(axis=1) + positive.sum(), 1)
    return float(np.median(THRESHOLD_GRID[f1 >= f1.max() - 1e-9]))


def shrunk(model: float, best: float, positives: int, prior: float) -> float:
    """`best` pulled towards `model`, which weighs as `prior` positives against the project's `positives`."""
    weight = positives / (positives + prior)
    return round(model + weight * (best - model), 2)


def tune_on_project(
    y_true: np.ndarray,
    scores: np.ndarray,
    codes: list[str],
    fallback: dict[str, float],
    min_positives: int,
    prior: float = 10.0,
) -> list[CodeThreshold]:
    """Per code, a threshold from the human labels `y_true` (segments x codes, 0/1, NaN where the humans tied)
    and the model's `scores`, shrunk towards the model's `fallback[code]` (worth `prior` positives; 0: none);
    `fallback[code]` itself where a code has fewer than `min_positives` positives or negatives."""
    import numpy as np

    rows = []
    for j, code in enumerate(codes):
        decided = ~np.isnan(y_true[:, j]) if len(y_true) else np.zeros(0, dtype=bool)
        truth, score = y_true[decided, j], scores[decided, j]
        positives = int(truth.sum())
        negatives = int(len(truth) - positives)
        if min(positives, negatives) < min_positives:
            rows.append(CodeThreshold(code, fallback[code], fallback[code], MODEL, positives, negatives))
            continue
        tuned = shrunk(fallback[code], best_threshold(truth, score), positives, prior)
        rows.append(CodeThreshold(code, fallback[code], tuned, PROJECT, positives, negatives))
    return rows


def labels_hash(version: str, segment_ids: list[str], y_true: np.ndarray) -> str:
    """A fingerprint of the evidence (which segments, which labels) a calibration of `version` used."""
    rows = [
        [seg, [None if v != v else int(v) for v in row]] for seg, row in zip(segment_ids, y_true.tolist(), strict=True)
    ]
    return hashlib.sha256(json.dumps([version, rows]).encode("utf-8")).hexdigest()[:16]


def decide(scores: dict[str, float], thresholds: dict[str, float], codes: list[str]) -> list[str]:
    """The codes whose score reaches their threshold, in codebook order."""
    return [c for c in codes if c in thresholds and scores.get(c, 0.0) >= thresholds[c]]


def calibrated_thresholds(store: Store, version: str) -> dict[str, float] | None:
    """The thresholds of the calibration in force for `version`, or None (the model's own apply)."""
    found = calibration_of(store, version)
    return found.thresholds if found else None


def with_calibration(store: Store, loaded: LoadedModel) -> LoadedModel:
    """`loaded` deciding at the project calibration's thresholds when one is in force for its version (new
    pre-labels then follow the calibration); evaluation keeps the model's own thresholds."""
    import numpy as np

    found = calibrated_thresholds(store, loaded.version)
    if not found:
        return loaded
    current: list[Any] = [float(t) for t in loaded.thresholds]
    thresholds = [found.get(c, t) for c, t in zip(loaded.codes, current, strict=True)]
    return dataclasses.replace(loaded, thresholds=np.array(thresholds, dtype=np.float32))
