"""Codebook versions: what changed between two of them, the history of a workspace's codebook, and agreement
split by the codebook version each annotation was made with (when there is more than one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.config import Codebook
from pipeline.store import Store
from pipeline.store.codebooks import annotation_codebook_hashes, codebook_versions

CODE_FIELDS = ("name", "definition", "include", "exclude", "examples", "hint")


@dataclass
class CodebookDiff:
    """What changed between two codebook versions, by code id."""

    old_hash: str
    new_hash: str
    old_version: str
    new_version: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # code -> the fields that differ

    @property
    def same(self) -> bool:
        return self.old_hash == self.new_hash

    def describe(self) -> str:
        parts = [f"added {', '.join(self.added)}"] if self.added else []
        parts += [f"removed {', '.join(self.removed)}"] if self.removed else []
        parts += [f"changed {c} ({', '.join(f)})" for c, f in self.changed.items()]
        return "; ".join(parts) or "no code changed (codebook fields only)"


def codebook_diff(old: Codebook, new: Codebook) -> CodebookDiff:
    before = {c.id: c for c in old.codes}
    after = {c.id: c for c in new.codes}
    changed = {
        cid: fields
        for cid in after
        if cid in before and (fields := [f for f in CODE_FIELDS if getattr(before[cid], f) != getattr(after[cid], f)])
    }
    return CodebookDiff(
        old.content_hash,
        new.content_hash,
        old.version,
        new.version,
        added=[c for c in after if c not in before],
        removed=[c for c in before if c not in after],
        changed=changed,
    )


def parse_codebook(text: str) -> Codebook:
    """A stored version's text (YAML, or the JSON older workspaces kept, which YAML reads too)."""
    from pipeline.config import load_yaml

    return Codebook.model_validate(load_yaml(text))


def codebook_history(store: Store) -> list[dict[str, Any]]:
    """Every recorded codebook version, oldest first, with the codes added, removed and changed since the one
    before it."""
    history: list[dict[str, Any]] = []
    previous: Codebook | None = None
    for entry in codebook_versions(store):
        book = parse_codebook(entry.yaml)
        row: dict[str, Any] = {"hash": entry.hash, "version": entry.version, "first_seen": entry.first_seen}
        row["codes"] = len(book.codes)
        diff = codebook_diff(previous, book) if previous is not None else None
        row.update(
            added=diff.added if diff else [],
            removed=diff.removed if diff else [],
            changed=diff.changed if diff else {},
            summary=diff.describe() if diff else "first version",
        )
        history.append(row)
        previous = book
    return history


def agreement_by_version(
    store: Store,
    codebook: Codebook,
    codes: list[str] | None,
    filters: dict[str, Any],
    bootstrap: int,
    seed: int,
) -> list[dict[str, Any]] | None:
    """Per codebook version the annotations were made with, each code's alpha with its CI; None when every
    annotation was made with one version. A version not in the history is read with the current codebook."""
    from pipeline.agreement import coefficients as co
    from pipeline.agreement.ratings import from_records, store_records
    from pipeline.agreement.report import per_code

    counts = annotation_codebook_hashes(store)
    if len(counts) < 2:
        return None
    known = {v.hash: v for v in codebook_versions(store)}
    order = sorted(counts, key=lambda h: (known[h].first_seen if h in known else "~", h))
    out = []
    for digest in order:
        book = parse_codebook(known[digest].yaml) if digest in known else codebook
        records = store_records(store, book, codebook_hash=digest, **filters)
        row: dict[str, Any] = {"hash": digest, "version": known[digest].version if digest in known else "?"}
        row.update(annotations=counts[digest], n_items=len({r.item for r in records}), codes={})
        if records:
            ratings = from_records(records, book.code_ids, book.single_choice, {c.id: c.name for c in book.codes})
            shown = [c for c in (codes or ratings.codes) if c in ratings.codes]
            weights = co.bootstrap_weights(ratings.n_items, bootstrap, seed)
            for code, stats in per_code(ratings, shown, weights).items():
                row["codes"][code] = _brief(stats)
        out.append(row)
    return out


def _brief(stats: dict[str, Any]) -> dict[str, Any]:
    alpha = stats["krippendorff_alpha"]
    return {
        "krippendorff_alpha": None if alpha is None or not np.isfinite(alpha) else alpha,
        "krippendorff_alpha_ci": stats["krippendorff_alpha_ci"],
        "n_pairable_units": stats["n_pairable_units"],
        "prevalence": stats["prevalence"],
    }
