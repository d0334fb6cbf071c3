"""Model versions on disk, bounded: a retrain with nothing new to learn from makes no version, and versions nobody
uses beyond `loop.keep_unpromoted` are pruned (issue 26: eight retrains left 4.5 GB, six versions identical).

- `training_fingerprint`: SHA-256 over what a training run learns from (the project's gold with its texts and
  documents, the example gold it is added to, the classifier settings, the codebook). `retrain` records it on
  each version it trains (`metrics.training_input`); `same_training` finds a version trained on exactly that.
- `prune_versions`: removes the oldest classifier versions that nothing uses, keeping the newest `keep` of them.
  Never pruned: the current version, any version ever promoted, one a Label Studio task names, one annotations
  were made against, one with stored predictions, or one whose files lie outside the workspace's models/ folder
  (`culturecode models prune` lists each kept version with its reasons). Rows go in one transaction; the
  folders are removed after it commits.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.classifier.data import Example
from pipeline.classifier.registry import KIND, list_models, models_dir
from pipeline.config import ClassifierSettings, Codebook
from pipeline.store import Store
from pipeline.store.models import forget_model, version_uses

FINGERPRINT = "training_input"


def training_fingerprint(
    project: list[Example], prior: list[Example] | None, settings: ClassifierSettings, codebook: Codebook
) -> str:
    """What a training run learns from, as one hash: equal hashes train the same model (the seed is a setting)."""
    digest = hashlib.sha256()
    digest.update(codebook.content_hash.encode())
    digest.update(settings.model_dump_json().encode())
    for name, examples in (("project", project), ("prior", prior or [])):
        digest.update(f"\0{name}\0".encode())
        for example in examples:
            row = [example.key, example.text, sorted(example.codes), example.document, example.weight]
            digest.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def same_training(store: Store, fingerprint: str) -> str | None:
    """The newest classifier version (with its files) trained on exactly this input, else None."""
    for row in reversed(list_models(store)):
        if row["metrics"].get(FINGERPRINT) == fingerprint and row["path"] and Path(row["path"]).is_dir():
            return str(row["version"])
    return None


@dataclass
class PruneReport:
    keep: int
    dry_run: bool
    removed: list[dict[str, Any]] = field(default_factory=list)  # version, path, bytes
    kept: list[dict[str, Any]] = field(default_factory=list)  # version, reasons

    @property
    def freed_bytes(self) -> int:
        return sum(r["bytes"] for r in self.removed)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "freed_bytes": self.freed_bytes}

    def message(self) -> str:
        if not self.removed:
            return ""
        verb = "would remove" if self.dry_run else "removed"
        names = ", ".join(r["version"] for r in self.removed)
        return (
            f"{verb} {len(self.removed)} unpromoted version(s) nothing uses ({names}; "
            f"{self.freed_bytes / 2**20:.0f} MB), keeping the newest {self.keep} (loop.keep_unpromoted)."
        )


def prune_versions(store: Store, keep: int, dry_run: bool = False) -> PruneReport:
    """Remove the classifier versions nothing uses, all but the newest `keep` of them (oldest first)."""
    uses = version_uses(store, KIND)
    root = models_dir(store).resolve()
    report = PruneReport(keep, dry_run)
    unused: list[dict[str, Any]] = []
    for row in list_models(store):  # oldest first
        reasons = list(uses.get(row["version"], []))
        path = Path(row["path"]).resolve() if row["path"] else None
        if path is not None and path.exists() and path.parent != root:
            reasons.append(f"its files are outside {root}")
        if reasons:
            report.kept.append({"version": row["version"], "reasons": reasons})
        else:
            unused.append({"version": row["version"], "path": str(path) if path else None, "bytes": _size(path)})
    doomed = unused[: max(len(unused) - keep, 0)]
    report.kept += [
        {"version": r["version"], "reasons": [f"among the newest {keep} unused"]} for r in unused[len(doomed) :]
    ]
    report.removed = doomed
    if dry_run or not doomed:
        return report
    with store.transaction():
        for row in doomed:
            forget_model(store, row["version"])
    for row in doomed:
        if row["path"]:
            shutil.rmtree(row["path"], ignore_errors=True)
    return report


def _size(path: Path | None) -> int:
    if path is None or not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
