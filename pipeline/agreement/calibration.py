"""Project calibration: re-tune the current classifier's thresholds on the project's own human labels, then
refresh the pre-labels nobody has acted on yet (docs/calibration.md).

1. Evidence: the human labels of this workspace (adjudicated gold, else the annotators' majority per code, as
   admission reads them) on segments the current classifier scored but did not train on.
2. With at least `classifier.calibration_min_labels` such segments, each code's threshold is tuned on them
   and the stored scores (`pipeline.classifier.calibration`); codes with too little evidence keep the model's.
3. A calibration is stored only when the evidence or the thresholds differ from the one in force, so a rerun
   on the same labels changes nothing. A new one re-decides the stored predictions of the unannotated segments
   and, when the workspace has Label Studio tasks, updates the pre-labels of the tasks nobody has annotated
   (`studio.push(update_only=True)`; the admission gate still decides what is pre-ticked).

`culturecode calibrate` runs it; `culturecode pull` and `retrain` run it after pulling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipeline.agreement.admission import _trained_texts, human_labels, refresh_admission
from pipeline.classifier.calibration import (
    PROJECT,
    CodeThreshold,
    decide,
    labels_hash,
    model_thresholds,
    tune_on_project,
)
from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from pipeline.store.annotations import count_tasks, unannotated_segment_ids
from pipeline.store.calibration import Calibration, calibration_of, save_calibration
from pipeline.store.models import current_model, get_model
from pipeline.store.predictions import PredictionRow, predictions_for, write_predictions

CALIBRATED, UNCHANGED, TOO_FEW, NO_MODEL = "calibrated", "unchanged", "too_few_labels", "no_model"


@dataclass
class CodeChange:
    """One code: the threshold in force before, the one after, and the evidence."""

    code: str
    model: float
    before: float
    after: float
    source: str
    positives: int
    negatives: int


@dataclass
class CalibrationResult:
    model_version: str | None
    status: str  # calibrated | unchanged | too_few_labels | no_model
    labels: int  # human-labelled segments usable as evidence
    min_labels: int
    dry_run: bool = False
    codes: list[CodeChange] = field(default_factory=list)
    predictions_changed: int = 0  # stored predictions of unannotated segments whose codes changed
    tasks_updated: int = 0  # Label Studio tasks whose pre-labels were refreshed
    in_force: dict[str, Any] | None = None  # the calibration in force afterwards
    warnings: list[str] = field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evidence:
    segment_ids: list[str]
    y_true: np.ndarray  # segments x codes: 0/1, NaN where the humans tied
    scores: np.ndarray  # segments x codes: the model's stored scores
    labelled: set[str]  # every segment with human labels (evidence or not)


def project_labels(store: Store, codebook: Codebook, row: dict[str, Any]) -> Evidence:
    """The human labels on segments `row`'s version scored and did not train on, with its scores, by segment id."""
    from pipeline.classifier.data import text_key

    codes = codebook.code_ids
    labels = human_labels(store, codebook)
    predicted = predictions_for(store, row["version"], labels)
    trained = _trained_texts(row)
    ids = sorted(s for s in labels if s in predicted and text_key(labels[s][0]) not in trained)
    y_true = np.array([labels[s][1] for s in ids], dtype=np.float64).reshape(-1, len(codes))
    scores = np.array([[predicted[s].scores.get(c, 0.0) for c in codes] for s in ids], dtype=np.float64)
    return Evidence(ids, y_true, scores.reshape(-1, len(codes)), set(labels))


def _changes(rows: list[CodeThreshold], before: dict[str, float]) -> list[CodeChange]:
    return [CodeChange(r.code, r.model, before[r.code], r.threshold, r.source, r.positives, r.negatives) for r in rows]


def _redecide(
    store: Store, version: str, thresholds: dict[str, float], codes: list[str], labelled: set[str]
) -> list[PredictionRow]:
    """The stored predictions of segments nobody labelled (no annotation, no gold) whose codes change at
    `thresholds`."""
    todo = [s for s in unannotated_segment_ids(store) if s not in labelled]
    stored = predictions_for(store, version, todo)
    changed = []
    for pred in stored.values():
        chosen = decide(pred.scores, thresholds, codes)
        if chosen != pred.codes:
            changed.append(PredictionRow(pred.segment_id, version, pred.scores, chosen, pred.rationale))
    return changed


def _in_force(found: Calibration | None) -> dict[str, Any] | None:
    return found.as_dict() if found else None


def calibrate(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    dry_run: bool = False,
    refresh_studio: bool = True,
    show_progress: bool = False,
) -> CalibrationResult:
    """Calibrate the current classifier on the project's labels (see the module's docstring)."""
    cfg = settings.classifier
    version = current_model(store, "classifier")
    row = get_model(store, version) if version else None
    if row is None:
        return CalibrationResult(None, NO_MODEL, 0, cfg.calibration_min_labels, dry_run, message="no classifier yet")
    codes = codebook.code_ids
    own = model_thresholds(row.get("path"), codes, cfg.default_threshold)
    prior = calibration_of(store, row["version"])
    before = {c: (prior.thresholds.get(c, own[c]) if prior else own[c]) for c in codes}
    evidence = project_labels(store, codebook, row)
    result = CalibrationResult(row["version"], TOO_FEW, len(evidence.segment_ids), cfg.calibration_min_labels, dry_run)
    result.in_force = _in_force(prior)
    if result.labels < cfg.calibration_min_labels:
        result.codes = _changes(tune_on_project(evidence.y_true[:0], evidence.scores[:0], codes, own, 1), before)
        result.message = _too_few(result)
        return result
    tuned = tune_on_project(
        evidence.y_true, evidence.scores, codes, own, cfg.calibration_min_positives, cfg.calibration_prior
    )
    result.codes = _changes(tuned, before)
    thresholds = {r.code: r.threshold for r in tuned}
    fingerprint = labels_hash(row["version"], evidence.segment_ids, evidence.y_true)
    same = prior is not None and prior.labels_hash == fingerprint and prior.thresholds == thresholds
    result.status = UNCHANGED if same else CALIBRATED
    # unchanged: the predictions were re-decided when it was stored, and new ones follow it (a pull stays cheap)
    changed = [] if same else _redecide(store, row["version"], thresholds, codes, evidence.labelled)
    result.predictions_changed = len(changed)
    if not dry_run and not same:
        result.in_force = _save(store, codebook, result, fingerprint, tuned, changed)
    if not dry_run and refresh_studio:
        result.tasks_updated = _refresh_tasks(store, settings, codebook, row["version"], result, show_progress)
    result.message = _summary(result)
    return result


def _save(
    store: Store,
    codebook: Codebook,
    result: CalibrationResult,
    fingerprint: str,
    tuned: list[CodeThreshold],
    changed: list[PredictionRow],
) -> dict[str, Any] | None:
    """Record the new calibration and the re-decided predictions in one transaction."""
    version = str(result.model_version)
    thresholds, sources = {r.code: r.threshold for r in tuned}, {r.code: r.source for r in tuned}
    with store.run("calibrate", {"model_version": version, "labels": result.labels}) as summary:
        with store.transaction():
            save_calibration(store, version, result.labels, fingerprint, thresholds, sources)
            write_predictions(store, changed, codebook.content_hash)
        found = calibration_of(store, version)
        summary.update(calibration=found.id if found else None, predictions_changed=len(changed))
    return _in_force(found)


def _refresh_tasks(
    store: Store, settings: Settings, codebook: Codebook, version: str, result: CalibrationResult, show_progress: bool
) -> int:
    """Bring the pre-labels of unannotated Label Studio tasks in line with the calibration in force (a push that
    imports nothing; it sends only when the calibration differs from the one last pushed)."""
    from pipeline import studio
    from pipeline.studio.gate import admission_gate, gate_changed, pushed_gate

    if not count_tasks(store):
        return 0
    pushed = pushed_gate(store, version)
    if pushed is None or not gate_changed(admission_gate(store, settings.admission, version), pushed):
        return 0
    try:
        refresh_admission(store, settings, codebook, version)  # the decisions changed: measure the gate again
        report = studio.push(
            store, settings, codebook, model_version=version, update_only=True, show_progress=show_progress
        )
    except CultureCodeError as exc:
        result.warnings.append(f"Label Studio tasks not updated ({exc}); the next push or pull updates them")
        return 0
    return sum(p.predictions_updated for p in report.projects)


def _too_few(result: CalibrationResult) -> str:
    return (
        f"thresholds of {result.model_version} not re-tuned: {result.labels} human-labelled segment(s) it did not "
        f"train on, {result.min_labels} needed (classifier.calibration_min_labels)"
    )


def _summary(result: CalibrationResult) -> str:
    retuned = sum(c.source == PROJECT for c in result.codes)
    moved = sum(c.after != c.before for c in result.codes)
    what = {
        CALIBRATED: "would re-tune" if result.dry_run else "re-tuned",
        UNCHANGED: "unchanged: already calibrated on the same labels;",
    }[result.status]
    return (
        f"{result.model_version}: {what} {retuned} code threshold(s) on {result.labels} human-labelled segment(s) "
        f"({moved} moved); {result.predictions_changed} pre-label(s) of unannotated segments "
        f"{'would change' if result.dry_run else 'changed'}, {result.tasks_updated} Label Studio task(s) updated."
    )
