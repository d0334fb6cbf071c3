"""The Labeller interface: anything that turns segments into predictions under a version string.

A labeller is an object with

- `name`: a short name for people ("classifier", "llm-local", "keywords");
- `version`: the model version its predictions are stored under (one per model, prompt or rule
  set: a new version is labelled afresh, an old one is only topped up);
- `label(segments) -> list[PredictionRow]`: per segment it labels, the score of each code in
  [0, 1], the chosen codes and an optional one-sentence reason (`rationale`). A segment it
  cannot label is simply left out; it is offered again on the next run.

and, optionally,

- `kind`: the `models.kind` its versions are registered under (default: its name); `push --with`
  pre-labels with the current version of that kind;
- `batch_size`: segments per `label` call, each call's predictions written in one transaction
  (default 64);
- `relabel`: True to be offered every selected segment on each run, not only those this version
  has not labelled yet (the LLM labellers: their answer cache makes a rerun free);
- `model_record() -> ModelRecord | None`: the `models` row to write after a run (default: a row
  of `kind`, made current); None when the version is registered elsewhere (the classifier's are
  registered by `train`);
- `report(run: LabelRun)`: a richer result for the CLI than the generic `LabelRun`.

A labeller is made by a factory, registered under the entry-point group `culturecode.labellers`
(see pipeline/labellers/registry.py and docs/labellers.md): any callable taking a `LabelContext`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipeline.store.predictions import PredictionRow

if TYPE_CHECKING:
    from pipeline.config import Codebook, Settings
    from pipeline.store import Segment, Store

__all__ = ["DEFAULT_BATCH_SIZE", "LabelContext", "Labeller", "ModelRecord", "PredictionRow"]

DEFAULT_BATCH_SIZE = 64


@runtime_checkable
class Labeller(Protocol):
    name: str
    version: str

    def label(self, segments: list[Segment]) -> list[PredictionRow]: ...


@dataclass
class LabelContext:
    """What a labeller factory is given: the workspace, the settings in effect and the codebook.

    `model_version` asks for one version where a labeller keeps several (the classifier);
    `options` holds labeller-specific choices (the classifier's `runtime`, the LLM's `refresh`,
    `examples_path`, `backend`); `show_progress` is False for quiet runs.
    """

    store: Store
    settings: Settings
    codebook: Codebook
    model_version: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    show_progress: bool = True


@dataclass
class ModelRecord:
    """The `models` row a labeller's version gets after a run; `promote` makes it current of its kind."""

    kind: str
    path: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    promote: bool = True
