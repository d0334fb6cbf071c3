"""The classifier stage: train, pre-label (torch or ONNX int8), evaluate, manage versions.

Library entry points (each CLI command calls one of these):
`train`, `prelabel`, `evaluate`, `list_models`, `show_model`, `promote`, `prune_versions`. The classifier registers
as the labeller `classifier` (pipeline/classifier/labeller.py); retraining is a flow
(`pipeline.flows.retrain`). Names load on first use: importing this package loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import lazy_names

if TYPE_CHECKING:
    from pipeline.classifier.evaluation import EvaluationResult, evaluate
    from pipeline.classifier.predict import ClassifierLabeller, PrelabelReport, prelabel
    from pipeline.classifier.registry import current_version, list_models, load_model, promote, show_model
    from pipeline.classifier.training import TrainReport, train
    from pipeline.classifier.versions import PruneReport, prune_versions

_WHERE = {
    "EvaluationResult": "evaluation",
    "evaluate": "evaluation",
    "ClassifierLabeller": "predict",
    "PrelabelReport": "predict",
    "prelabel": "predict",
    "current_version": "registry",
    "list_models": "registry",
    "load_model": "registry",
    "promote": "registry",
    "show_model": "registry",
    "TrainReport": "training",
    "train": "training",
    "PruneReport": "versions",
    "prune_versions": "versions",
}

__all__ = [
    "ClassifierLabeller",
    "EvaluationResult",
    "PrelabelReport",
    "PruneReport",
    "TrainReport",
    "current_version",
    "evaluate",
    "list_models",
    "load_model",
    "prelabel",
    "promote",
    "prune_versions",
    "show_model",
    "train",
]

__getattr__ = lazy_names(__name__, _WHERE)
