"""The methods appendix (`culturecode appendix`): its sections, reproducibility, escaping in every format, and
the LaTeX compiling where a TeX engine is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import PROJECT_ROOT, load_codebook, load_settings
from pipeline.gold.appendix import build_appendix
from pipeline.gold.appendix_formats import citation_cff, latex_escape, render, write_appendix
from pipeline.store import Store
from tests.factory import SERVER, add_gold
from tests.unit import test_agreement_workspace as built
from tests.unit.test_agreement_workspace import ANNOTATORS, SMALL_CODEBOOK

TRANSCRIPT = r"<script>alert(1)</script> costs 5 & 10 % $ # _ { } ~ ^ \ end"
SECTIONS = [
    "Codebook",
    "Data",
    "Procedure",
    "Agreement",
    "Reliability plan",
    "Anchoring check",
    "Coder drift",
    "Model cards",
    "LLM prompts",
    "Data statement",
    "Software and content hashes",
]
BENDER_FRIEDMAN = [
    "Curation rationale",
    "Language variety",
    "Speaker demographic",
    "Annotator demographic",
    "Speech situation",
    "Text characteristics",
    "Provenance",
]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The agreement test workspace; the contested segment doc_b-4 says TRANSCRIPT."""
    monkeypatch.setattr(built, "segment_text", lambda doc, p: TRANSCRIPT if (doc, p) == ("doc_b", 4) else f"{doc} {p}")
    with built.build_workspace(tmp_path / "ws") as store:
        add_gold(store, {"doc_a-0": ["carrot"], "doc_a-1": ["stick"]}, load_codebook(SMALL_CODEBOOK))
    return tmp_path / "ws"


def _settings():
    return load_settings(overrides={"agreement.bootstrap": 100, "codebook": str(SMALL_CODEBOOK)})


def _appendix(ws: Path, keep_ids: bool = False) -> dict:
    with Store(ws) as store:
        return build_appendix(store, _settings(), load_codebook(SMALL_CODEBOOK), keep_ids).as_dict()


def _blocks(appendix: dict, section: str) -> str:
    """One section's content as one JSON string, for `in` checks."""
    (found,) = [s for s in appendix["sections"] if s["title"] == section]
    return json.dumps(found["blocks"])


def test_every_section_and_its_content(workspace: Path) -> None:
    a = _appendix(workspace)
    assert [s["title"] for s in a["sections"]] == SECTIONS
    book = load_codebook(SMALL_CODEBOOK)
    codebook = _blocks(a, "Codebook")
    assert book.content_hash in codebook and "Threats or uses of sanction" in codebook and "Exclude: " in codebook
    assert "annotator_1" in _blocks(a, "Data") and "doc_b" in _blocks(a, "Data")
    assert "majority" in _blocks(a, "Procedure")  # the gold rows' adjudication method
    agreement = _blocks(a, "Agreement")
    assert "carrot" in agreement and "stick" in agreement and "Kripp. alpha" in agreement and "reliable" in agreement
    assert "annotator_3" in _blocks(a, "Coder drift") and "with gold" in _blocks(a, "Coder drift")
    assert "v1" in _blocks(a, "Model cards") and "Cohen kappa" in _blocks(a, "Model cards")
    assert re.search(r"zero_shot \(version [0-9a-f]{10}\)", _blocks(a, "LLM prompts"))
    statement = _blocks(a, "Data statement")
    assert all(head in statement for head in BENDER_FRIEDMAN) and "To be completed by the researcher" in statement
    software = _blocks(a, "Software and content hashes")
    assert "culturecode" in software and "annotations (segment, annotator, codes)" in software


def test_annotators_are_pseudonymised_unless_asked(workspace: Path) -> None:
    hidden, shown = json.dumps(_appendix(workspace)), json.dumps(_appendix(workspace, keep_ids=True))
    assert not any(a in hidden for a in ANNOTATORS)
    assert all(a in shown for a in ANNOTATORS)


def test_plan_blind_subset_and_admission_are_reported(workspace: Path) -> None:
    from pipeline.agreement.planner import Target, record_plan, reliability_plan
    from pipeline.store.blind import record_blind_fraction, workspace_salt
    from pipeline.store.models import set_model_metric

    book = load_codebook(SMALL_CODEBOOK)
    with Store(workspace) as store:
        record_plan(store, reliability_plan(store, book, Target(0.8, 0.05, 2), {"carrot": 0.3, "stick": 0.3}))
        workspace_salt(store)
        with store.transaction():
            record_blind_fraction(store, SERVER, 1, 0.5)
            set_model_metric(store, "v1", "admission", {"enabled": True, "admitted": ["stick"]})
    a = _appendix(workspace)
    plan = _blocks(a, "Reliability plan")
    assert "alpha >= 0.800 at p = 0.05 with 2 coders" in plan and "Now: " in plan
    # the workspace was coded before this first plan: the appendix says no plan predates coding (issue 27)
    assert "No plan was recorded before double-coding began" in plan and "units (pre-coding)" in plan
    assert "Sampling design and task order" in _blocks(a, "Procedure")
    assert "50%" in _blocks(a, "Procedure") and "blind" in _blocks(a, "Anchoring check")
    (pre_labels,) = [
        b for b in json.loads(_blocks(a, "Procedure")) if b["kind"] == "table" and "model version" in b["header"]
    ]
    assert pre_labels["rows"][0][4] == "stick"


def test_reproducible_apart_from_the_date(workspace: Path, tmp_path: Path) -> None:
    first = write_appendix(_appendix(workspace), tmp_path / "one")
    second = write_appendix(_appendix(workspace), tmp_path / "two")
    for fmt, path in first.items():
        assert path.read_bytes() == second[fmt].read_bytes(), fmt  # the plot's PNG too
    a = _appendix(workspace)
    one, two = {**a, "generated_on": "1999-01-01"}, {**a, "generated_on": "1998-02-02"}
    for fmt in ("html", "md", "tex"):
        assert render(one, fmt).replace("1999-01-01", "DATE") == render(two, fmt).replace("1998-02-02", "DATE")


def test_transcript_text_is_escaped_in_every_format(workspace: Path) -> None:
    a = _appendix(workspace)
    cells = [c for b in json.loads(_blocks(a, "Agreement")) if b["kind"] == "table" for row in b["rows"] for c in row]
    assert TRANSCRIPT in cells  # the contested segment's text, shown in the appendix
    html, md, tex = (render(a, fmt) for fmt in ("html", "md", "tex"))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in md and "&lt;script>alert(1)&lt;/script>" in md
    escaped = latex_escape(TRANSCRIPT)
    assert escaped in tex and "<script>" not in tex


def test_latex_escape_writes_every_special_character() -> None:
    assert latex_escape(r"& % $ # _ { } ~ ^ \ <a>") == (
        r"\& \% \$ \# \_ \{ \} \textasciitilde{} \textasciicircum{} \textbackslash{} \textless{}a\textgreater{}"
    )
    assert latex_escape("α ≥ .800") == r"$\alpha$ $\geq$ .800"
    assert latex_escape("[0.3, 0.9]") == "{[}0.3, 0.9{]}"  # never an optional argument of \\ or \item
    assert latex_escape(None) == ""


def test_citation_cff_at_the_root_is_the_generated_one() -> None:
    assert (PROJECT_ROOT / "CITATION.cff").read_text(encoding="utf-8") == citation_cff()
    assert "cff-version: 1.2.0" in citation_cff()


def test_cli_writes_four_files_and_the_plot(workspace: Path, tmp_path: Path) -> None:
    args = ["appendix", "-w", str(workspace), "--codebook", str(SMALL_CODEBOOK), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["outline"][0] == "1. Codebook" and len(data["outline"]) == len(SECTIONS)
    assert sorted(Path(p).name for p in data["paths"].values()) == [
        "CITATION.cff",
        "appendix.html",
        "appendix.md",
        "appendix.tex",
        "drift-weeks.png",  # coder drift by week, which the Markdown and LaTeX versions show from the file
    ]
    assert all(Path(p).is_file() for p in data["paths"].values())


def test_cli_out_that_is_a_file_is_a_user_error(workspace: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(app, ["appendix", "-w", str(workspace), "--out", str(blocker)])
    assert result.exit_code == 2


def _tex_engine() -> list[str]:
    for engine in ("lualatex", "pdflatex", "tectonic"):
        if shutil.which(engine):
            return [engine] if engine == "tectonic" else [engine, "-interaction=nonstopmode", "-halt-on-error"]
    pytest.skip("no TeX engine (lualatex, pdflatex or tectonic) on PATH: install one (e.g. texlive-latex-extra)")


def test_latex_compiles(workspace: Path, tmp_path: Path) -> None:
    command = _tex_engine()
    paths = write_appendix(_appendix(workspace), tmp_path / "tex")
    for _ in range(2):  # the second pass fills the table of contents
        run = subprocess.run([*command, paths["tex"].name], cwd=paths["tex"].parent, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stdout.decode(errors="replace")[-3000:]
    assert (paths["tex"].parent / "appendix.pdf").stat().st_size > 1000


def test_threshold_changes_during_coding_are_listed_in_the_procedure(workspace: Path) -> None:
    """Issue 27 #2: a re-tuning of thresholds mid-study is an event in the appendix, with before and after."""
    from pipeline.store.calibration import save_calibration

    with Store(workspace) as store, store.transaction():
        save_calibration(store, "v1", 40, "h1", {"carrot": 0.41, "stick": 0.5}, {"carrot": "project", "stick": "model"})
        save_calibration(store, "v1", 60, "h2", {"carrot": 0.35, "stick": 0.5}, {"carrot": "project", "stick": "model"})
    procedure = _blocks(_appendix(workspace), "Procedure")
    assert "Threshold changes during coding" in procedure
    assert (
        "carrot -> 0.410" in procedure
        and "carrot 0.410 -> 0.350" in procedure
        and "stick" not in procedure.split("Threshold changes during coding")[1].split("Blind subset")[0]
    )
