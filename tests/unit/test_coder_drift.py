"""Coder drift: per annotator, agreement with gold and with the model batch by batch, in coding order."""

from __future__ import annotations

from pathlib import Path

from pipeline.agreement.drift import coder_drift, drift_markdown
from pipeline.config import load_codebook
from pipeline.store import Store
from tests.factory import add_annotation, add_gold, add_model, add_project, make_workspace
from tests.unit.test_agreement_workspace import SMALL_CODEBOOK

CODES = ["carrot", "stick"]
# ana's codes in the order she coded them; gold agrees on the first two and contradicts the last two
ANA = {"d-0": ["carrot"], "d-1": ["stick"], "d-2": ["carrot"], "d-3": ["stick"]}
GOLD = {"d-0": ["carrot"], "d-1": ["stick"], "d-2": ["stick"], "d-3": ["carrot"]}


def _workspace(path: Path, edit_first_again: bool = False) -> Store:
    book = load_codebook(SMALL_CODEBOOK)
    store = make_workspace(path, book, {"d": ["one", "two", "three", "four"]})
    add_project(store, 1, "ana@example.org", book)
    with store.transaction():
        for n, (seg, codes) in enumerate(ANA.items(), 1):
            add_annotation(store, n, 1, seg, "ana@example.org", codes, book, "v1", updated_at=f"2026-01-0{n}T10:00:00")
        if edit_first_again:  # d-0 recoded last: it moves to the end of her order
            add_annotation(store, 9, 1, "d-0", "ana@example.org", ["carrot"], book, "v1", updated_at="2026-01-09T10:00")
    add_model(store, "v1", book, dict(ANA))
    add_gold(store, GOLD, book)
    return store


def test_agreement_with_gold_falls_while_the_model_agrees(tmp_path: Path) -> None:
    with _workspace(tmp_path / "ws") as store:
        drift = coder_drift(store, CODES, batch_size=2)
    first, second = drift["annotators"]["ana@example.org"]
    assert (first["batch"], first["segments"], second["segments"]) == (1, 2, 2)
    assert first["gold_kappa"] == 1.0 and first["gold_agreement"] == 1.0
    assert second["gold_kappa"] == -1.0 and second["gold_agreement"] == 0.0
    assert first["model_kappa"] == second["model_kappa"] == 1.0
    assert first["first"].startswith("2026-01-01") and second["last"].startswith("2026-01-04")


def test_a_later_edit_moves_the_segment_to_the_end(tmp_path: Path) -> None:
    with _workspace(tmp_path / "ws", edit_first_again=True) as store:
        drift = coder_drift(store, CODES, batch_size=2)
    first, second = drift["annotators"]["ana@example.org"]
    # order now d-1, d-2 | d-3, d-0: one gold match in each batch, each segment counted once
    assert first["segments"] == second["segments"] == 2
    assert first["gold_agreement"] == second["gold_agreement"] == 0.5
    assert second["last"].startswith("2026-01-09")


def test_markdown_table(tmp_path: Path) -> None:
    with _workspace(tmp_path / "ws") as store:
        lines = drift_markdown(coder_drift(store, CODES, batch_size=3))
    assert "## Coder drift (batches of 3 segments)" in lines
    rows = [line for line in lines if line.startswith("| ana@example.org")]
    assert [row.split(" | ")[1] for row in rows] == ["1", "2"]
    assert drift_markdown({"batch_size": 3, "annotators": {}}) == []


def test_the_agreement_report_has_the_drift_table(tmp_path: Path) -> None:
    from pipeline.agreement import agreement_report
    from pipeline.config import load_settings
    from tests.unit.test_agreement_workspace import build_workspace

    settings = load_settings(overrides={"agreement.bootstrap": 50, "codebook": str(SMALL_CODEBOOK)})
    with build_workspace(tmp_path / "ws") as store:
        result = agreement_report(store, settings, load_codebook(SMALL_CODEBOOK), out_dir=tmp_path / "reports")
    assert sorted(result.report["drift"]["annotators"]) == ["ana@example.org", "bo@example.org", "cy@example.org"]
    assert "## Coder drift" in result.paths["md"].read_text()
    assert 'id="drift"' in result.paths["html"].read_text()
