"""Turns become segments: long turns are split at sentence boundaries and packed back together
up to the maximum length. Sentences come from sentencex (rule-based, ~300 languages, no model
download); pysbd gave the same splits on our transcripts but was ~500x slower."""

from __future__ import annotations

import hashlib

from sentencex import segment as sentences_of


def normalise(text: str) -> str:
    return " ".join(text.split())


def split_turn(text: str, max_chars: int, language: str = "en") -> list[str]:
    """Pieces of at most `max_chars`, cut between sentences where possible."""
    text = normalise(text)
    if len(text) <= max_chars:
        return [text] if text else []
    sentences = [s.strip() for s in sentences_of(language, text) if s.strip()]
    pieces: list[str] = []
    current = ""
    for sentence in sentences:
        for part in _hard_wrap(sentence, max_chars):
            if current and len(current) + 1 + len(part) > max_chars:
                pieces.append(current)
                current = part
            else:
                current = f"{current} {part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _hard_wrap(sentence: str, max_chars: int) -> list[str]:
    """A single sentence longer than the limit is cut at the last space before it."""
    parts = []
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars + 1)
        cut = cut if cut > 0 else max_chars
        parts.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        parts.append(sentence)
    return parts


def segment_id(document_id: str, speaker: str | None, text: str, occurrence: int) -> str:
    """Stable content hash: the same turn in the same document keeps its ID across reruns
    and when other turns are inserted before it."""
    key = "\x1f".join([document_id, speaker or "", text, str(occurrence)])
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
