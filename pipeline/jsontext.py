"""`loads`: json.loads for text from users' files and from the network, where nesting too deep to decode (a
line of 100,000 `[`) is a `json.JSONDecodeError` (a ValueError) like any other malformed JSON, so the readers'
one-line messages and the servers' 400 answers cover it, instead of a RecursionError traceback or a dropped
connection (issue 26 #4). `send_json`: the one way our two HTTP servers (`serve`'s model server and the LLM test
server) answer a request."""

from __future__ import annotations

import json
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from pipeline.errors import CultureCodeError


def loads(text: str | bytes | bytearray) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


def json_objects(numbered_lines: Iterable[tuple[int, str]], path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank JSONL line; a line that is not a JSON object is a one-line error
    naming `path` and the line."""
    objects = []
    for number, line in numbered_lines:
        if not line.strip():
            continue
        try:
            obj = loads(line)
        except json.JSONDecodeError as exc:
            raise CultureCodeError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise CultureCodeError(f"{path}:{number}: each line must be a JSON object")
        objects.append((number, obj))
    return objects


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
    close: bool = False,
) -> None:
    """Answer `handler`'s request with `payload` as JSON (no body to a HEAD request); `close` ends the connection
    after this answer (one request per connection), else an HTTP/1.1 client may keep it open."""
    body = json.dumps(payload).encode("utf-8")
    if close:
        handler.close_connection = True
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    if close:
        handler.send_header("Connection", "close")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
