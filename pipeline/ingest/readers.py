"""One reader per transcript format. Each yields `Turn`s (speaker, text, times, metadata).

Readers stream their file and raise `CultureCodeError` naming the file and line. VTT and SRT
are parsed here rather than with webvtt-py/srt because users need the line number of a broken
cue, and those libraries only report that parsing failed.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import CsvColumns
from pipeline.errors import CultureCodeError
from pipeline.ingest.text import iter_lines
from pipeline.jsontext import loads


@dataclass
class Turn:
    text: str
    speaker: str | None = None
    start: float | None = None
    end: float | None = None
    line: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReadContext:
    path: Path
    encoding: str
    csv: CsvColumns
    skip_bad: bool = False
    skipped: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def fail(self, line: int, message: str) -> CultureCodeError:
        return CultureCodeError(f"{self.path}:{line}: {message}")


SPEAKER_LINE = re.compile(r"^\s*([A-Za-z][\w .'’()-]{0,39}?)\s*:\s+(\S.*)$")
HEADER_LINE = re.compile(r"^#\s*([\w-]+)\s*:\s*(.*)$")
TIMESTAMP = r"(?:(\d{1,3}):)?(\d{2}):(\d{2})[.,](\d{3})"
CUE_TIMING = re.compile(rf"^\s*{TIMESTAMP}\s+-->\s+{TIMESTAMP}(?:\s.*)?$")
VOICE_TAG = re.compile(r"^<v(?:\.[\w.]+)?\s+([^>]+)>(.*)$", re.DOTALL)
TAG = re.compile(r"</?[^>]+>")


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


# --------------------------------------------------------------------------- plain text


def _split_speaker(line: str) -> tuple[str | None, str]:
    match = SPEAKER_LINE.match(line)
    if match and not match.group(1).strip().lower().startswith(("http", "https")):
        return match.group(1).strip(), match.group(2).strip()
    return None, line.strip()


def _is_speaker_transcript(lines: list[str]) -> bool:
    body = [ln for ln in lines if ln.strip() and not HEADER_LINE.match(ln)]
    if not body:
        return False
    return sum(1 for ln in body if SPEAKER_LINE.match(ln)) >= 0.5 * len(body)


def turns_from_lines(lines: Iterator[tuple[int, str]], ctx: ReadContext, sample: int = 200) -> Iterator[Turn]:
    """Speaker-turn lines (`OM2: ...`, continuation lines join the turn) or field-note paragraphs."""
    buffered: list[tuple[int, str]] = []
    for item in lines:
        buffered.append(item)
        if len(buffered) >= sample:
            break
    speaker_mode = _is_speaker_transcript([text for _, text in buffered])
    stream = itertools.chain(buffered, lines)
    yield from (_speaker_turns(stream, ctx) if speaker_mode else _paragraphs(stream, ctx))


def _read_header(stream: Iterator[tuple[int, str]], ctx: ReadContext) -> Iterator[tuple[int, str]]:
    in_header = True
    for number, line in stream:
        if in_header:
            match = HEADER_LINE.match(line)
            if match:
                ctx.metadata[match.group(1)] = match.group(2).strip()
                continue
            if line.strip():
                in_header = False
        yield number, line


def _speaker_turns(stream: Iterator[tuple[int, str]], ctx: ReadContext) -> Iterator[Turn]:
    current: Turn | None = None
    for number, line in _read_header(stream, ctx):
        if not line.strip():
            continue
        speaker, text = _split_speaker(line)
        if speaker is None and current is not None:
            current.text += " " + text
            continue
        if current is not None:
            yield current
        current = Turn(text=text, speaker=speaker, line=number)
    if current is not None:
        yield current


def _paragraphs(stream: Iterator[tuple[int, str]], ctx: ReadContext) -> Iterator[Turn]:
    parts: list[str] = []
    start_line = 0
    for number, line in _read_header(stream, ctx):
        if line.strip():
            if not parts:
                start_line = number
            parts.append(line.strip())
        elif parts:
            yield Turn(text=" ".join(parts), line=start_line)
            parts = []
    if parts:
        yield Turn(text=" ".join(parts), line=start_line)


def read_txt(ctx: ReadContext) -> Iterator[Turn]:
    yield from turns_from_lines(iter_lines(ctx.path, ctx.encoding), ctx)


def read_docx(ctx: ReadContext) -> Iterator[Turn]:
    import docx  # python-docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(ctx.path))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise CultureCodeError(
            f"{ctx.path}: not a readable .docx file ({type(exc).__name__}); re-save it from Word"
        ) from None
    paragraphs = ((i, p.text) for i, p in enumerate(document.paragraphs, start=1))
    yield from turns_from_lines(paragraphs, ctx)


# --------------------------------------------------------------------------- subtitles


def _cues(ctx: ReadContext, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, float, float, list[str]]]:
    """(line, start, end, text lines) for every cue; checks timestamps and their order."""
    timing: tuple[int, float, float] | None = None
    text: list[str] = []
    previous_start = -1.0
    for number, line in lines:
        if "-->" in line:
            match = CUE_TIMING.match(line)
            if not match:
                raise ctx.fail(
                    number, f"broken cue timestamp '{line.strip()}' (expected 00:00:01.000 --> 00:00:04.000)"
                )
            start, end = _seconds(*match.groups()[:4]), _seconds(*match.groups()[4:8])
            if end < start:
                raise ctx.fail(number, "cue ends before it starts")
            if start < previous_start:
                raise ctx.fail(number, "cue is out of order (starts before the previous cue)")
            previous_start = start
            if timing and text:
                yield timing[0], timing[1], timing[2], text
            timing, text = (number, start, end), []
        elif not line.strip():
            if timing and text:
                yield timing[0], timing[1], timing[2], text
            timing, text = None, []
        elif timing is not None:
            text.append(line.strip())
    if timing and text:
        yield timing[0], timing[1], timing[2], text


def read_vtt(ctx: ReadContext) -> Iterator[Turn]:
    lines = iter_lines(ctx.path, ctx.encoding)
    first = next(lines, (1, ""))
    if not first[1].lstrip("\ufeff").startswith("WEBVTT"):
        raise ctx.fail(first[0], "a WebVTT file must start with 'WEBVTT'")
    body = _skip_vtt_blocks(lines)
    for number, start, end, text in _cues(ctx, body):
        joined = " ".join(text)
        match = VOICE_TAG.match(joined)
        speaker = match.group(1).strip() if match else None
        content = TAG.sub("", match.group(2) if match else joined).strip()
        if speaker is None:
            speaker, content = _split_speaker(content)
        yield Turn(text=content, speaker=speaker, start=start, end=end, line=number)


def _skip_vtt_blocks(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Drop NOTE, STYLE and REGION blocks, which are not speech."""
    skipping = False
    for number, line in lines:
        if line.startswith(("NOTE", "STYLE", "REGION")):
            skipping = True
        if skipping:
            if not line.strip():
                skipping = False
            continue
        yield number, line


def read_srt(ctx: ReadContext) -> Iterator[Turn]:
    found = False
    for number, start, end, text in _cues(ctx, iter_lines(ctx.path, ctx.encoding)):
        found = True
        content = TAG.sub("", " ".join(text)).strip()
        speaker, content = _split_speaker(content)
        yield Turn(text=content, speaker=speaker, start=start, end=end, line=number)
    if not found:
        raise ctx.fail(1, "no subtitle cues found (expected '00:00:01,000 --> 00:00:04,000' lines)")


# --------------------------------------------------------------------------- tables


def _time_value(raw: Any, ctx: ReadContext, line: int, column: str) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    text = str(raw).strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = re.fullmatch(r"(?:(\d+):)?(\d{1,2}):(\d{2})(?:[.,](\d{1,3}))?", text)
    if not match:
        raise ctx.fail(line, f"column '{column}' has '{text}', not a time (seconds or hh:mm:ss)")
    h, m, s, ms = match.groups()
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int((ms or "0").ljust(3, "0")) / 1000


def read_table(ctx: ReadContext) -> Iterator[Turn]:
    cols = ctx.csv
    delimiter = cols.delimiter or ("\t" if ctx.path.suffix.lower() == ".tsv" else ",")
    with ctx.path.open("r", encoding=ctx.encoding, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = reader.fieldnames or []
        if cols.text_column not in header:
            raise ctx.fail(
                1,
                f"no '{cols.text_column}' column (found: {', '.join(header) or 'none'}); "
                f"set ingest.csv.text_column or pass --text-column",
            )
        known = {cols.text_column, cols.speaker_column, cols.start_column, cols.end_column}
        try:
            for row in reader:
                line = reader.line_num
                text = (row.get(cols.text_column) or "").strip()
                if not text:
                    continue
                speaker = (row.get(cols.speaker_column) or "").strip() or None if cols.speaker_column else None
                meta = {k: v for k, v in row.items() if k not in known and k is not None and v not in (None, "")}
                yield Turn(
                    text=text,
                    speaker=speaker,
                    line=line,
                    metadata=meta,
                    start=_time_value(row.get(cols.start_column), ctx, line, cols.start_column or ""),
                    end=_time_value(row.get(cols.end_column), ctx, line, cols.end_column or ""),
                )
        except csv.Error as exc:
            raise ctx.fail(reader.line_num, f"broken CSV ({exc})") from None


def read_jsonl(ctx: ReadContext) -> Iterator[Turn]:
    for number, line in iter_lines(ctx.path, ctx.encoding):
        if not line.strip():
            continue
        try:
            turn = _jsonl_turn(loads(line), ctx, number)
        except (json.JSONDecodeError, CultureCodeError) as exc:
            reason = (
                f"not valid JSON ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else str(exc).split(": ", 1)[-1]
            )
            if ctx.skip_bad:
                ctx.skipped.append(f"{ctx.path}:{number}: {reason}")
                continue
            raise ctx.fail(number, f"{reason}; fix the line or rerun with --skip-bad") from None
        if turn is not None:
            yield turn


def _jsonl_turn(obj: Any, ctx: ReadContext, number: int) -> Turn | None:
    if not isinstance(obj, dict):
        raise ctx.fail(number, "each line must be a JSON object")
    text = obj.get("text")
    if not isinstance(text, str):
        raise ctx.fail(number, "missing a string 'text' field")
    if not text.strip():
        return None
    meta = obj.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    extra = {k: v for k, v in obj.items() if k not in {"text", "speaker", "start", "end", "meta"}}
    speaker = obj.get("speaker")
    return Turn(
        text=text.strip(),
        speaker=str(speaker).strip() if speaker not in (None, "") else None,
        start=_time_value(obj.get("start"), ctx, number, "start"),
        end=_time_value(obj.get("end"), ctx, number, "end"),
        line=number,
        metadata={**extra, **meta},
    )


READERS: dict[str, Callable[[ReadContext], Iterator[Turn]]] = {
    ".txt": read_txt,
    ".md": read_txt,
    ".vtt": read_vtt,
    ".srt": read_srt,
    ".csv": read_table,
    ".tsv": read_table,
    ".jsonl": read_jsonl,
    ".docx": read_docx,
}
TEXT_FORMATS = {ext for ext in READERS if ext != ".docx"}
