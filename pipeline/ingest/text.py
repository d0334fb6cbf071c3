"""Reading users' files as text: transcripts (encoding detection, binary and empty files) and the
UTF-8 files every other command reads (gold JSONL, agreement CSV/JSONL, name lists): `read_lines`.

Files are checked in one streaming pass (hash + UTF-8 validation) so a 100 MB transcript never
sits in memory; only non-UTF-8 transcripts get a charset guess from a sample. Every problem is a
one-line `CultureCodeError` naming the file, and the line where there is one.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from charset_normalizer import from_bytes

from pipeline.errors import CultureCodeError

CHUNK = 1 << 20
# encodings we accept from detection: what transcription tools and Word/Excel commonly write
ACCEPTED_GUESSES = ("cp1252", "latin_1", "iso8859_15", "utf_16", "utf_16_le", "utf_16_be", "mac_roman")


def _looks_binary(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    return b"\x00" in head[:8192]


def inspect_file(path: Path, salt: str = "") -> tuple[str, str]:
    """Return (encoding, content hash) of a text file, or raise a one-line error."""
    digest = hashlib.sha256(salt.encode())
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    utf8_ok = True
    size = 0
    with path.open("rb") as fh:
        head = fh.read(CHUNK)
        if not head.strip():
            raise CultureCodeError(f"{path}: the file is empty; remove it or add the transcript text")
        if _looks_binary(head):
            raise CultureCodeError(f"{path}: looks like a binary file, not a transcript; export it as text first")
        chunk = head
        while chunk:
            size += len(chunk)
            digest.update(chunk)
            if utf8_ok:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8_ok = False
            chunk = fh.read(CHUNK)
    if utf8_ok:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8_ok = False
    encoding = "utf-8-sig" if utf8_ok else _guess_encoding(path, head)
    return encoding, digest.hexdigest()[:20]


def _guess_encoding(path: Path, head: bytes) -> str:
    # short English texts fit many single-byte code pages equally well: among the least chaotic
    # readings, take the first encoding that transcription tools and Office actually write
    matches = list(from_bytes(head))
    least = min((m.chaos for m in matches), default=1.0)
    plausible = {m.encoding for m in matches if m.chaos <= least + 0.01}
    guess = next((enc for enc in ACCEPTED_GUESSES if enc in plausible), None)
    if guess is None:
        raise CultureCodeError(f"{path}: not UTF-8 text and the encoding could not be recognised; save it as UTF-8")
    try:
        with path.open("r", encoding=guess, newline="") as fh:
            for _ in iter(lambda: fh.read(CHUNK), ""):
                pass
    except UnicodeDecodeError:
        raise CultureCodeError(f"{path}: not valid {guess} or UTF-8 text; save it as UTF-8") from None
    return guess


def iter_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, line without newline), streamed."""
    with path.open("r", encoding=encoding, newline=None) as fh:
        for number, line in enumerate(fh, start=1):
            yield number, line.rstrip("\r\n")


def open_bytes(path: Path, what: str) -> BinaryIO:
    """`path` opened for reading bytes; a missing file, a folder or an unreadable file is a one-line error."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise CultureCodeError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise CultureCodeError(f"{path}: is a folder; give the {what} itself") from None
    except OSError as exc:
        raise CultureCodeError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def read_lines(path: Path, what: str, keep_ends: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file (a leading BOM dropped), streamed.

    A binary file, or a line that is not UTF-8, is a one-line error naming the file and the line:
    gold files, agreement inputs and name lists come from spreadsheets and editors that may
    save Latin-1, and a wrong file picked by mistake must not end in a traceback.
    """
    with open_bytes(path, what) as fh:
        if _looks_binary(fh.read(8192)):
            raise CultureCodeError(f"{path}: looks like a binary file, not a {what}; give a UTF-8 text file")
        fh.seek(0)
        for number, raw in enumerate(fh, start=1):
            yield number, _decode_line(path, number, raw, keep_ends)


def _decode_line(path: Path, number: int, raw: bytes, keep_ends: bool) -> str:
    try:
        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise CultureCodeError(
            f"{path}:{number}: not UTF-8 text (byte {raw[exc.start]:#04x} at position {exc.start + 1} of the line); "
            f"save the file as UTF-8 (in Excel: CSV UTF-8)"
        ) from None
    return line if keep_ends else line.rstrip("\r\n")
