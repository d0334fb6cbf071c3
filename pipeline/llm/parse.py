"""Structured output: the model's answer must be one JSON object validated against the codebook.

    {"codes": ["id", ...], "confidence": {"id": 0.0-1.0, ...}, "rationale": "one sentence"}

Anything else raises `AnswerError` with a reason a repair prompt can quote back to the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pipeline.config import Codebook


class AnswerError(ValueError):
    """The model's answer cannot be used; the message says why (shown to the model on repair)."""


@dataclass
class LlmLabel:
    codes: list[str]
    scores: dict[str, float]
    rationale: str


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
            "rationale": {"type": "string"},
        },
        "required": ["codes", "confidence", "rationale"],
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


def parse_answer(text: str, codebook: Codebook) -> LlmLabel:
    """Validate one answer; raises AnswerError naming what is wrong."""
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
    chosen_scores = _confidence(obj.get("confidence"), chosen)
    others = _other_scores(obj.get("scores"), codebook)  # optional: backends that score every code
    scores = {c: chosen_scores.get(c, others.get(c, 0.0)) for c in codebook.code_ids}
    return LlmLabel(chosen, scores, " ".join(rationale.split()))


def repair_message(error: AnswerError) -> str:
    return (
        f"Your answer could not be used: {error}. Reply again with only the JSON object "
        '{"codes": [...], "confidence": {...}, "rationale": "..."}.'
    )
