"""Labellers: anything that pre-labels segments, behind one small interface and one registry.

    from pipeline.labellers import available, prelabel
    available()                                   # ['classifier', 'llm', 'llm-local', 'llm-openai', ...]
    report = prelabel(store, settings, codebook, "classifier")

The interface is in `base` (Labeller, LabelContext, ModelRecord), the registry of installed
labellers (entry points, group `culturecode.labellers`) in `registry`, and the one pre-labelling
path (resumable, batch by batch, a progress bar) in `run`. Writing a labeller: docs/labellers.md.
"""

from pipeline.labellers.base import LabelContext, Labeller, ModelRecord, PredictionRow
from pipeline.labellers.registry import GROUP, available, check, create, kind_of, load, register, unregister
from pipeline.labellers.run import LabelRun, prelabel, run_labeller, select_segments

__all__ = [
    "GROUP",
    "LabelContext",
    "LabelRun",
    "Labeller",
    "ModelRecord",
    "PredictionRow",
    "available",
    "check",
    "create",
    "kind_of",
    "load",
    "prelabel",
    "register",
    "run_labeller",
    "select_segments",
    "unregister",
]
