"""Held-out decisions a classifier version leaves behind for admission (docs/admission.md).

Training knows, for labelled segments the model did not learn from (cross-validation folds or a
held-out split), what the humans said and what the model decided. `save_heldout` writes them to
`models/<version>/heldout.json`; the admission table (pipeline/agreement/admission.py) turns them
into a per-code Cohen's kappa with a bootstrap interval until the project's own labels are enough.
Kept as code-id lists per segment: readable, and small for a few thousand segments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELDOUT = "heldout.json"


@dataclass
class HeldOut:
    """Per held-out segment, the human codes and the model's decided codes; `source` says where from."""

    source: str
    codes: list[str]
    truth: list[list[str]]
    predicted: list[list[str]]

    def matrices(self, codes: list[str]) -> tuple[Any, Any]:
        """(y_true, y_pred) as 0/1 arrays of shape (segments, len(codes))."""
        import numpy as np

        index = {c: j for j, c in enumerate(codes)}
        y_true = np.zeros((len(self.truth), len(codes)), dtype=np.int8)
        y_pred = np.zeros_like(y_true)
        for row, (human, model) in enumerate(zip(self.truth, self.predicted, strict=True)):
            y_true[row, [index[c] for c in human if c in index]] = 1
            y_pred[row, [index[c] for c in model if c in index]] = 1
        return y_true, y_pred


def save_heldout(model_dir: str | Path, codes: list[str], y_true: Any, y_pred: Any, source: str) -> Path:
    """Write `heldout.json` from 0/1 matrices (segments x codes): the human labels and the model's
    decisions at its thresholds, for segments each decision's model did not train on (e.g. the
    out-of-fold predictions of a document-grouped cross-validation). Call it before registering."""
    rows = [[c for c, hit in zip(codes, row, strict=True) if hit] for row in y_true]
    decided = [[c for c, hit in zip(codes, row, strict=True) if hit] for row in y_pred]
    if len(rows) != len(decided):
        raise ValueError(f"y_true has {len(rows)} segments but y_pred {len(decided)}")
    path = Path(model_dir) / HELDOUT
    data = {"source": source, "codes": list(codes), "truth": rows, "predicted": decided}
    path.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_heldout(model_dir: str | Path | None) -> HeldOut | None:
    """The held-out decisions saved with a version, or None (none saved, or unreadable)."""
    if not model_dir:
        return None
    try:
        data = json.loads((Path(model_dir) / HELDOUT).read_text(encoding="utf-8"))
        return HeldOut(str(data["source"]), list(data["codes"]), data["truth"], data["predicted"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
