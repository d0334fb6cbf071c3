"""What annotators see: the labeling config built from the codebook, task data and pre-labels.

The config shows the speaker, the turns before and after as context, the segment itself and one
checkbox per code (`<Choices choice="multiple">`, value = code id) labelled with the code's name
and hint; the definition is the checkbox tooltip. A model's rationale, when it gave one, is shown
under the choices.
"""

from __future__ import annotations

import html
from typing import Any

from pipeline.config import Codebook
from pipeline.store import Segment

FROM_NAME = "codes"
TO_NAME = "text"


def _attr(value: str) -> str:
    return html.escape(" ".join(value.split()), quote=True)


def label_config(codebook: Codebook) -> str:
    choice = "single" if codebook.single_choice else "multiple"
    choices = "\n".join(
        f'    <Choice value="{_attr(c.id)}" hint="{_attr(c.definition)}" '
        f'html="{_attr(f"<b>{html.escape(c.name)}</b> &#8212; {html.escape(c.hint)}")}"/>'
        for c in codebook.codes
    )
    return f"""<View>
  <Style>.cc-context {{ color: #666; font-size: 90%; white-space: pre-wrap; }}</Style>
  <Header value="Before" size="6"/>
  <View className="cc-context"><Text name="before" value="$before" granularity="paragraph"/></View>
  <Header value="$speaker" size="5"/>
  <Text name="{TO_NAME}" value="$text"/>
  <Header value="After" size="6"/>
  <View className="cc-context"><Text name="after" value="$after" granularity="paragraph"/></View>
  <Header value="Codes ({_attr(codebook.name)}): tick every code that applies" size="5"/>
  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="{choice}" showInline="false">
{choices}
  </Choices>
  <View className="cc-context"><Text name="rationale" value="$rationale"/></View>
</View>"""


def _turn(seg: Segment) -> str:
    return f"{seg.speaker}: {seg.text}" if seg.speaker else seg.text


def shown_rationale(rationale: str | None, hint: str = "") -> str:
    """The text under the choices: the model's reasoning, then the codes it suggests but may not pre-tick."""
    return "\n".join(part for part in (f"Model's reasoning: {rationale}" if rationale else "", hint) if part)


def task_data(
    seg: Segment,
    before: list[Segment],
    after: list[Segment],
    rationale: str | None,
    model_version: str | None,
    hint: str = "",
) -> dict[str, Any]:
    """Every task carries its segment ID, which makes pushes idempotent and pulls joinable."""
    return {
        "segment_id": seg.id,
        "document_id": seg.document_id,
        "position": seg.position,
        "speaker": seg.speaker or "(no speaker)",
        "text": seg.text,
        "before": "\n".join(_turn(s) for s in before) or "(start of transcript)",
        "after": "\n".join(_turn(s) for s in after) or "(end of transcript)",
        "rationale": shown_rationale(rationale, hint),
        "prediction_version": model_version or "",
    }


def prediction(
    codes: list[str], scores: dict[str, float], model_version: str, rank: float | None = None
) -> dict[str, Any]:
    """Label Studio's prediction format; `score` is the least certain per-code decision, or `rank` (the place in an
    active-learning strategy's order, 0 = ask first) when the label stream follows a strategy (`studio.stream`).

    All chosen codes go in ONE choices result: the labeling UI keeps only the last of several
    results for the same Choices tag (checked in a browser with label-studio 1.23).
    """
    certainty = [max(p, 1.0 - p) for p in scores.values()] or [1.0]
    result = (
        [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": list(codes)}}]
        if codes
        else []
    )
    score = round(min(certainty), 4) if rank is None else round(rank, 4)
    return {"model_version": model_version, "score": score, "result": result}


def codes_from_result(result: list[dict[str, Any]]) -> list[str]:
    """The codes ticked in one annotation (all choices results of our Choices tag)."""
    found: list[str] = []
    for item in result or []:
        if item.get("type") == "choices" and item.get("from_name") == FROM_NAME:
            found.extend(item.get("value", {}).get("choices", []))
    return found
