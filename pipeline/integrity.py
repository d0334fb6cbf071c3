"""Content hashes of weight files, so that what is loaded is what was pinned."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.errors import CultureCodeError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_pinned(path: Path, expected: str, remedy: str) -> str:
    """`path`'s SHA-256 when it equals `expected`; otherwise refuse it (it is never loaded)."""
    actual = sha256_file(path)
    if actual != expected:
        raise CultureCodeError(
            f"{path} has SHA-256 {actual[:16]}..., not the pinned {expected[:16]}...; it was not loaded. {remedy}"
        )
    return actual
