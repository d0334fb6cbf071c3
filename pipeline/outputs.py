"""Writing where the user said (`--out`): check the folder before any work, write files whole or not at all.

A bad `--out` (an existing file, a path under a file, a read-only folder) is a one-line error before
anything is computed or recorded; a write that fails half-way (disk full) leaves no partial file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import CultureCodeError


def _cannot(path: Path, what: str, exc: OSError) -> CultureCodeError:
    reason = exc.strerror or type(exc).__name__
    return CultureCodeError(f"{path}: cannot write the {what} there ({reason}); choose another --out folder")


def writable_folder(path: str | Path, what: str) -> Path:
    """`path` as a folder that files can be written in (created with its parents if missing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CultureCodeError(f"{path}: is a file, not a folder; choose another --out folder for the {what}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise _cannot(path, what, exc) from None
    return path


def write_text(path: Path, text: str, what: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder: the old file or the new, never half."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise _cannot(path.parent, what, exc) from None


@contextmanager
def staged_folder(out: Path, what: str) -> Iterator[Path]:
    """A temporary folder inside `out` to write into; on success its entries replace those of the same name in
    `out`, on any failure it is removed and `out` keeps what it had."""
    try:
        stage = Path(tempfile.mkdtemp(dir=out, prefix=".partial-"))
    except OSError as exc:
        raise _cannot(out, what, exc) from None
    try:
        yield stage
        for entry in sorted(stage.iterdir()):
            target = out / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    except OSError as exc:
        raise _cannot(out, what, exc) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
