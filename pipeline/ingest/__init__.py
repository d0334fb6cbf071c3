"""Ingest: transcripts on disk -> documents and segments in the workspace store.

`ingest(...)` is the library entry point; the whole call is one transaction, so a bad file or
a killed run leaves the workspace as it was.

`--replace` never drops people's work: a segment that vanished from the new text while it held
annotations, gold or Label Studio tasks is kept as superseded, and when the new text has a turn
alike enough (an edited line), its annotations and gold are carried over to it (see carry.py).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.config import IngestSettings
from pipeline.errors import CultureCodeError
from pipeline.ingest.carry import Successor, match_successors
from pipeline.ingest.pseudonymise import MAPPING_FILE, Pseudonymiser, read_names_file
from pipeline.ingest.readers import READERS, ReadContext, Turn
from pipeline.ingest.segmenter import segment_id, split_turn
from pipeline.ingest.text import inspect_file
from pipeline.progress import progress_bar
from pipeline.store import Document, Segment, Store
from pipeline.store.annotations import carry_annotations
from pipeline.store.gold import carry_gold
from pipeline.store.segments import count_segments, set_document_metadata, set_successor, superseded_segments

__all__ = ["IngestReport", "SupersededNote", "find_transcripts", "ingest"]


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # changed on disk, kept as stored (no --replace)
    segments_added: int = 0
    segments_total: int = 0
    segments_deleted: int = 0  # vanished from a replaced document, with no work on them
    # vanished segments kept for the annotations, gold or Label Studio tasks on them (see SupersededNote)
    superseded: list[SupersededNote] = field(default_factory=list)
    skipped_lines: list[str] = field(default_factory=list)

    @property
    def carried_over(self) -> int:
        return sum(1 for s in self.superseded if s.carried_to)

    def as_dict(self) -> dict:
        data = self.__dict__.copy()
        data["superseded"] = [asdict(s) for s in self.superseded]
        return data


@dataclass
class SupersededNote:
    """A segment that left its document on a replace, kept for the work on it."""

    document: str
    segment_id: str
    former_position: int | None
    text: str
    annotations: int  # every annotation row on it (skipped and deleted ones too)
    gold: int
    tasks: int
    carried_to: str | None = None  # the edited segment its annotations and gold were copied to
    similarity: float | None = None


def find_transcripts(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders into transcript files; unknown extensions given by name are an error."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in READERS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise CultureCodeError(f"{path}: no transcripts found (looked for {', '.join(sorted(READERS))})")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in READERS:
                raise CultureCodeError(
                    f"{path}: unknown file type '{path.suffix or '(none)'}'; culturecode reads "
                    f"{', '.join(sorted(READERS))}"
                )
            files.append(path)
        else:
            raise CultureCodeError(f"{path}: no such file or folder")
    _check_unique_names(files)
    return files


def _check_unique_names(files: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in files:
        doc_id = document_id(path)
        if doc_id in seen and seen[doc_id].resolve() != path.resolve():
            raise CultureCodeError(
                f"{path}: document name '{doc_id}' is also used by {seen[doc_id]}; "
                f"rename one of them (document names are file names without extension)"
            )
        seen[doc_id] = path


def document_id(path: Path) -> str:
    return path.stem


def ingest(
    store: Store,
    paths: Iterable[str | Path],
    settings: IngestSettings | None = None,
    replace: bool = False,
    show_progress: bool = True,
) -> IngestReport:
    """Read transcripts into `store`; idempotent (same files twice add nothing)."""
    settings = settings or IngestSettings()
    files = find_transcripts(paths)
    report = IngestReport()
    pseudo = _pseudonymiser(store, settings)
    salt = f"max={settings.max_segment_chars};lang={settings.language};pseudo={settings.pseudonymise}"
    if replace and files:
        store.back_up_now()  # a replace rewrites documents people worked on: restore goes back to just before it
    # the run row is part of the one transaction: a bad file leaves the database byte-identical
    with store.transaction(), store.run("ingest", {"paths": [str(p) for p in paths], "replace": replace}) as summary:
        with progress_bar("ingest", total=len(files), enabled=show_progress) as bar:
            for path in files:
                _ingest_file(store, path, settings, salt, replace, pseudo, report)
                bar.advance()
            if pseudo is not None:
                pseudo.save()
        report.segments_total = count_segments(store)
        summary.update({k: len(v) if isinstance(v, list) else v for k, v in report.as_dict().items()})
        summary["carried_over"] = report.carried_over
    return report


def _pseudonymiser(store: Store, settings: IngestSettings) -> Pseudonymiser | None:
    if not settings.pseudonymise:
        return None
    names = read_names_file(Path(settings.names_file)) if settings.names_file else []
    return Pseudonymiser(store.workspace / MAPPING_FILE, names)


def _ingest_file(
    store: Store,
    path: Path,
    settings: IngestSettings,
    salt: str,
    replace: bool,
    pseudo: Pseudonymiser | None,
    report: IngestReport,
) -> None:
    doc_id = document_id(path)
    if path.suffix.lower() == ".docx":
        encoding, content_hash = "binary", inspect_docx(path, salt)
    else:
        encoding, content_hash = inspect_file(path, salt)
    existing = store.document(doc_id)
    if existing and existing.content_hash == content_hash:
        report.unchanged.append(doc_id)
        return
    if existing and not replace:
        report.changed.append(doc_id)
        return
    ctx = ReadContext(path=path, encoding=encoding, csv=settings.csv, skip_bad=settings.skip_bad)
    if pseudo is not None:  # a first pass learns the speakers so early mentions are replaced too
        probe = ReadContext(path=path, encoding=encoding, csv=settings.csv, skip_bad=True)
        pseudo.learn_speakers(turn.speaker for turn in READERS[path.suffix.lower()](probe))
    # streamed into the store: a 100 MB transcript never sits in memory (only a replace reads the old turns)
    segments = _Counted(_segments(doc_id, READERS[path.suffix.lower()](ctx), settings, pseudo))
    before = store.segments(doc_id) if existing else []
    doc = Document(
        id=doc_id,
        source_path=str(path),
        format=path.suffix.lower().lstrip("."),
        content_hash=content_hash,
        metadata=ctx.metadata,
    )
    update = store.put_document(doc, segments)
    if segments.count == 0:
        raise CultureCodeError(f"{path}: no text found in the transcript; check its format")
    report.segments_added += update.added
    report.segments_deleted += update.deleted
    if update.superseded:
        after = store.segments(doc_id)
        matches = match_successors(before, after, update.superseded, settings.carry_over_similarity)
        report.superseded.extend(_carry_over(store, update.superseded, matches))
    if ctx.metadata:  # header metadata is only known once the file has been read
        set_document_metadata(store, doc_id, ctx.metadata)
    report.skipped_lines.extend(ctx.skipped)
    (report.replaced if existing else report.added).append(doc_id)


class _Counted:
    def __init__(self, items: Iterator[Segment]):
        self.items, self.count = items, 0

    def __iter__(self) -> Iterator[Segment]:
        for item in self.items:
            self.count += 1
            yield item


def _carry_over(store: Store, superseded: list[str], matches: dict[str, Successor]) -> list[SupersededNote]:
    """Copy the annotations and gold of each superseded segment that has a successor onto it."""
    for old_id, successor in matches.items():
        carry_annotations(store, old_id, successor.segment_id)
        carry_gold(store, old_id, successor.segment_id)
        set_successor(store, old_id, successor.segment_id)
    return [
        SupersededNote(
            s.document_id,
            s.id,
            s.former_position,
            s.text,
            s.annotations,
            s.gold,
            s.tasks,
            s.carried_to,
            matches[s.id].similarity if s.id in matches else None,
        )
        for s in superseded_segments(store, ids=superseded)
    ]


def inspect_docx(path: Path, salt: str) -> str:
    if not zipfile.is_zipfile(path):
        raise CultureCodeError(f"{path}: not a readable .docx file; re-save it from Word")
    digest = hashlib.sha256(salt.encode())
    digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def _segments(
    doc_id: str, turns: Iterator[Turn], settings: IngestSettings, pseudo: Pseudonymiser | None
) -> Iterator[Segment]:
    occurrences: Counter[bytes] = Counter()
    position = 0
    for turn in turns:
        speaker = pseudo.speaker(turn.speaker) if pseudo else turn.speaker
        text = pseudo.text(turn.text) if pseudo else turn.text
        pieces = split_turn(text, settings.max_segment_chars, settings.language)
        for index, piece in enumerate(pieces):
            key = hashlib.blake2b(f"{speaker}\x1f{piece}".encode(), digest_size=8).digest()
            seg_id = segment_id(doc_id, speaker, piece, occurrences[key])
            occurrences[key] += 1
            meta = dict(turn.metadata)
            meta["line"] = turn.line
            if len(pieces) > 1:
                meta["part"] = f"{index + 1}/{len(pieces)}"
            yield Segment(
                id=seg_id,
                document_id=doc_id,
                position=position,
                text=piece,
                speaker=speaker,
                start_time=turn.start,
                end_time=turn.end,
                metadata=meta,
            )
            position += 1
