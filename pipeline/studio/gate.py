"""The admission gate on pre-labels: only a model version's admitted codes are pre-ticked.

The admission table is measured by `culturecode admission` (pipeline/agreement/admission.py; the
`push` and `retrain` commands measure it first) and stored in the version's `metrics`; here it is
only read. A version never measured under the current settings has no admitted code. Codes the
model chose but may not pre-tick are shown to annotators as an unticked hint with their score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import AdmissionSettings
from pipeline.store import Store
from pipeline.store.calibration import calibration_of
from pipeline.store.models import get_model
from pipeline.store.predictions import PredictionRow


@dataclass(frozen=True)
class Gate:
    """Which codes of `version` may be pre-ticked; `measured_at` is None when no table applies. `calibration`:
    the id of the project calibration whose thresholds chose the version's codes (None: the model's own)."""

    version: str | None
    enabled: bool
    admitted: frozenset[str] = field(default_factory=frozenset)
    measured_at: str | None = None
    calibration: int | None = None

    def split(self, pred: PredictionRow) -> tuple[list[str], list[str]]:
        """(codes pre-ticked, codes only hinted) of one prediction."""
        if not self.enabled:
            return list(pred.codes), []
        return [c for c in pred.codes if c in self.admitted], [c for c in pred.codes if c not in self.admitted]

    def hint(self, pred: PredictionRow) -> str:
        """The line annotators see for the codes held back, '' when none is."""
        held = self.split(pred)[1]
        if not held:
            return ""
        scored = ", ".join(f"{c} ({pred.scores.get(c, 0.0):.2f})" for c in held)
        return f"Also suggested, not ticked (below the admission bar, check yourself): {scored}"

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "enabled": self.enabled,
            "admitted": sorted(self.admitted),
            "measured_at": self.measured_at,
            "calibration": self.calibration,
        }


def _applies(table: dict, cfg: AdmissionSettings) -> bool:
    """Whether a stored table was measured under the settings in force now."""
    return (
        table.get("enabled") is True
        and table.get("min_kappa") == cfg.min_kappa
        and table.get("min_evidence") == cfg.min_evidence
    )


def admission_gate(store: Store, cfg: AdmissionSettings, version: str | None) -> Gate:
    """The gate for `version` from its stored admission table (nothing admitted without one)."""
    calibrated = calibration_of(store, version)
    stamp = calibrated.id if calibrated else None
    if not cfg.enabled:
        return Gate(version, False, calibration=stamp)
    row = get_model(store, version) if version else None
    table = (row or {}).get("metrics", {}).get("admission") or {}
    if not _applies(table, cfg):
        return Gate(version, True, calibration=stamp)
    return Gate(version, True, frozenset(table.get("admitted", [])), table.get("measured_at"), stamp)


def pushed_gate(store: Store, version: str) -> dict | None:
    """What the last push of `version` pre-ticked (`Gate.as_dict`), or None if it was never pushed."""
    row = get_model(store, version)
    return (row or {}).get("metrics", {}).get("admission_pushed")


def gate_changed(gate: Gate, pushed: dict | None) -> bool:
    """Whether tasks already showing `gate.version` were pre-ticked under another gate (or calibration)."""
    if pushed is None:
        return False
    before = (pushed.get("enabled"), sorted(pushed.get("admitted", [])), pushed.get("calibration"))
    return before != (gate.enabled, sorted(gate.admitted), gate.calibration)
