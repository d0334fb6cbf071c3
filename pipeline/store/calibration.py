"""Project calibrations: a model version's per-code thresholds re-tuned on the project's own human labels.

Each calibration is one row (model version, thresholds per code, where each came from, how many labels and a
hash of them, when); the newest row of a version is the one in force. A rerun on the same labels that finds
the same thresholds writes nothing (`pipeline.agreement.calibration`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.store.db import Store, dumps, now


@dataclass(frozen=True)
class Calibration:
    """Thresholds in force for `model_version`; `sources` says per code 'project' (re-tuned) or 'model' (kept)."""

    id: int
    model_version: str
    labels: int
    labels_hash: str
    thresholds: dict[str, float]
    sources: dict[str, str]
    created_at: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "model_version": self.model_version,
            "labels": self.labels,
            "labels_hash": self.labels_hash,
            "thresholds": self.thresholds,
            "sources": self.sources,
            "created_at": self.created_at,
        }


def save_calibration(
    store: Store, model_version: str, labels: int, labels_hash: str, thresholds: dict[str, float], sources: dict
) -> Calibration:
    """Record a new calibration of `model_version` (caller holds the transaction); it is now in force."""
    stamp = now()
    cursor = store.conn.execute(
        "INSERT INTO calibrations(model_version, labels, labels_hash, thresholds, sources, created_at) "
        "VALUES(?, ?, ?, ?, ?, ?)",
        (model_version, labels, labels_hash, dumps(thresholds), dumps(sources), stamp),
    )
    return Calibration(int(cursor.lastrowid or 0), model_version, labels, labels_hash, thresholds, sources, stamp)


def calibration_of(store: Store, model_version: str | None) -> Calibration | None:
    """The calibration in force for `model_version` (its newest), or None."""
    if model_version is None:
        return None
    row = store.conn.execute(
        "SELECT id, model_version, labels, labels_hash, thresholds, sources, created_at FROM calibrations "
        "WHERE model_version = ? ORDER BY id DESC LIMIT 1",
        (model_version,),
    ).fetchone()
    if row is None:
        return None
    return Calibration(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6])


def count_calibrations(store: Store, model_version: str | None = None) -> int:
    """Calibrations recorded (of `model_version`, when given)."""
    if model_version is None:
        return store.conn.execute("SELECT COUNT(*) FROM calibrations").fetchone()[0]
    return store.conn.execute("SELECT COUNT(*) FROM calibrations WHERE model_version = ?", (model_version,)).fetchone()[
        0
    ]


def calibration_history(store: Store) -> list[Calibration]:
    """Every calibration, oldest first: the threshold changes made during coding (listed in the appendix)."""
    rows = store.conn.execute(
        "SELECT id, model_version, labels, labels_hash, thresholds, sources, created_at FROM calibrations ORDER BY id"
    )
    return [Calibration(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6]) for r in rows]
