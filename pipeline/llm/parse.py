"""Structured output: the model's answer must be one JSON object validated against the codebook.

    {"codes": ["id", ...], "confidence": {"id": 0.0-1.0, ...},
     "evidence": {"id": "a short quote from the segment", ...}, "rationale": "one sentence"}

Checked against the segment (`SourceText`) as well: every chosen code needs an evidence quote that
occurs in the segment (compared case-, whitespace-, quote- and dash-insensitively; "..." may skip
words), and a rationale that only repeats the segment or a neighbouring turn is refused.
Anything else raises `AnswerError` with a reason a repair prompt can quote back to the model.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Codebook


class AnswerError(ValueError):
    """The model's answer cannot be used; the message says why (shown to the model on repair)."""


MAX_EVIDENCE_WORDS = 40  # a longer "quote" is the segment again, not the words that show the code
# a rationale repeats a text rather than explaining it when this share of its words lie in word
# triples found there, or when it copies this many words in a row (the quote belongs in `evidence`)
COPIED_SHARE = 0.6
COPIED_RUN = 6


@dataclass
class LlmLabel:
    codes: list[str]
    scores: dict[str, float]
    rationale: str
    evidence: dict[str, str] = field(default_factory=dict)

    def shown_rationale(self) -> str:
        """The rationale with each chosen code's evidence quote, as annotators see it."""
        quotes = "; ".join(f'{c}: "{self.evidence[c]}"' for c in self.codes if c in self.evidence)
        return f"{self.rationale} Evidence: {quotes}" if quotes else self.rationale


@dataclass(frozen=True)
class SourceText:
    """What an answer is checked against: the segment, the turns around it, and the instructions
    (the system prompt: a rationale that recites the answer format or a definition says nothing)."""

    segment: str
    context: tuple[str, ...] = ()
    instructions: str = ""


def answer_schema(codebook: Codebook) -> dict[str, Any]:
    """JSON schema of a valid answer, for backends that support constrained decoding."""
    ids = codebook.code_ids
    return {
        "type": "object",
        "properties": {
            "codes": {
                "type": "array",
                "items": {"type": "string", "enum": ids},
                "uniqueItems": True,
                **({"maxItems": 1} if codebook.single_choice else {}),
            },
            "confidence": {
                "type": "object",
                "properties": {c: {"type": "number", "minimum": 0, "maximum": 1} for c in ids},
                "additionalProperties": False,
            },
            "evidence": {
                "type": "object",
                "properties": {c: {"type": "string", "maxLength": 300} for c in ids},
                "additionalProperties": False,
            },
            "rationale": {"type": "string"},
        },
        "required": ["codes", "confidence", "evidence", "rationale"],
        "additionalProperties": False,
    }


def _json_object(text: str) -> dict[str, Any]:
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1).strip()
    start = text.find("{")
    if start < 0:
        raise AnswerError("the answer contains no JSON object")
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise AnswerError(f"the answer is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(obj, dict):
        raise AnswerError("the answer must be a JSON object")
    return obj


def _confidence(raw: Any, codes: list[str]) -> dict[str, float]:
    if raw is None:
        raise AnswerError("the field 'confidence' is missing")
    if not isinstance(raw, dict):
        raise AnswerError("'confidence' must be an object mapping code ids to numbers")
    scores: dict[str, float] = {}
    for code in codes:
        value = raw.get(code)
        if value is None:
            raise AnswerError(f"'confidence' has no number for the chosen code '{code}'")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise AnswerError(f"confidence of '{code}' must be a number from 0 to 1, not {value!r}")
        scores[code] = float(value)
    return scores


def _other_scores(raw: Any, codebook: Codebook) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    return {
        c: float(v)
        for c, v in raw.items()
        if c in codebook.code_ids and isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
    }


def normalise(text: str) -> str:
    """Text as compared for quotes: NFKC, one kind of quote and dash, lower case, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[\u2018\u2019\u201a\u201b\u2032\u00b4`]", "'", text)
    text = re.sub(r"[\u201c\u201d\u201e\u201f\u2033]", '"', text)
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    return " ".join(text.split())


def quote_occurs(quote: str, segment: str) -> bool:
    """Whether `quote` is in `segment` after `normalise`; "..." between parts may skip words."""
    haystack, at = normalise(segment), 0
    parts = [p.strip(" \"'.,;:") for p in re.split(r"\.\.\.|\u2026", normalise(quote))]
    parts = [p for p in parts if p]
    if not parts:
        return False
    for part in parts:
        found = haystack.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def _evidence(raw: Any, codes: list[str], source: SourceText | None) -> dict[str, str]:
    if codes and not isinstance(raw, dict):
        raise AnswerError("'evidence' must be an object giving, for each chosen code, a short quote from the segment")
    found: dict[str, str] = {}
    for code in codes:
        quote = raw.get(code)
        if not isinstance(quote, str) or not quote.strip():
            raise AnswerError(f"'evidence' has no quote for the chosen code '{code}'")
        quote = " ".join(quote.split())
        if len(quote.split()) > MAX_EVIDENCE_WORDS:
            raise AnswerError(f"the evidence for '{code}' is too long; quote only the words that show the code")
        if source is not None and not quote_occurs(quote, source.segment):
            raise AnswerError(
                f"the evidence for '{code}' is not a quote from the segment ({quote!r}); copy its exact words"
            )
        found[code] = quote
    return found


def _words(text: str) -> list[str]:
    return re.findall(r"\w+(?:'\w+)*", normalise(text))


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def copied_share(rationale: str, text: str) -> float:
    """Share of the rationale's words inside a word triple (the whole rationale when shorter) that `text` has too."""
    words = _words(rationale)
    if not words:
        return 0.0
    n = min(3, len(words))
    theirs = set(_ngrams(_words(text), n))
    covered = [False] * len(words)
    for i, gram in enumerate(_ngrams(words, n)):
        if gram in theirs:
            covered[i : i + n] = [True] * n
    return sum(covered) / len(words)


def copies_a_run(rationale: str, text: str, run: int = COPIED_RUN) -> bool:
    """Whether the rationale has `run` consecutive words (all of them, when shorter) that `text` has in a row."""
    words = _words(rationale)
    n = min(run, len(words))
    return n > 0 and not set(_ngrams(words, n)).isdisjoint(_ngrams(_words(text), n))


def _check_not_copied(rationale: str, source: SourceText) -> None:
    texts = [("the segment", source.segment), *(("a neighbouring turn", t) for t in source.context)]
    for name, text in [*texts, ("the instructions", source.instructions)]:
        if copied_share(rationale, text) >= COPIED_SHARE or copies_a_run(rationale, text):
            raise AnswerError(
                f"the rationale repeats {name} instead of saying why the codes apply; "
                "explain in your own words (the quote belongs in 'evidence')"
            )


def parse_answer(text: str, codebook: Codebook, source: SourceText | None = None) -> LlmLabel:
    """Validate one answer (against `source`, the segment and its neighbouring turns, when given);
    raises AnswerError naming what is wrong."""
    obj = _json_object(text)
    missing = [k for k in ("codes", "rationale") if k not in obj]
    if missing:
        raise AnswerError(f"the field(s) {', '.join(repr(m) for m in missing)} are missing")
    codes = obj["codes"]
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise AnswerError("'codes' must be a list of code id strings")
    unknown = [c for c in codes if c not in codebook.code_ids]
    if unknown:
        raise AnswerError(f"unknown code(s) {', '.join(unknown)}; use only {', '.join(codebook.code_ids)}")
    chosen = [c for c in codebook.code_ids if c in set(codes)]
    if codebook.single_choice and len(chosen) > 1:
        raise AnswerError("this codebook allows at most one code per segment")
    rationale = obj["rationale"]
    if not isinstance(rationale, str) or not rationale.strip():
        raise AnswerError("'rationale' must be a non-empty sentence")
    rationale = " ".join(rationale.split())
    chosen_scores = _confidence(obj.get("confidence"), chosen)
    evidence = _evidence(obj.get("evidence"), chosen, source)
    if source is not None:
        _check_not_copied(rationale, source)
    others = _other_scores(obj.get("scores"), codebook)  # optional: backends that score every code
    scores = {c: chosen_scores.get(c, others.get(c, 0.0)) for c in codebook.code_ids}
    return LlmLabel(chosen, scores, rationale, evidence)


def repair_message(error: AnswerError) -> str:
    return (
        f"Your answer could not be used: {error}. Reply again with only the JSON object "
        '{"codes": [...], "confidence": {...}, "evidence": {"<code id>": "<exact words from the segment>"}, '
        '"rationale": "..."}.'
    )
