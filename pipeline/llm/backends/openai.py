"""The `openai` backend: any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, Ollama, a
llama.cpp server, a hosted API; in tests `culturecode llm test-server`) by base URL, model name and an API key read
from the environment variable named in the settings. Retries with backoff on 429/5xx/timeouts.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
from tenacity import RetryError, retry, retry_if_exception, stop_after_attempt, wait_exponential

from pipeline.config import LlmSettings
from pipeline.errors import CultureCodeError
from pipeline.llm.backends.base import Completion


class TransientError(Exception):
    """A failure worth retrying (429, 5xx, timeout, connection refused)."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError)


class OpenAIBackend:
    """An OpenAI-compatible chat completions endpoint."""

    name = "openai"
    supports_concurrency = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        json_schema: bool = True,
        backoff: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout, self.retries, self.json_schema, self.backoff = timeout, retries, json_schema, backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    @property
    def model_id(self) -> str:
        return self.model

    def _body(self, messages, max_tokens, temperature, schema, seed) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        if schema is not None and self.json_schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "labels", "schema": schema, "strict": True},
            }
        return body

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.post("/chat/completions", json=body)
        except httpx.TimeoutException:
            raise TransientError(f"no answer from {self.base_url} within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach {self.base_url} ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise CultureCodeError(
                f"{self.base_url} refused the API key ({response.status_code}); set a valid key in the "
                f"environment variable named by llm.api_key_env"
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"{self.base_url} answered {response.status_code}")
        if response.status_code >= 400:
            raise CultureCodeError(
                f"{self.base_url} rejected the request ({response.status_code}): {response.text[:200]}"
            )
        try:
            return response.json()
        except ValueError:
            raise CultureCodeError(
                f"{self.base_url} did not answer with JSON; is it an OpenAI-compatible endpoint (…/v1)?"
            ) from None

    def complete(
        self,
        messages: list[dict[str, str]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        schema: dict | None = None,
        seed: int = 0,
    ) -> Completion:
        start = time.monotonic()
        caller = retry(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff, max=30),
            reraise=False,
        )(self._post)
        try:
            data = caller(self._body(messages, max_tokens, temperature, schema, seed))
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise CultureCodeError(
                f"{last} (gave up after {self.retries + 1} attempts; check that the server runs, or raise llm.timeout)"
            ) from None
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise CultureCodeError(f"{self.base_url} answered without choices[0].message.content") from None
        usage = data.get("usage") or {}
        return Completion(
            text,
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            time.monotonic() - start,
        )


def make_backend(settings: LlmSettings) -> OpenAIBackend:
    """The endpoint named in the settings (llm.base_url, llm.model, the key from llm.api_key_env)."""
    if not settings.base_url:
        raise CultureCodeError(
            "llm.backend is 'openai' but llm.base_url is not set; give the server's "
            "URL, e.g. --base-url http://127.0.0.1:8000/v1"
        )
    if not settings.model:
        raise CultureCodeError(
            "llm.backend is 'openai' but llm.model is not set; give the model name "
            "the server serves, e.g. --model qwen2.5-coder-0.5b-instruct"
        )
    return OpenAIBackend(
        settings.base_url,
        settings.model,
        os.environ.get(settings.api_key_env),
        settings.timeout,
        settings.retries,
        settings.json_schema,
    )
