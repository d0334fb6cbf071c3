"""LLM backends behind one small interface (`base.Backend.complete`).

- `local` (backends/local.py): a small instruct model in-process, the default;
- `openai` (backends/openai.py): any OpenAI-compatible `/v1/chat/completions` endpoint.

Each is registered as the labeller `llm-<name>` (entry-point group `culturecode.labellers`), and
`make_backend` finds the backend named in the settings there, so a plugin's backend is chosen
with `llm.backend: <name>` like ours. The backend classes load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.config import LlmSettings
from pipeline.errors import CultureCodeError
from pipeline.lazy import lazy_names
from pipeline.llm.backends.base import Backend, Completion, ModelIdentity

if TYPE_CHECKING:
    from pipeline.llm.backends.local import LocalBackend
    from pipeline.llm.backends.openai import OpenAIBackend

__all__ = ["Backend", "Completion", "LocalBackend", "ModelIdentity", "OpenAIBackend", "make_backend"]

__getattr__ = lazy_names(__name__, {"LocalBackend": "local", "OpenAIBackend": "openai"})


def make_backend(settings: LlmSettings) -> Backend:
    """The backend named in the settings (llm.backend), as registered by the labeller `llm-<name>`."""
    from pipeline.labellers import registry

    name = registry.check_llm_backend(settings.backend)
    plugin = registry.load(f"llm-{name}")
    make = getattr(plugin, "make_backend", None)
    if make is None:
        raise CultureCodeError(
            f"the labeller 'llm-{name}' is not an LLM backend (its factory has no make_backend); see docs/labellers.md"
        )
    return make(settings)
