"""`retrain(...)`: the ML engineer's loop in one call.

pull annotations -> gold labels (majority per code) -> train a new version -> evaluate the new
and the current version on the new version's held-out segments -> promote the new one only if
its macro F1 is higher (or `force`) -> pre-label the segments nobody has annotated -> push.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pipeline.classifier.data import read_gold
from pipeline.classifier.evaluation import score_examples
from pipeline.classifier.predict import prelabel
from pipeline.classifier.registry import current_version, load_model, promote
from pipeline.classifier.training import train
from pipeline.config import Codebook, Settings
from pipeline.store import Store


def _plain(report: Any) -> Any:
    if report is None or isinstance(report, (dict, list, str, int, float)):
        return report
    if hasattr(report, "as_dict"):
        return report.as_dict()
    if dataclasses.is_dataclass(report):
        return dataclasses.asdict(report)
    return str(report)


def unannotated_segment_ids(store: Store) -> list[str]:
    rows = store.conn.execute(
        "SELECT id FROM segments s WHERE NOT EXISTS (SELECT 1 FROM annotations a WHERE a.segment_id = s.id "
        "AND a.deleted = 0 AND a.was_cancelled = 0) ORDER BY document_id, position")
    return [r[0] for r in rows]


def retrain(store: Store, settings: Settings, codebook: Codebook, force: bool = False,
            extra_gold: str | Path | None = None, push: bool = True, show_progress: bool = True) -> dict:
    """Run the loop; returns before/after figures and what each step did."""
    from pipeline import gold, studio

    result: dict[str, Any] = {"pull": _plain(studio.pull(store, settings, codebook, show_progress=show_progress))}
    result["adjudicate"] = _plain(gold.adjudicate(store, codebook, method="majority"))
    extra = read_gold(extra_gold, codebook) if extra_gold else None
    before = current_version(store)
    new = train(store, settings, codebook, promote=False, extra=extra, show_progress=show_progress)
    held_out = new.test_examples
    result["new"] = {"model_version": new.version, **_summary(score_examples(
        load_model(store, codebook, new.version), held_out, settings))}
    result["current"] = None
    if before is not None:
        result["current"] = {"model_version": before, **_summary(score_examples(
            load_model(store, codebook, before), held_out, settings))}
    better = before is None or result["new"]["macro_f1"] > result["current"]["macro_f1"]
    result["promoted"] = bool(better or force)
    if result["promoted"]:
        promote(store, new.version)
    model = current_version(store)
    todo = unannotated_segment_ids(store)
    result["prelabel"] = prelabel(store, settings, codebook, model_version=model, show_progress=show_progress,
                                  segment_ids=todo).as_dict()
    result["push"] = (_plain(studio.push(store, settings, codebook, model_version=model, segment_ids=todo,
                                         show_progress=show_progress)) if push else None)
    result.update({"held_out_segments": len(held_out), "current_model": model,
                   "message": _message(result, before, new.version, force)})
    return result


def _summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("micro_f1", "macro_f1", "segments")} | {"per_code": metrics["per_code"]}


def _message(result: dict, before: str | None, version: str, force: bool) -> str:
    if before is None:
        return f"{version} is the first classifier and is now current."
    new, old = result["new"]["macro_f1"], result["current"]["macro_f1"]
    if result["promoted"]:
        why = "forced" if force and new <= old else f"macro F1 {old:.3f} -> {new:.3f}"
        return f"promoted {version} over {before} ({why}); pre-labelled {result['prelabel']['scored']} segment(s)."
    return (f"kept {before}: {version} scored macro F1 {new:.3f} vs {old:.3f} (use --force to promote it anyway, "
            f"or `culturecode models promote {version}`).")
