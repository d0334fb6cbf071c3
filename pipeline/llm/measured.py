"""The quality an LLM labeller was measured at on the example gold (shipped as `measured_quality.json`).

A workspace without human labels cannot measure its LLM; these figures say what to expect meanwhile.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def measured_quality(model_version: str) -> dict[str, Any] | None:
    """The shipped measurement of the model and prompt behind an LLM model version
    ('llm-<model>-<prompt>-<prompt version>'), or None when that pair was never measured."""
    text = resources.files("pipeline.llm").joinpath("measured_quality.json").read_text(encoding="utf-8")
    for row in json.loads(text)["measurements"]:
        if model_version.startswith(f"llm-{row['model']}-{row['prompt']}-"):
            return row
    return None
