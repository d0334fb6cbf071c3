"""The classifier's entry in the labeller registry (`classifier` in pyproject.toml's
`culturecode.labellers` entry points). Light on purpose: torch loads when a labeller is made."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.classifier.predict import ClassifierLabeller
    from pipeline.labellers.base import LabelContext


class ClassifierFactory:
    """Makes the labeller of a registered classifier version (`context.model_version`, else the
    current one); `context.options["runtime"]` picks torch or onnx."""

    kind = "classifier"

    def __call__(self, context: LabelContext) -> ClassifierLabeller:
        from pipeline.classifier.predict import ClassifierLabeller

        return ClassifierLabeller(context)


factory = ClassifierFactory()
