"""`loads`: json.loads for text from users' files and from the network, where nesting too deep to decode (a
line of 100,000 `[`) is a `json.JSONDecodeError` (a ValueError) like any other malformed JSON, so the readers'
one-line messages and the servers' 400 answers cover it, instead of a RecursionError traceback or a dropped
connection (issue 26 #4)."""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes | bytearray) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
