"""What every LLM backend is: `complete(messages, max_tokens, temperature, schema, seed) -> Completion`.

Backends are chosen by name (`llm.backend` in the settings, `--llm`): each registers a labeller
named `llm-<backend>` under the entry-point group `culturecode.labellers` (see
pipeline/llm/labeller.py), and `make_backend` in this package finds it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class ModelIdentity(Protocol):
    """What names a backend's answers (cache keys, model versions); `llm plan` has it without loading a model."""

    name: str

    @property
    def model_id(self) -> str: ...


class Backend(ModelIdentity, Protocol):
    supports_concurrency: bool

    def complete(
        self,
        messages: list[dict[str, str]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        schema: dict | None = None,
        seed: int = 0,
    ) -> Completion: ...
