"""The LLM stage with a fake backend (a queue of canned answers that records what it was asked):
prompts, answer validation, repair, failures, cache, resume, plan."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from pipeline.config import PROJECT_ROOT, load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.llm import AnswerError, labels_of, parse_answer, plan, prelabel_llm
from pipeline.llm.backends import Completion
from pipeline.llm.prompts import load_template
from pipeline.status import current_model, workspace_status
from pipeline.store import Document, Segment, Store
from tests.factory import add_model

GOOD_TEXT = (
    '{"codes": ["stick"], "confidence": {"stick": 0.8}, "evidence": {"stick": "he\'s recalled"}, '
    '"rationale": "A recall is threatened."}'
)


def segment_of(messages: list[dict]) -> str:
    return re.search(r"<segment>(.*?)</segment>", messages[1]["content"], re.S).group(1)  # the first user turn


def GOOD(messages: list[dict]) -> str:  # noqa: N802 (used like the other canned answers)
    """A valid 'stick' answer for any segment: its evidence is the segment's first word."""
    first = segment_of(messages).split()[0]
    return json.dumps(
        {"codes": ["stick"], "confidence": {"stick": 0.8}, "evidence": {"stick": first}, "rationale": RECALL}
    )


RECALL = "A recall is threatened."


def test_labels_of_lists_a_versions_labels_in_document_order(settings, book, store):
    report = prelabel_llm(store, settings, book, backend=QueueBackend([NONE, GOOD] * 4), show_progress=False)
    shown = labels_of(store, report.model_version, 3)
    order = [(s.document_id, s.position) for s in store.segments()][:3]
    assert [
        (store.segment(r["segment_id"]).document_id, store.segment(r["segment_id"]).position) for r in shown
    ] == order
    assert shown[1]["codes"] == ["stick"] and shown[1]["scores"]["stick"] == 0.8
    assert shown[1]["rationale"] == 'A recall is threatened. Evidence: stick: "One"' and shown[0]["codes"] == []


def test_llm_labels_are_the_default_only_until_a_classifier_exists(settings, book, store):
    report = prelabel_llm(store, settings, book, backend=QueueBackend([GOOD] * 8), show_progress=False)
    assert current_model(store) == report.model_version  # cold start: only LLM labels
    add_model(store, "clf-001", book, created_at="2000-01-01T00:00:00")
    assert current_model(store) == "clf-001"  # older than the LLM version, but a classifier
    assert current_model(store, "llm") == report.model_version
    assert workspace_status(store, book).current_model == "clf-001"


NONE = '{"codes": [], "confidence": {}, "rationale": "Small talk."}'


class QueueBackend:
    """Answers from a queue (texts, or functions of the conversation); records every conversation it was sent."""

    name = "fake"
    supports_concurrency = False
    model_id = "fake-model"

    def __init__(self, answers: list):
        self.answers = list(answers)
        self.asked: list[list[dict]] = []

    def complete(self, messages, max_tokens=256, temperature=0.0, schema=None, seed=0) -> Completion:
        self.asked.append(messages)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):  # an answer that depends on the prompt
            answer = answer(messages)
        return Completion(answer, 100, 20, 0.01)


TURNS = [
    ("Researcher", "How is he getting on?"),
    ("PC Lee", "One more missed appointment and he's recalled."),
    ("PC Lee", "I got him a bed at the hostel last week."),
    ("Researcher", "Thanks."),
]


@pytest.fixture
def book(small_codebook):
    return load_codebook(small_codebook)


@pytest.fixture
def settings(small_codebook, tmp_path):
    return load_settings(None, {"workspace": str(tmp_path / "ws"), "codebook": str(small_codebook)})


@pytest.fixture
def store(settings, book):
    store = Store(settings.workspace)
    with store.transaction():
        store.record_codebook(book)
        for doc_id in ("doc_a", "doc_b"):
            segs = [
                Segment(f"{doc_id}-{i}", doc_id, i, text if doc_id == "doc_a" else f"{text} Right.", speaker)
                for i, (speaker, text) in enumerate(TURNS)
            ]
            store.put_document(Document(doc_id, f"{doc_id}.txt", "txt", doc_id), segs)
    yield store
    store.close()


def test_prompt_renders_codebook_segment_and_previous_turn(book, store):
    template = load_template("zero_shot")
    seg = store.segment("doc_a-1")
    before, after = store.neighbours(seg, 1, 0)
    prompt = template.render(book, seg, before, after)
    for code in book.codes:
        assert code.id in prompt.system and code.definition in prompt.system
    assert "recalled" in prompt.user and "How is he getting on?" in prompt.user
    assert "hostel" not in prompt.user  # the next turn is not shown with context_after=0


def test_prompt_version_is_the_template_hash(tmp_path):
    shutil.copytree(PROJECT_ROOT / "prompts", tmp_path / "p")
    before = load_template("zero_shot", tmp_path / "p").version
    user = tmp_path / "p" / "zero_shot.user.j2"
    user.write_text(user.read_text() + "\nBe brief.\n")
    assert load_template("zero_shot", tmp_path / "p").version != before


def test_undefined_template_variable_names_template_and_variable(tmp_path, book, store):
    shutil.copytree(PROJECT_ROOT / "prompts", tmp_path / "p")
    (tmp_path / "p" / "zero_shot.user.j2").write_text("{{ segment.text }} {{ interviewer_name }}")
    template = load_template("zero_shot", tmp_path / "p")
    with pytest.raises(CultureCodeError, match=r"zero_shot\.user\.j2.*interviewer_name"):
        template.render(book, store.segment("doc_a-0"))


def test_unknown_prompt_lists_the_available_ones():
    with pytest.raises(CultureCodeError, match="few_shot, zero_shot"):
        load_template("three_shot")


@pytest.mark.parametrize(
    "answer, message",
    [
        ("Sure! The codes are stick.", "no JSON object"),
        ('{"codes": ["stick", }', "not valid JSON"),
        ('{"codes": ["banana"], "confidence": {"banana": 1}, "rationale": "x"}', "unknown code"),
        ('{"codes": ["stick"], "confidence": {"stick": 0.5}}', "'rationale'"),
        ('{"codes": ["stick"], "rationale": "x"}', "'confidence' is missing"),
        ('{"codes": ["stick"], "confidence": {"stick": 7}, "rationale": "x"}', "from 0 to 1"),
        ('{"codes": ["stick"], "confidence": {"stick": 0.5}, "rationale": "x"}', "'evidence'"),
        ('{"codes": ["stick"], "confidence": {"stick": 0.5}, "evidence": {"carrot": "x"}, "rationale": "x"}', "stick"),
        ('{"codes": "stick", "confidence": {}, "rationale": "x"}', "list of code id"),
    ],
)
def test_bad_answers_are_rejected_with_a_reason(book, answer, message):
    with pytest.raises(AnswerError, match=message):
        parse_answer(answer, book)


def test_good_answer_in_a_code_fence_is_parsed(book):
    label = parse_answer(f"```json\n{GOOD_TEXT}\n```", book)
    assert label.codes == ["stick"]
    assert label.scores == {"carrot": 0.0, "stick": 0.8}
    assert label.rationale == "A recall is threatened." and label.evidence == {"stick": "he's recalled"}


def test_prelabel_stores_codes_scores_rationale_and_registers_llm_model(settings, book, store):
    backend = QueueBackend([NONE, GOOD, GOOD, NONE] * 2)
    report = prelabel_llm(store, settings, book, backend=backend, show_progress=False)
    assert report.labelled == 8 and report.calls == 8 and not report.failures
    row = store.conn.execute("SELECT * FROM predictions WHERE segment_id = 'doc_a-1'").fetchone()
    assert json.loads(row["codes"]) == ["stick"]
    assert json.loads(row["scores"]) == {"carrot": 0.0, "stick": 0.8}
    assert row["rationale"] == 'A recall is threatened. Evidence: stick: "One"'
    assert row["model_version"] == report.model_version
    assert report.prompt_version in report.model_version and "fake-model" in report.model_version
    model = store.conn.execute("SELECT * FROM models WHERE version = ?", (report.model_version,)).fetchone()
    assert model["kind"] == "llm" and model["is_current"] == 1
    assert json.loads(model["metrics"])["prompt_version"] == report.prompt_version


def test_bad_answer_gets_one_repair_retry(settings, book, store):
    backend = QueueBackend(['{"codes": ["banana"], "confidence": {"banana": 1}, "rationale": "x"}', GOOD])
    report = prelabel_llm(store, settings, book, backend=backend, segment_ids=["doc_a-1"], show_progress=False)
    assert report.labelled == 1 and report.calls == 2
    repair = backend.asked[1][-1]["content"]
    assert "banana" in repair and "JSON" in repair


def test_twice_bad_answer_is_a_recorded_failure_not_no_code(settings, book, store):
    backend = QueueBackend(["not json at all", "still not json"])
    report = prelabel_llm(store, settings, book, backend=backend, segment_ids=["doc_a-1"], show_progress=False)
    assert report.labelled == 0
    assert report.failures[0]["raw"] == "still not json" and "JSON" in report.failures[0]["error"]
    assert store.count("predictions") == 0
    cached = store.conn.execute("SELECT * FROM llm_cache").fetchone()
    assert cached["error"] and json.loads(cached["attempts"]) == ["not json at all", "still not json"]


def test_rerun_makes_no_calls_and_refresh_forces_them(settings, book, store):
    first = prelabel_llm(store, settings, book, backend=QueueBackend([GOOD] * 8), show_progress=False)
    again = QueueBackend([])
    second = prelabel_llm(store, settings, book, backend=again, show_progress=False)
    assert again.asked == [] and second.from_cache == 8 and second.calls == 0
    assert second.model_version == first.model_version and store.count("predictions") == 8
    forced = QueueBackend([NONE] * 8)
    prelabel_llm(store, settings, book, backend=forced, refresh=True, show_progress=False)
    assert len(forced.asked) == 8
    assert store.conn.execute("SELECT COUNT(*) FROM predictions WHERE codes = '[]'").fetchone()[0] == 8


def test_killed_run_resumes_from_the_cache(settings, book, store):
    dying = QueueBackend([GOOD, GOOD, GOOD, KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        prelabel_llm(store, settings, book, backend=dying, show_progress=False)
    assert store.count("predictions") == 0  # stage output is all-or-nothing
    resumed = QueueBackend([GOOD] * 5)
    report = prelabel_llm(store, settings, book, backend=resumed, show_progress=False)
    assert report.from_cache == 3 and len(resumed.asked) == 5 and report.labelled == 8


def test_empty_segment_is_not_sent_and_is_reported(settings, book, store):
    with store.transaction():
        store.conn.execute("UPDATE segments SET text = '   ' WHERE id = 'doc_b-3'")
    backend = QueueBackend([GOOD] * 7)
    report = prelabel_llm(store, settings, book, backend=backend, show_progress=False)
    assert len(backend.asked) == 7 and report.labelled == 7
    assert report.failures == [{"segment_id": "doc_b-3", "error": "empty segment: nothing to label", "raw": ""}]


def test_plan_shows_prompt_and_counts_calls_minus_cache(settings, book, store):
    before = plan(store, settings, book)
    assert before.calls == 8 and before.cached == 0 and before.cost is None
    assert "stick" in before.example_system and before.example_user.strip()
    prelabel_llm(
        store, settings, book, backend=QueueBackend([GOOD] * 8), show_progress=False, segment_ids=["doc_a-0", "doc_a-1"]
    )
    after = plan(store, settings, book)
    assert after.cached == 0  # the fake backend's answers are keyed to its own name, not 'local'
    paid = plan(
        store,
        settings.model_copy(
            update={
                "llm": settings.llm.model_copy(
                    update={"backend": "openai", "model": "gpt-x", "price_per_million_input": 1.0}
                )
            }
        ),
        book,
    )
    assert paid.cost is not None and paid.cost > 0


def test_llm_plan_cli_prints_the_prompt_and_numbers(cli, settings, store):
    store.close()
    result = cli("llm", "plan", "--workspace", settings.workspace, "--codebook", settings.codebook, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["calls"] == 8 and data["model_version"].startswith("llm-qwen2.5-coder-0.5b-instruct-zero_shot-")


def test_few_shot_examples_never_come_from_the_segments_own_document(settings, book, store, tmp_path):
    gold = tmp_path / "gold.jsonl"
    rows = [
        {"text": t, "codes": c, "document": d}
        for d, t, c in [
            ("doc_a", "One more missed appointment and he's recalled.", ["stick"]),
            ("other", "He'll be recalled if he misses again.", ["stick"]),
            ("other", "We found him a hostel place.", ["carrot"]),
        ]
    ]
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"prompt": "few_shot", "few_shot_examples": 2})}
    )
    backend = QueueBackend([GOOD])
    prelabel_llm(
        store, settings, book, backend=backend, segment_ids=["doc_a-1"], examples_path=gold, show_progress=False
    )
    user = backend.asked[0][1]["content"]
    assert "He'll be recalled if he misses again." in user
    assert user.count("One more missed appointment") == 1  # only as the segment itself


def test_answer_scores_for_unchosen_codes_are_kept(book):
    label = parse_answer(
        '{"codes": ["stick"], "confidence": {"stick": 0.7}, "scores": {"carrot": 0.2, '
        '"stick": 0.7, "banana": 0.9}, "evidence": {"stick": "recalled"}, "rationale": "x"}',
        book,
    )
    assert label.scores == {"carrot": 0.2, "stick": 0.7}


def test_prelabel_with_llm_cli_reports_an_unreachable_endpoint(cli, settings, store, tmp_path):
    store.close()
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "llm:\n  backend: openai\n  model: m\n  base_url: http://127.0.0.1:9/v1\n  retries: 0\n  timeout: 2\n"
    )
    result = cli(
        "prelabel",
        "--with",
        "llm",
        "--config",
        config,
        "--workspace",
        settings.workspace,
        "--codebook",
        settings.codebook,
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["labelled"] == 0 and len(data["failures"]) == 8
    assert "cannot reach http://127.0.0.1:9/v1" in data["failures"][0]["error"]


# --------------------------------------------------------------------------- evidence and copied reasons


def answer(rationale: str, evidence: str = "recalled", codes=("stick",)) -> str:
    return json.dumps(
        {
            "codes": list(codes),
            "confidence": {c: 0.8 for c in codes},
            "evidence": {c: evidence for c in codes},
            "rationale": rationale,
        }
    )


def test_a_copied_reason_is_rejected_recorded_and_never_shown(settings, book, store):
    copied = answer("One more missed appointment and he's recalled.")
    backend = QueueBackend([copied, copied])
    report = prelabel_llm(store, settings, book, backend=backend, segment_ids=["doc_a-1"], show_progress=False)
    assert report.labelled == 0 and "repeats the segment" in report.failures[0]["error"]
    assert "own words" in backend.asked[1][-1]["content"]  # the repair says what was wrong
    cached = store.conn.execute("SELECT * FROM llm_cache").fetchone()
    assert cached["response"] == copied and "repeats the segment" in cached["error"]
    assert store.count("predictions") == 0


def test_a_reason_copying_the_neighbouring_turn_is_rejected(settings, book, store):
    copied = answer("The officer says: how is he getting on?")
    report = prelabel_llm(
        store, settings, book, backend=QueueBackend([copied, copied]), segment_ids=["doc_a-1"], show_progress=False
    )
    assert report.labelled == 0 and "repeats a neighbouring turn" in report.failures[0]["error"]


def test_an_evidence_quote_not_in_the_segment_is_rejected(settings, book, store):
    invented = answer("A recall is threatened.", evidence="he absconded from the hostel")
    report = prelabel_llm(
        store, settings, book, backend=QueueBackend([invented, invented]), segment_ids=["doc_a-1"], show_progress=False
    )
    assert report.labelled == 0 and "not a quote from the segment" in report.failures[0]["error"]
    assert store.count("predictions") == 0


def test_a_quote_from_the_neighbouring_turn_is_not_evidence(settings, book, store):
    elsewhere = answer("A recall is threatened.", evidence="a bed at the hostel")
    report = prelabel_llm(
        store, settings, book, backend=QueueBackend([elsewhere, GOOD]), segment_ids=["doc_a-1"], show_progress=False
    )
    assert report.labelled == 1 and report.calls == 2  # repaired on the second try


def test_a_good_answer_passes_with_quotes_normalised(settings, book, store):
    quoted = answer(
        "The officer threatens a recall over missed appointments.", evidence="“ONE more  missed appointment"
    )
    report = prelabel_llm(
        store, settings, book, backend=QueueBackend([quoted]), segment_ids=["doc_a-1"], show_progress=False
    )
    assert report.labelled == 1 and not report.failures
    row = store.conn.execute("SELECT rationale FROM predictions").fetchone()
    assert (
        row["rationale"]
        == 'The officer threatens a recall over missed appointments. Evidence: stick: "“ONE more missed appointment"'
    )


@pytest.mark.parametrize(
    "quote, found",
    [
        ("he’s RECALLED", True),  # curly apostrophe and case
        ("missed appointment ... recalled", True),  # an ellipsis may skip words
        ("recalled ... missed appointment", False),  # but not reorder them
        ("he was recalled", False),
        ("   ", False),
    ],
)
def test_quote_occurs_normalises_case_whitespace_quotes_and_dashes(quote, found):
    from pipeline.llm.parse import quote_occurs

    assert quote_occurs(quote, "One more missed appointment and he's recalled \u2014 simple.") is found


def test_parse_checks_against_the_source_only_when_given(book):
    from pipeline.llm.parse import SourceText

    text = answer("A recall is threatened.", evidence="warrant")
    assert parse_answer(text, book).evidence == {"stick": "warrant"}
    with pytest.raises(AnswerError, match="not a quote"):
        parse_answer(text, book, SourceText("One more missed appointment and he's recalled."))


def test_the_packaged_models_measured_quality_is_found_by_its_model_version():
    from pipeline.llm.measured import measured_quality

    row = measured_quality("llm-qwen2.5-coder-0.5b-instruct-few_shot-3f2a9c")
    assert row is not None and row["prompt"] == "few_shot" and 0 <= row["macro_f1"] <= 1
    assert measured_quality("llm-some-hosted-model-zero_shot-3f2a9c") is None


def test_llm_label_says_plainly_when_the_measured_quality_is_below_admission():
    from pipeline.commands.llm import _measured_line
    from pipeline.llm.measured import measured_quality

    measured = measured_quality("llm-qwen2.5-coder-0.5b-instruct-zero_shot-1")
    assert measured is not None
    below = _measured_line(measured, {"enabled": True, "min_kappa": 0.4})
    assert "macro-F1 0.10" in below and "below admission (kappa >= 0.40)" in below
    assert "below admission" not in _measured_line({**measured, "mean_kappa": 0.6}, {"enabled": True, "min_kappa": 0.4})
