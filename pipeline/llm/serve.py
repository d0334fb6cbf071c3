"""`culturecode llm test-server` (was `llm serve`): a test double, the local model behind a small OpenAI-compatible
HTTP API. Teams share a model with a real serving engine (vLLM, llama.cpp's server, Ollama: docs/llm.md).

Routes: `GET /v1/models`, `POST /v1/chat/completions` (messages, max_tokens, temperature, seed;
`response_format` is accepted and the answer is started as a JSON object). With an API key set,
requests without `Authorization: Bearer <key>` get 401. Lets the HTTP backend be tested against a real server
without building llama.cpp.
"""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipeline.jsontext import loads, send_json
from pipeline.llm.backends.base import Backend


def _completion(backend: Backend, request: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat-completion answer to `request` (messages, max_tokens, temperature, seed, response_format)."""
    schema = ((request.get("response_format") or {}).get("json_schema") or {}).get("schema")
    wants_json = schema is not None or (request.get("response_format") or {}).get("type") == "json_object"
    done = backend.complete(
        messages,
        int(request.get("max_tokens") or 256),
        float(request.get("temperature") or 0.0),
        schema if wants_json else None,
        int(request.get("seed") or 0),
    )
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": backend.model_id,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": done.text}}],
        "usage": {
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens,
        },
    }


def _handler(backend: Backend, api_key: str | None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 15  # seconds an idle keep-alive connection is held, so shutdown never waits long

        def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise
            return

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            send_json(self, status, payload)

        def _authorised(self) -> bool:
            if not api_key:
                return True
            given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if hmac.compare_digest(given.encode(), api_key.encode()):
                return True
            self._send(401, {"error": {"message": "invalid API key", "type": "invalid_request_error"}})
            return False

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": backend.model_id, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                request = loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                messages = request["messages"]
            except (ValueError, KeyError):
                self._send(400, {"error": {"message": "body must be JSON with 'messages'"}})
                return
            self._send(200, _completion(backend, request, messages))

    return Handler


def make_server(
    backend: Backend, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None
) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler(backend, api_key))
    # server_close() waits for answers still being computed: a model killed mid-forward aborts
    server.daemon_threads = False
    server.block_on_close = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
