"""Codebook versions: every codebook a workspace has labelled with, by content hash, with its text (YAML) and when
it was first seen (a migration), so that `recode` and the appendix keep the history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import CultureCodeError
from pipeline.store.annotations import LIVE, count_annotations
from pipeline.store.db import ACTIVE, Store, codebook_yaml, record_codebook_version
from pipeline.store.predictions import count_predictions

__all__ = [
    "CodebookVersion",
    "adopt_codebook",
    "annotation_codebook_hashes",
    "codebook_version",
    "codebook_versions",
    "codebook_yaml",
    "record_codebook_version",
]


@dataclass(frozen=True)
class CodebookVersion:
    hash: str
    version: str
    yaml: str
    first_seen: str


def codebook_versions(store: Store) -> list[CodebookVersion]:
    """Every recorded codebook version, oldest first."""
    rows = store.conn.execute("SELECT hash, version, yaml, first_seen FROM codebook_versions ORDER BY first_seen, hash")
    return [CodebookVersion(*r) for r in rows]


def codebook_version(store: Store, digest: str) -> CodebookVersion | None:
    row = store.conn.execute(
        "SELECT hash, version, yaml, first_seen FROM codebook_versions WHERE hash = ?", (digest,)
    ).fetchone()
    return CodebookVersion(*row) if row else None


def annotation_codebook_hashes(store: Store) -> dict[str, int]:
    """{codebook hash: kept annotations of annotation projects on active segments made with it}."""
    rows = store.conn.execute(
        f"SELECT a.codebook_hash, COUNT(*) FROM annotations a JOIN segments s ON s.id = a.segment_id "
        f"WHERE s.{ACTIVE} AND {LIVE} GROUP BY a.codebook_hash ORDER BY a.codebook_hash"
    )
    return {r[0]: r[1] for r in rows}


def adopt_codebook(store: Store, codebook: Any) -> None:
    """Make `codebook` the workspace's (recorded in its own transaction); a different one is refused once anything
    has been labelled with the old (annotations or predictions): that is `culturecode recode`'s work."""
    stored = store.codebook_hash
    if stored == codebook.content_hash:
        return
    if stored is not None and count_annotations(store) + count_predictions(store) > 0:
        raise CultureCodeError(
            f"the codebook differs from the one this workspace was labelled with ({stored}); "
            f"use the original codebook or a new workspace"
        )
    with store.transaction():
        store.record_codebook(codebook)
