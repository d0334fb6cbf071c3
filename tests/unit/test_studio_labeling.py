"""The generated labeling config, task data and prediction format (no server needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pipeline.config import load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.store import Segment
from pipeline.studio.labeling import codes_from_result, label_config, prediction, task_data
from pipeline.studio.users import annotator_email


def test_config_has_one_checkbox_per_code_with_hint_and_escapes_markup(small_codebook):
    book = load_codebook(small_codebook)
    tricky = book.codes[0].model_copy(update={"hint": 'help <offered> & "arranged"'})
    book = book.model_copy(update={"codes": [tricky, *book.codes[1:]]})
    root = ET.fromstring(label_config(book))
    (choices,) = root.iter("Choices")
    assert choices.get("choice") == "multiple" and choices.get("toName") == "text"
    values = [c.get("value") for c in choices.iter("Choice")]
    assert values == book.code_ids
    assert "help &lt;offered&gt; &amp; &quot;arranged&quot;" in choices.find("Choice").get("html")
    names = {t.get("name"): t.get("value") for t in root.iter("Text")}
    assert names == {"before": "$before", "text": "$text", "after": "$after", "rationale": "$rationale"}


def test_task_data_carries_segment_id_and_context():
    seg = Segment("s2", "d", 2, "He was recalled.", speaker="Officer")
    before = [Segment("s1", "d", 1, "What happened?", speaker="Researcher")]
    data = task_data(seg, before, [], "mentions recall", "v3")
    assert data["segment_id"] == "s2" and data["prediction_version"] == "v3"
    assert data["before"] == "Researcher: What happened?" and data["after"] == "(end of transcript)"
    assert "mentions recall" in data["rationale"]


def test_prediction_has_all_codes_in_one_result_and_the_least_certain_score():
    pred = prediction(["carrot", "stick"], {"carrot": 0.9, "stick": 0.6}, "v1")
    assert pred["model_version"] == "v1" and pred["score"] == 0.6
    assert codes_from_result(pred["result"]) == ["carrot", "stick"] and len(pred["result"]) == 1
    assert prediction([], {"carrot": 0.2, "stick": 0.05}, "v1")["result"] == []


def test_annotator_names_become_emails_and_bad_names_are_refused():
    settings = load_settings(overrides={"studio.annotator_domain": "lab.example"})
    assert annotator_email("alice", settings) == "alice@lab.example"
    assert annotator_email("Bob@Uni.example", settings) == "bob@uni.example"
    with pytest.raises(CultureCodeError, match="annotator name 'a b'"):
        annotator_email("a b", settings)
