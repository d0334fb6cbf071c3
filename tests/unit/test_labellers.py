"""Labellers as plugins: a toy keyword labeller registered through the registry (the path entry
points take) and run by `culturecode prelabel --with toy`; unknown names list the installed ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.labellers import LabelContext, available, create, prelabel, registry
from pipeline.store import Store
from pipeline.store.models import get_model
from pipeline.store.predictions import PredictionRow, predictions_of

KEYWORDS = {"carrot": ("hostel", "job"), "stick": ("recalled", "arrest")}
TRANSCRIPT = (
    "Researcher: How is he getting on?\n"
    "PC Lee: One more missed appointment and he's recalled.\n"
    "PC Lee: I got him a bed at the hostel last week.\n"
    "Researcher: Thanks.\n"
)


class KeywordLabeller:
    """A code applies when one of its keywords is in the segment; what a plugin would ship."""

    name = "toy"
    kind = "keywords"
    batch_size = 3  # several batches even on this tiny workspace

    def __init__(self, context: LabelContext):
        self.codes = context.codebook.code_ids
        self.version = f"toy-{context.options.get('edition', 1)}"

    def label(self, segments):
        rows = []
        for seg in segments:
            text = seg.text.lower()
            scores = {c: float(any(k in text for k in KEYWORDS.get(c, ()))) for c in self.codes}
            chosen = [c for c, s in scores.items() if s == 1.0]
            rows.append(PredictionRow(seg.id, self.version, scores, chosen, f"keywords: {chosen}" if chosen else None))
        return rows


class BadLabeller(KeywordLabeller):
    def label(self, segments):
        return [PredictionRow(segments[0].id, self.version, {"banana": 1.0}, ["banana"])]


@pytest.fixture
def toy():
    registry.register("toy", f"{__name__}:KeywordLabeller")  # loaded like an installed entry point
    yield "toy"
    registry.unregister("toy")


@pytest.fixture
def workspace(cli, tmp_path, small_codebook):
    (tmp_path / "int1.txt").write_text(TRANSCRIPT, encoding="utf-8")
    ws = tmp_path / "ws"
    result = cli("ingest", tmp_path / "int1.txt", "--workspace", ws, "--codebook", small_codebook)
    assert result.exit_code == 0, result.stderr
    return ws


def _args(ws: Path, codebook: Path) -> list:
    return ["--workspace", ws, "--codebook", codebook]


def test_prelabel_with_a_registered_labeller_stores_its_predictions(cli, toy, workspace, small_codebook):
    result = cli("prelabel", "--with", "toy", "--json", "-q", *_args(workspace, small_codebook))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labeller"] == "toy" and report["model_version"] == "toy-1"
    assert report["labelled"] == report["segments"] == 4 and report["already"] == 0
    assert report["per_code"] == {"carrot": 1, "stick": 1}
    with Store(workspace) as store:
        stored = predictions_of(store, "toy-1")
        texts = {s.id: s.text for s in store.segments()}
        model = get_model(store, "toy-1")
        book_hash = store.codebook_hash
    by_text = {texts[seg]: row for seg, row in stored.items()}
    assert by_text["One more missed appointment and he's recalled."].codes == ["stick"]
    hostel = by_text["I got him a bed at the hostel last week."]
    assert hostel.codes == ["carrot"] and hostel.scores == {"carrot": 1.0, "stick": 0.0}
    assert hostel.rationale == "keywords: ['carrot']"
    assert by_text["Thanks."].codes == [] and by_text["Thanks."].rationale is None
    assert model is not None and model["kind"] == "keywords" and model["is_current"]
    assert model["codebook_hash"] == book_hash


def test_a_rerun_labels_only_new_segments(cli, toy, workspace, small_codebook, tmp_path):
    assert cli("prelabel", "--with", "toy", "-q", *_args(workspace, small_codebook)).exit_code == 0
    (tmp_path / "int2.txt").write_text("PC Lee: We had to arrest him in the end.\n", encoding="utf-8")
    assert cli("ingest", tmp_path / "int2.txt", *_args(workspace, small_codebook)).exit_code == 0
    again = cli("prelabel", "--with", "toy", "--json", "-q", *_args(workspace, small_codebook))
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["labelled"] == 1 and report["already"] == 4 and report["per_code"]["stick"] == 1
    text = cli("prelabel", "--with", "toy", *_args(workspace, small_codebook))
    assert "Pre-labelled 0 segment(s) with toy-1 (toy); 5 were already labelled." in text.stdout


def test_push_with_a_labeller_uses_the_current_version_of_its_kind(cli, toy, workspace, small_codebook):
    missing = cli("push", "--with", "toy", *_args(workspace, small_codebook))
    assert missing.exit_code == 2 and "no keywords labels" in missing.stderr
    assert "culturecode prelabel --with toy" in missing.stderr


@pytest.mark.parametrize("command", ["prelabel", "push"])
def test_an_unknown_labeller_is_one_line_listing_the_installed_ones(cli, toy, workspace, small_codebook, command):
    result = cli(command, "--with", "nope", *_args(workspace, small_codebook))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--with 'nope'" in lines[0]
    assert "installed: classifier, llm, llm-local, llm-openai, toy" in lines[0]


def test_an_unknown_llm_backend_is_refused_by_config_check(cli, tmp_path, small_codebook):
    config = tmp_path / "pipeline.yaml"
    config.write_text("llm:\n  backend: nope\n", encoding="utf-8")
    result = cli("config", "check", "--config", config, "--codebook", small_codebook)
    assert result.exit_code == 2
    assert "llm.backend 'nope'" in result.stderr and "installed: local, openai" in result.stderr


def test_a_labellers_bad_output_is_a_one_line_error_naming_it(tmp_path, small_codebook):
    registry.register("bad", BadLabeller)  # a factory object, not a "module:attr" path
    try:
        settings = load_settings(None, {"workspace": str(tmp_path / "ws"), "codebook": str(small_codebook)})
        book = load_codebook(small_codebook)
        with Store(tmp_path / "ws") as store:
            from tests.factory import add_documents

            add_documents(store, {"doc": ["A turn."]})
            with pytest.raises(CultureCodeError, match=r"labeller 'toy' returned code\(s\) banana"):
                prelabel(store, settings, book, "bad")
            assert predictions_of(store, "toy-1") == {}
    finally:
        registry.unregister("bad")
    assert "bad" not in available()


def test_a_factory_that_makes_no_labeller_is_refused(tmp_path, small_codebook):
    registry.register("broken", lambda context: object())
    try:
        settings = load_settings(None, {"workspace": str(tmp_path / "ws"), "codebook": str(small_codebook)})
        with Store(tmp_path / "ws") as store, pytest.raises(CultureCodeError, match="without name, version, label"):
            create("broken", LabelContext(store, settings, load_codebook(small_codebook)))
    finally:
        registry.unregister("broken")


def test_an_llm_backend_plugin_is_chosen_by_llm_backend(tmp_path, small_codebook):
    """A third-party LLM backend registers `llm-<name>` with LlmBackendPlugin, like local and openai."""
    from pipeline.config import LlmSettings
    from pipeline.llm.backends import make_backend
    from pipeline.llm.labeller import LlmBackendPlugin

    made = []
    registry.register("llm-echo", LlmBackendPlugin(lambda settings: made.append(settings.model) or "a backend"))
    try:
        assert "echo" in registry.llm_backends()
        assert make_backend(LlmSettings(backend="echo", model="m1")) == "a backend" and made == ["m1"]
    finally:
        registry.unregister("llm-echo")
    with pytest.raises(CultureCodeError, match="llm.backend 'echo'.*installed: local, openai"):
        make_backend(LlmSettings(backend="echo"))


def test_listing_labellers_and_their_kinds_imports_no_torch():
    code = (
        "import sys\nfrom pipeline.labellers import available, kind_of\n"
        "names = available()\nkinds = [kind_of(n) for n in names]\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'numpy') if m in sys.modules]\n"
        "print(names, kinds, heavy)\nassert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "['classifier', 'llm', 'llm-local', 'llm-openai'] ['classifier', 'llm', 'llm', 'llm']" in done.stdout
