"""Issue 26 #4: deeply nested YAML in --codebook or --config was a RecursionError traceback, and deeply nested JSON
in a user's file or a request to `serve` was a traceback or a dropped connection. Now: a one-line error naming the
file, exit 2, and a 400 JSON answer from the server."""

from __future__ import annotations

import httpx
import pytest

from pipeline.config import MAX_YAML_DEPTH, load_codebook, load_settings, load_yaml
from pipeline.jsontext import loads
from pipeline.loop.backend import SECRET_HEADER, shared_secret
from pipeline.loop.service import start_loop
from tests import factory
from tests.conftest import FIXTURES
from tests.unit.test_bad_input_defects import one_line_error, run

DEEP = 100_000
BOOK = load_codebook(FIXTURES / "codebook_small.yaml")


def test_yaml_deeper_than_the_bound_is_refused_and_shallower_reads_as_before():
    assert load_yaml("a: " + "[" * (MAX_YAML_DEPTH - 2) + "]" * (MAX_YAML_DEPTH - 2))["a"] is not None
    with pytest.raises(Exception, match="nested deeper than"):
        load_yaml("a: " + "[" * DEEP)


@pytest.mark.parametrize("option", ["--config", "--codebook"])
@pytest.mark.parametrize("command", [("config", "check"), ("status",)])
def test_deeply_nested_yaml_is_a_one_line_error(tmp_path, option, command):
    factory.make_workspace(tmp_path / "ws", BOOK, {"doc": ["Tea."]}).close()
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * DEEP + "\n")
    one_line_error(run(*command, option, deep, "--workspace", tmp_path / "ws"), "deep.yaml", "nested deeper than")


def test_deeply_nested_json_in_a_gold_file_is_a_one_line_error(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("[" * DEEP + "]" * DEEP + "\n")
    one_line_error(
        run("train", "--gold", gold, "--workspace", tmp_path / "ws", "--codebook", FIXTURES / "codebook_small.yaml"),
        "gold.jsonl:1",
        "nested too deeply",
    )
    with pytest.raises(ValueError, match="nested too deeply"):
        loads(b"[" * DEEP)


def test_serve_answers_deeply_nested_json_with_400(tmp_path):
    store = factory.make_workspace(tmp_path / "ws", BOOK, {"doc": ["Tea."]})
    store.close()
    settings = load_settings(
        overrides={"workspace": str(tmp_path / "ws"), "codebook": str(FIXTURES / "codebook_small.yaml")}
    )
    running = start_loop(settings, BOOK, port=0, connect=False, retrain=lambda: {})
    try:
        body = b'{"tasks": ' + b"[" * DEEP + b"]" * DEEP + b"}"
        headers = {SECRET_HEADER: shared_secret(settings), "Content-Type": "application/json"}
        for route in ("/predict", "/webhook", "/setup"):
            answer = httpx.post(f"{running.url}{route}", content=body, headers=headers, timeout=30)
            assert answer.status_code == 400 and "error" in answer.json(), (route, answer.text)
        assert httpx.get(f"{running.url}/health", timeout=10).json()["status"] == "UP"
    finally:
        running.close()
