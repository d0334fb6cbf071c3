"""The OpenAI-compatible backend's error handling, on canned HTTP answers (httpx.MockTransport).

The same backend is tested against a real local server in tests/integration/test_llm_server.py.
"""

from __future__ import annotations

import json

import httpx
import pytest

from pipeline.config import LlmSettings
from pipeline.errors import CultureCodeError
from pipeline.llm.backends import OpenAIBackend, make_backend

OK = {
    "choices": [{"message": {"role": "assistant", "content": "{}"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
}


def backend_answering(*responses: httpx.Response, retries: int = 3):
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    backend = OpenAIBackend(
        "http://llm.test/v1",
        "m",
        api_key="sk-secret-123",
        retries=retries,
        backoff=0,
        transport=httpx.MockTransport(handler),
    )
    return backend, seen


def test_sends_model_messages_schema_and_key():
    backend, seen = backend_answering(httpx.Response(200, json=OK))
    done = backend.complete([{"role": "user", "content": "hi"}], 50, 0.0, schema={"type": "object"})
    body = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1/chat/completions"
    assert seen[0].headers["Authorization"] == "Bearer sk-secret-123"
    assert body["model"] == "m" and body["max_tokens"] == 50
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert done.text == "{}" and done.prompt_tokens == 5


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_rate_limits_and_server_errors(status):
    backend, seen = backend_answering(httpx.Response(status), httpx.Response(status), httpx.Response(200, json=OK))
    assert backend.complete([{"role": "user", "content": "hi"}]).text == "{}"
    assert len(seen) == 3


def test_gives_up_with_a_clear_error_after_the_retries():
    backend, seen = backend_answering(*[httpx.Response(502)] * 3, retries=2)
    with pytest.raises(CultureCodeError, match="answered 502 .*gave up after 3 attempts"):
        backend.complete([{"role": "user", "content": "hi"}])
    assert len(seen) == 3


def test_bad_key_is_reported_without_printing_it():
    backend, seen = backend_answering(httpx.Response(401, json={"error": "bad key sk-secret-123"}))
    with pytest.raises(CultureCodeError, match="refused the API key") as info:
        backend.complete([{"role": "user", "content": "hi"}])
    assert "sk-secret-123" not in str(info.value) and len(seen) == 1


def test_non_json_body_is_a_clear_error():
    backend, _ = backend_answering(httpx.Response(200, text="<html>proxy login</html>"))
    with pytest.raises(CultureCodeError, match="did not answer with JSON"):
        backend.complete([{"role": "user", "content": "hi"}])


def test_openai_backend_needs_url_and_model():
    with pytest.raises(CultureCodeError, match="llm.base_url"):
        make_backend(LlmSettings(backend="openai", model="m"))
    with pytest.raises(CultureCodeError, match="llm.model"):
        make_backend(LlmSettings(backend="openai", base_url="http://127.0.0.1:9/v1"))
