"""The LLM as labellers: what pyproject.toml registers under the entry-point group
`culturecode.labellers`.

- `llm-local`, `llm-openai`: one per backend (`local`, `openai`); a plugin adds a backend the same
  way, with `LlmBackendPlugin(its_make_backend)` registered as `llm-<name>`;
- `llm`: the backend named in the settings (`llm.backend`), so `--with llm` follows the settings.

This module stays light: the backend and the LLM stage are imported when a labeller is made.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.config import LlmSettings
    from pipeline.labellers.base import LabelContext
    from pipeline.llm.backends.base import Backend
    from pipeline.llm.run import LlmLabeller


def _labeller(context: LabelContext, backend: Backend) -> LlmLabeller:
    from pipeline.llm.run import LlmLabeller

    return LlmLabeller(context, backend)


class LlmBackendPlugin:
    """Called with a LabelContext it makes an LLM labeller; `make_backend(llm_settings)` makes the
    bare backend (for `llm test-server` and `make_backend`). `make` is the backend's factory, or its
    "module:function" path so that nothing is imported before it is needed."""

    kind = "llm"

    def __init__(self, make: Callable[[LlmSettings], Backend] | str):
        self._make = make

    def make_backend(self, settings: LlmSettings) -> Backend:
        make = self._make
        if isinstance(make, str):
            module, _, attr = make.partition(":")
            make = getattr(importlib.import_module(module), attr)
        return make(settings)

    def __call__(self, context: LabelContext) -> LlmLabeller:
        if "backend" in context.options:  # a backend made by the caller (tests, `llm label` with one)
            return _labeller(context, context.options["backend"])
        return _labeller(context, self.make_backend(context.settings.llm))


class SettingsBackend:
    """The LLM labeller with the backend named in the settings (`llm.backend`)."""

    kind = "llm"

    def __call__(self, context: LabelContext) -> LlmLabeller:
        from pipeline.llm.backends import make_backend

        if "backend" in context.options:
            return _labeller(context, context.options["backend"])
        return _labeller(context, make_backend(context.settings.llm))


local = LlmBackendPlugin("pipeline.llm.backends.local:make_backend")
openai = LlmBackendPlugin("pipeline.llm.backends.openai:make_backend")
from_settings = SettingsBackend()
