"""The CLI starts light: help, status, config show and segments load no heavy library.

Each case runs in a fresh interpreter (this test process has torch loaded already) and reports
which modules were imported once the command finished; the check is by module, not by time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.store import Document, Segment, Store

ROOT = Path(__file__).resolve().parents[2]
SMALL_CODEBOOK = ROOT / "tests" / "fixtures" / "codebook_small.yaml"
HEAVY = (
    "torch",
    "transformers",
    "onnxruntime",
    "label_studio_sdk",
    "matplotlib",
    "datasets",
    "numpy",
    "pandas",
    "sklearn",
    "scipy",
)

# Runs the typer app in-process without exiting, then prints the loaded top-level packages as JSON.
RUNNER = """
import json, sys
from pipeline.cli import app
try:
    app(sys.argv[1:], standalone_mode=False, prog_name="culturecode")
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
sys.stderr.write("MODULES " + json.dumps(sorted({m.split('.')[0] for m in sys.modules})) + "\\n")
"""


def _run(*args: str) -> tuple[set[str], str]:
    """(the top-level packages loaded, stdout) of `culturecode ARGS` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert proc.returncode == 0, proc.stderr
    line = next(li for li in proc.stderr.splitlines() if li.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES "))), proc.stdout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("lazy") / "ws"
    with Store(ws) as store, store.transaction():
        doc = Document("interview", "interview.txt", "txt", "hash")
        store.put_document(doc, [Segment(f"s{i}", doc.id, i, f"Turn {i}.", "R") for i in range(5)])
    return ws


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("status", "--help"),
        ("prelabel", "--help"),
        ("llm", "label", "--help"),
        ("studio", "start", "--help"),
    ],
)
def test_help_loads_no_heavy_library(args):
    loaded, stdout = _run(*args)
    assert "Usage" in stdout
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("args", [("status", "--json"), ("config", "show"), ("segments", "--json")])
def test_workspace_commands_load_no_heavy_library(workspace, args):
    loaded, stdout = _run(
        *args, "--workspace", str(workspace), *(["--codebook", str(SMALL_CODEBOOK)] if args[0] != "segments" else [])
    )
    assert str(workspace) in stdout or "Turn 4." in stdout  # the command did its work
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_stage_command_does_load_its_stage(workspace):
    """The check can fail: a command that needs the classifier does import it."""
    loaded, _ = _run("evaluate", "--workspace", str(workspace), "--codebook", str(SMALL_CODEBOOK))
    assert "torch" in loaded or "numpy" in loaded
