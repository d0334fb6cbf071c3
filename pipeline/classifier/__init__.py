"""The classifier stage: train, pre-label (torch or ONNX int8), evaluate, manage versions, retrain.

Library entry points (each CLI command calls one of these):
`train`, `prelabel`, `evaluate`, `list_models`, `show_model`, `promote`, `retrain`.
"""

from pipeline.classifier.evaluation import evaluate
from pipeline.classifier.loop import retrain
from pipeline.classifier.predict import PrelabelReport, prelabel
from pipeline.classifier.registry import current_version, list_models, load_model, promote, show_model
from pipeline.classifier.training import TrainReport, train

__all__ = ["PrelabelReport", "TrainReport", "current_version", "evaluate", "list_models", "load_model",
           "prelabel", "promote", "retrain", "show_model", "train"]
