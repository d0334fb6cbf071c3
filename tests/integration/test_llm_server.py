"""The real local model, and the OpenAI-compatible HTTP backend against a real server
(`culturecode llm serve`'s server, serving the packaged model on a free local port)."""

from __future__ import annotations

import json
import socket

import pytest

from pipeline.config import load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.llm import make_server, prelabel_llm
from pipeline.llm.backends import OpenAIBackend
from pipeline.llm.backends.local import LocalBackend
from pipeline.llm.serve import serve_in_thread
from pipeline.store import Document, Segment, Store

pytestmark = pytest.mark.slow

KEY = "test-key-7f3a"
TURNS = [
    ("PC Lee", "One more missed appointment and he's recalled to prison, simple as that."),
    ("Support worker", "We got him a bed at the hostel and a slot with the housing team."),
    ("Researcher", "Thanks, that's all my questions."),
]


@pytest.fixture(scope="module")
def local_backend():
    return LocalBackend(threads=1)


@pytest.fixture(scope="module")
def server(local_backend):
    srv = make_server(local_backend, "127.0.0.1", 0, api_key=KEY)
    serve_in_thread(srv)
    yield f"http://127.0.0.1:{srv.server_port}/v1"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def workspace(tmp_path, small_codebook):
    settings = load_settings(None, {"workspace": str(tmp_path / "ws"), "codebook": str(small_codebook)})
    book = load_codebook(small_codebook)
    store = Store(settings.workspace)
    with store.transaction():
        store.record_codebook(book)
        store.put_document(
            Document("doc", "doc.txt", "txt", "h"),
            [Segment(f"s{i}", "doc", i, text, speaker) for i, (speaker, text) in enumerate(TURNS)],
        )
    yield settings, book, store
    store.close()


def test_local_model_answers_valid_labels_with_confidence(local_backend, workspace):
    settings, book, store = workspace
    report = prelabel_llm(store, settings, book, backend=local_backend, show_progress=False)
    # the 0.5B model's reasons often repeat a turn: those answers are recorded failures, never labels
    assert report.labelled >= 1 and report.labelled + len(report.failures) == 3
    assert all("repeats" in f["error"] for f in report.failures)
    for row in store.conn.execute("SELECT * FROM predictions"):
        codes, scores = json.loads(row["codes"]), json.loads(row["scores"])
        assert set(codes) <= set(book.code_ids) and set(scores) == set(book.code_ids)
        assert all(0 < scores[c] <= 1 for c in codes) and row["rationale"].strip()
        assert all(f'{c}: "' in row["rationale"] for c in codes)  # each chosen code's evidence quote


def test_http_backend_labels_through_a_real_server_and_reruns_from_cache(server, workspace):
    settings, book, store = workspace
    backend = OpenAIBackend(server, "qwen2.5-coder-0.5b-instruct", api_key=KEY, timeout=300)
    first = prelabel_llm(store, settings, book, backend=backend, show_progress=False)
    assert first.labelled + len(first.failures) == 3 and first.calls >= 3 and "openai" not in first.model_version
    again = prelabel_llm(store, settings, book, backend=backend, show_progress=False)
    assert again.calls == 0 and again.from_cache == 3


def test_bad_key_gets_401_and_the_key_is_not_printed(server, workspace):
    settings, book, store = workspace
    backend = OpenAIBackend(server, "m", api_key="wrong-key-123", timeout=30)
    with pytest.raises(CultureCodeError, match="refused the API key \\(401\\)") as info:
        prelabel_llm(store, settings, book, backend=backend, show_progress=False)
    assert "wrong-key-123" not in str(info.value)


def test_slow_endpoint_times_out_with_retries_and_is_recorded_as_failure(server, workspace):
    settings, book, store = workspace
    backend = OpenAIBackend(server, "m", api_key=KEY, timeout=0.01, retries=1, backoff=0)
    report = prelabel_llm(store, settings, book, backend=backend, segment_ids=["s0"], show_progress=False)
    assert report.labelled == 0
    assert "no answer from" in report.failures[0]["error"] and "gave up after 2 attempts" in report.failures[0]["error"]


def test_endpoint_down_is_a_clear_failure(workspace):
    settings, book, store = workspace
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", timeout=2, retries=1, backoff=0)
    report = prelabel_llm(store, settings, book, backend=backend, segment_ids=["s0"], show_progress=False)
    assert "cannot reach" in report.failures[0]["error"]


def test_the_official_openai_client_gets_schema_valid_answers_and_a_401(server, workspace):
    """A third-party client (the `openai` SDK) checks the server's side of the protocol."""
    import openai

    from pipeline.llm.parse import answer_schema, parse_answer

    _, book, _ = workspace
    client = openai.OpenAI(base_url=server, api_key=KEY, max_retries=0, timeout=600)
    assert [m.id for m in client.models.list().data] == ["qwen2.5-coder-0.5b-instruct"]
    reply = client.chat.completions.create(
        model="qwen2.5-coder-0.5b-instruct",
        temperature=0,
        max_tokens=64,
        messages=[
            {"role": "system", "content": "Label the segment with the codes carrot (support) or stick (enforcement)."},
            {"role": "user", "content": TURNS[0][1]},
        ],
        response_format={"type": "json_schema", "json_schema": {"name": "label", "schema": answer_schema(book)}},
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    label = parse_answer(choice.message.content, book)
    assert set(label.codes) <= set(book.code_ids) and label.rationale
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens >= 0
    wrong = openai.OpenAI(base_url=server, api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
