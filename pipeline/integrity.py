"""Content hashes of weight files, so that what is loaded is what was pinned; and secrets read only from files that
no one else can read."""

from __future__ import annotations

import hashlib
import stat
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


def read_private(path: Path, what: str, when_empty: str) -> str:
    """The stripped text of the secret file `path` (an API key, a shared secret), refused when others may read it
    (any group or other permission bit) or when it is empty; `what` names it, `when_empty` says what to do then."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CultureCodeError(f"{what} {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise CultureCodeError(f"{what} {path} is empty; {when_empty}")
    return value
