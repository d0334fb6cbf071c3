"""What a workspace holds: counts per stage and per code, and the last runs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import Codebook
from pipeline.store import Store
from pipeline.store.annotations import annotated_per_code, annotation_counts, count_left_behind, count_tasks
from pipeline.store.calibration import calibration_of
from pipeline.store.gold import count_gold, gold_per_code
from pipeline.store.models import count_models, current_model, get_model
from pipeline.store.predictions import count_predictions, predicted_per_code
from pipeline.store.segments import count_documents, count_segments, count_superseded

__all__ = ["CodeCounts", "StatusCounts", "WorkspaceStatus", "current_model", "workspace_status"]


@dataclass
class StatusCounts:
    documents: int
    segments: int  # active: superseded ones (left their document on a replace) count only below
    predicted_segments: int  # by the current model
    tasks: int
    annotations: int  # neither deleted nor skipped, review projects included
    skipped: int
    annotated_segments: int
    annotators: int
    gold: int
    models: int
    superseded_segments: int  # kept for their annotations, gold or tasks (`culturecode segments --superseded`)
    superseded_annotations: int  # kept annotations on those not carried over: counted nowhere


@dataclass
class CodeCounts:
    predicted: int
    annotated: int
    gold: int


@dataclass
class ThresholdsInForce:
    """Which thresholds decide the current model's codes: `model` (its own, tuned at training) or `project`."""

    model_version: str
    source: str  # model | project
    tuned_on: str | None  # model: grouped_cv | validation (None when unknown); project: None
    labels: int | None = None  # project: the human-labelled segments they were tuned on
    calibrated_at: str | None = None
    retuned_codes: int | None = None

    @property
    def line(self) -> str:
        """'model CV (clf-003)' or 'project calibration on 42 labels, 2026-12-01 (clf-003)'."""
        if self.source == "project":
            day = (self.calibrated_at or "")[:10]
            return f"project calibration on {self.labels} labels, {day} ({self.model_version})"
        how = {"grouped_cv": "model CV", "validation": "model validation split"}.get(self.tuned_on or "", "model")
        return f"{how} ({self.model_version})"


def thresholds_in_force(store: Store, model: str | None) -> ThresholdsInForce | None:
    """The thresholds of `model` (None for an LLM or no model)."""
    row = get_model(store, model, "classifier") if model else None
    if row is None:
        return None
    found = calibration_of(store, model)
    if found is not None:
        retuned = sum(s == "project" for s in found.sources.values())
        return ThresholdsInForce(row["version"], "project", None, found.labels, found.created_at, retuned)
    try:
        manifest = json.loads((Path(row["path"] or "") / "classifier.json").read_text(encoding="utf-8"))
        tuned_on = manifest.get("thresholds_from")
    except (OSError, ValueError, AttributeError):
        tuned_on = None
    return ThresholdsInForce(row["version"], "model", tuned_on)


@dataclass
class WorkspaceStatus:
    workspace: str
    schema_version: int
    codebook_hash: str | None
    current_model: str | None
    counts: StatusCounts
    per_code: dict[str, CodeCounts] = field(default_factory=dict)
    last_runs: list[dict[str, Any]] = field(default_factory=list)
    thresholds: ThresholdsInForce | None = None  # the current model's: its own, or a project calibration's

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.thresholds is not None:
            data["thresholds"]["line"] = self.thresholds.line
        return data


def _counts(store: Store, model: str | None) -> StatusCounts:
    annotations = annotation_counts(store)
    return StatusCounts(
        documents=count_documents(store),
        segments=count_segments(store),
        predicted_segments=count_predictions(store, model) if model else 0,
        tasks=count_tasks(store),
        annotations=annotations.annotations,
        skipped=annotations.skipped,
        annotated_segments=annotations.annotated_segments,
        annotators=annotations.annotators,
        gold=count_gold(store),
        models=count_models(store),
        superseded_segments=count_superseded(store),
        superseded_annotations=count_left_behind(store),
    )


def workspace_status(store: Store, codebook: Codebook | None = None) -> WorkspaceStatus:
    model = current_model(store)
    predicted = predicted_per_code(store, model) if model else {}
    annotated = annotated_per_code(store)
    gold = gold_per_code(store)
    code_ids = codebook.code_ids if codebook else sorted(set(predicted) | set(annotated) | set(gold))
    per_code = {c: CodeCounts(predicted.get(c, 0), annotated.get(c, 0), gold.get(c, 0)) for c in code_ids}
    last_runs = [
        {k: r[k] for k in ("id", "stage", "status", "started_at", "finished_at", "summary")} for r in store.last_runs(5)
    ]
    return WorkspaceStatus(
        str(store.workspace),
        store.schema_version,
        store.codebook_hash,
        model,
        _counts(store, model),
        per_code,
        last_runs,
        thresholds_in_force(store, model),
    )
