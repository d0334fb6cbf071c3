"""Per-code admission: which codes of a model version may be pre-ticked in Label Studio.

For each code, Cohen's kappa between the version's decisions and human labels on segments it did
not train on, with a 95% percentile bootstrap interval over segments (`coefficients.cohen_kappa`
and `coefficients.bootstrap_weights`, as the agreement report). The evidence, code by code:

1. the project's own human labels (adjudicated gold, else the annotators' majority) on segments
   outside the version's training data that the version pre-labelled, once they hold at least
   `admission.min_evidence` human positives and as many negatives;
2. else the held-out decisions the version saved at training time (`heldout.json`: cross-validated
   on the example gold before any project labels exist);
3. else what the project has, which is too little: not admitted.

A code is admitted when its kappa reaches `admission.min_kappa` on enough evidence. The table is
stored in the version's `metrics` under `admission`; `push` reads it from there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.agreement import coefficients as co
from pipeline.config import AdmissionSettings, Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.store import Store, now
from pipeline.store.annotations import live_annotations
from pipeline.store.gold import gold_segments
from pipeline.store.models import current_model, get_model, list_models, set_model_metric
from pipeline.store.predictions import predictions_of

PROJECT, TRAINING, NONE = "project", "training", "none"
LEVEL = 0.95


@dataclass
class AdmissionRow:
    code: str
    kappa: float | None
    ci_low: float | None
    ci_high: float | None
    n: int  # segments with a human decision on this code
    positives: int  # of which the humans ticked the code
    predicted: int  # of which the model ticked it
    admitted: bool
    reason: str
    source: str  # project | training | none


@dataclass
class AdmissionTable:
    model_version: str
    kind: str
    enabled: bool
    min_kappa: float
    min_evidence: int
    measured_at: str
    rows: list[AdmissionRow]
    sources: dict[str, str] = field(default_factory=dict)  # source -> what it was

    @property
    def admitted(self) -> list[str]:
        return [r.code for r in self.rows if r.admitted]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "admitted": self.admitted}


# --------------------------------------------------------------------------- the table


def bootstrap_draws(n_units: int, replicates: int, seed: int) -> list[np.ndarray]:
    """The units drawn in each replicate (indices, repeats allowed), from `coefficients.bootstrap_weights`."""
    units = np.arange(n_units)
    return [np.repeat(units, w.astype(np.int64)) for w in co.bootstrap_weights(n_units, replicates, seed)]


def kappa_interval(x: np.ndarray, y: np.ndarray, draws: list[np.ndarray]) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of Cohen's kappa over `draws`; None where kappa is undefined in
    most replicates (too little variation)."""
    values = [v for drawn in draws if (v := co.cohen_kappa(x[drawn], y[drawn], 2).value) is not None]
    if not draws or len(values) < 0.5 * len(draws):
        return None, None
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return round(float(lo), 4), round(float(hi), 4)


def _decide(kappa: co.Coef, positives: int, negatives: int, cfg: AdmissionSettings) -> tuple[bool, str]:
    short = min(positives, negatives) < cfg.min_evidence
    if short:
        evidence = f"{positives} human positive(s) and {negatives} negative(s); {cfg.min_evidence} of each needed"
        return (not cfg.enabled), f"too little evidence: {evidence}"
    if kappa.value is None:
        return (not cfg.enabled), f"kappa undefined: {kappa.reason}"
    if kappa.value < cfg.min_kappa:
        return (not cfg.enabled), f"kappa {kappa.value:.2f} < {cfg.min_kappa:.2f}"
    return True, f"kappa {kappa.value:.2f} >= {cfg.min_kappa:.2f} on {positives} positives"


def admission_rows(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    codes: list[str],
    cfg: AdmissionSettings,
    source: str,
    bootstrap: int = 1000,
    seed: int = 7,
) -> list[AdmissionRow]:
    """One row per code from human labels `y_true` (0/1, NaN where no human decided) and the model's
    decisions `y_pred` (0/1), both (segments x codes)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    draws = bootstrap_draws(len(y_true), bootstrap, seed) if len(y_true) else []
    rows = []
    for j, code in enumerate(codes):
        x, y = y_pred[:, j], y_true[:, j]
        decided = ~np.isnan(y)
        positives, n = int(np.nansum(y)), int(decided.sum())
        kappa = co.cohen_kappa(x, y, 2, ["absent", "present"]) if n else co.Coef.undefined("no human labels")
        low, high = kappa_interval(x, y, draws) if kappa.value is not None else (None, None)
        admitted, reason = _decide(kappa, positives, n - positives, cfg)
        if not cfg.enabled:
            reason = f"admission is off (admission.enabled: false); {reason}"
        value = None if kappa.value is None else round(kappa.value, 4)
        predicted = int(x[decided].sum())
        rows.append(AdmissionRow(code, value, low, high, n, positives, predicted, admitted, reason, source))
    return rows


# --------------------------------------------------------------------------- the evidence


def _trained_texts(row: dict[str, Any]) -> set[str]:
    """Text keys of the segments a classifier version learned from (training.json `train_texts`)."""
    if row["kind"] != "classifier" or not row.get("path"):
        return set()
    try:
        return set(json.loads((Path(row["path"]) / "training.json").read_text(encoding="utf-8"))["train_texts"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def human_labels(store: Store, codebook: Codebook) -> dict[str, tuple[str, np.ndarray]]:
    """segment_id -> (text, per-code 0/1/NaN): adjudicated gold, else the annotators' majority per code
    (NaN on a tie)."""
    codes = codebook.code_ids
    found: dict[str, tuple[str, np.ndarray]] = {}
    latest: dict[str, dict[str, list[str]]] = {}
    texts: dict[str, str] = {}
    for a in live_annotations(store, codebook_hash=codebook.content_hash):  # oldest first: the latest wins
        latest.setdefault(a.segment_id, {})[a.annotator] = a.codes
        texts[a.segment_id] = a.text
    for seg, by_annotator in latest.items():
        votes = np.array([[c in chosen for c in codes] for chosen in by_annotator.values()], dtype=np.float64)
        share = votes.mean(axis=0)
        found[seg] = (texts[seg], np.where(share == 0.5, np.nan, (share > 0.5).astype(np.float64)))
    for g in gold_segments(store):
        if g.codebook_hash == codebook.content_hash:
            found[g.segment_id] = (g.text, np.array([c in g.codes for c in codes], dtype=np.float64))
    return found


def project_evidence(store: Store, codebook: Codebook, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) on the human-labelled segments the version pre-labelled but did not train on."""
    from pipeline.classifier.data import text_key

    trained = _trained_texts(row)
    predicted = predictions_of(store, row["version"])
    truth, decided = [], []
    for seg, (text, labels) in human_labels(store, codebook).items():
        if seg in predicted and text_key(text) not in trained:
            truth.append(labels)
            decided.append([c in predicted[seg].codes for c in codebook.code_ids])
    width = len(codebook.code_ids)
    return np.array(truth, dtype=np.float64).reshape(-1, width), np.array(decided, dtype=np.float64).reshape(-1, width)


def _enough(row: AdmissionRow, cfg: AdmissionSettings) -> bool:
    return min(row.positives, row.n - row.positives) >= cfg.min_evidence


def measure_admission(
    store: Store, settings: Settings, codebook: Codebook, version: str | None = None, save: bool = True
) -> AdmissionTable:
    """The admission table of `version` (default: the current model), stored in its metrics when `save`."""
    from pipeline.classifier.admission import load_heldout

    row = _model_row(store, version)
    cfg, boot = settings.admission, settings.agreement
    codes = codebook.code_ids
    y_true, y_pred = project_evidence(store, codebook, row)
    project = admission_rows(y_true, y_pred, codes, cfg, PROJECT, boot.bootstrap, boot.seed)
    sources = {PROJECT: f"{len(y_true)} human-labelled segment(s) of this workspace outside the training data"}
    heldout = load_heldout(row.get("path"))
    training: list[AdmissionRow] = []
    if heldout is not None:
        h_true, h_pred = heldout.matrices(codes)
        training = admission_rows(h_true, h_pred, codes, cfg, TRAINING, boot.bootstrap, boot.seed)
        sources[TRAINING] = f"{len(h_true)} held-out segment(s) at training time: {heldout.source}"
    rows = []
    for j, mine in enumerate(project):
        chosen = mine if _enough(mine, cfg) or not training else training[j]
        if chosen is mine and not _enough(mine, cfg) and not len(y_true):
            chosen = AdmissionRow(**{**asdict(mine), "source": NONE})
        rows.append(chosen)
    table = AdmissionTable(row["version"], row["kind"], cfg.enabled, cfg.min_kappa, cfg.min_evidence, now(), rows)
    table.sources = sources
    if save:
        with store.transaction():
            set_model_metric(store, row["version"], "admission", table.as_dict())
    return table


def _model_row(store: Store, version: str | None) -> dict[str, Any]:
    version = version or current_model(store)
    row = get_model(store, version) if version else None
    if row is None:
        known = [m["version"] for kind in ("classifier", "llm") for m in list_models(store, kind)]
        what = f"no model version '{version}'" if version else "no model"
        raise CultureCodeError(
            f"{what} in {store.workspace} (versions: {', '.join(known) or 'none'}); "
            "train one with `culturecode train` or label with `culturecode llm label`"
        )
    return row


def current_tables(store: Store, settings: Settings, codebook: Codebook) -> dict[str, AdmissionTable]:
    """The admission of the current classifier and the current LLM version (those that exist), measured now."""
    versions = dict.fromkeys(v for kind in ("classifier", "llm") if (v := current_model(store, kind)))
    return {v: measure_admission(store, settings, codebook, v) for v in versions}


def refresh_admission(
    store: Store, settings: Settings, codebook: Codebook, version: str | None = None
) -> AdmissionTable | None:
    """Measure `version` (default: the current model) again before a push; None when there is no such model."""
    version = version or current_model(store)
    if version is None or get_model(store, version) is None:
        return None
    return measure_admission(store, settings, codebook, version)
