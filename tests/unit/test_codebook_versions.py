"""Codebook versions in the reports: agreement split by the codebook each annotation was made with, the version
history with what changed in the appendix, coder drift by ISO week (table and plot), and the Dawid-Skene
per-coder confusion in the appendix's procedure."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pipeline.agreement import agreement_report
from pipeline.agreement.drift import coder_drift, iso_week, plot_weeks
from pipeline.agreement.versions import codebook_history
from pipeline.config import Codebook, load_codebook, load_settings
from pipeline.gold import adjudicate
from pipeline.gold.appendix import build_appendix
from pipeline.gold.appendix_formats import write_appendix
from pipeline.store import Store
from tests.factory import add_annotation, add_gold, add_model, add_project, make_workspace

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "codebook_small.yaml"
SEGMENTS = [f"doc-{i}" for i in range(8)]
CODERS = ("ana@example.org", "bo@example.org")


def _edited(old: Codebook) -> Codebook:
    data = old.model_dump()
    data["version"] = "2"
    data["codes"][1]["definition"] = "Threats of sanction only."
    data["codes"].append({**data["codes"][0], "id": "weather", "name": "Weather"})
    return Codebook.model_validate(data)


def _code(book: Codebook, coder: int, i: int) -> list[str]:
    """Coder 0 ticks carrot on even segments; coder 1 agrees except on segment 2; weather on the last ones."""
    codes = ["carrot"] if i % 2 == 0 and not (coder == 1 and i == 2) else ["stick"]
    return codes + (["weather"] if "weather" in book.code_ids and i >= 6 else [])


@pytest.fixture
def store(tmp_path: Path):
    old = load_codebook(SMALL)
    new = _edited(old)
    with make_workspace(tmp_path / "ws", old, {"doc": [f"turn {i}" for i in range(8)]}) as store:
        add_model(store, "clf-001", old, {s: ["carrot"] for s in SEGMENTS})
        for p, coder in enumerate(CODERS, 1):
            add_project(store, p, coder, old)
        # the first four segments coded in week 1 with the old codebook, the rest in week 3 with the new one
        for n, seg in enumerate(SEGMENTS):
            book, when = (old, "2026-01-05T10:00:00+00:00") if n < 4 else (new, "2026-01-19T10:00:00+00:00")
            for c, coder in enumerate(CODERS):
                add_annotation(
                    store, 100 * c + n, c + 1, seg, coder, _code(book, c, n), book, "clf-001", updated_at=when
                )
        with store.transaction():
            store.record_codebook(new)
        add_gold(store, {s: _code(new, 0, n) for n, s in enumerate(SEGMENTS)}, new)
        yield store, old, new


def _settings(store: Store) -> object:
    return load_settings(overrides={"agreement.bootstrap": 50, "workspace": str(store.workspace)})


def test_agreement_is_split_by_codebook_version(store) -> None:
    ws, old, new = store
    report = agreement_report(ws, _settings(ws), new, out_dir=None).report
    versions = report["codebook_versions"]
    assert [v["hash"] for v in versions] == [old.content_hash, new.content_hash]
    assert [v["n_items"] for v in versions] == [4, 4] and [v["annotations"] for v in versions] == [8, 8]
    assert set(versions[0]["codes"]) == {"carrot", "stick"}  # the old codebook had no weather
    assert set(versions[1]["codes"]) == {"carrot", "stick", "weather"}
    assert versions[1]["codes"]["carrot"]["krippendorff_alpha"] == pytest.approx(1.0)  # they agree from week 3
    assert versions[0]["codes"]["carrot"]["krippendorff_alpha"] < 1.0


def test_one_codebook_version_has_no_split(tmp_path: Path) -> None:
    book = load_codebook(SMALL)
    with make_workspace(tmp_path / "ws", book, {"doc": ["a", "b"]}) as ws:
        for p, coder in enumerate(CODERS, 1):
            add_project(ws, p, coder, book)
            add_annotation(ws, p, p, "doc-0", coder, ["carrot"], book)
        report = agreement_report(ws, _settings(ws), book, out_dir=None).report
    assert "codebook_versions" not in report


def test_the_history_names_what_each_version_changed(store) -> None:
    ws, old, new = store
    history = codebook_history(ws)
    assert [h["hash"] for h in history] == [old.content_hash, new.content_hash]
    assert history[0]["summary"] == "first version"
    assert history[1]["added"] == ["weather"] and history[1]["changed"] == {"stick": ["definition"]}
    assert history[1]["version"] == "2"


def test_drift_by_iso_week(store) -> None:
    ws, _, new = store
    weeks = coder_drift(ws, new.code_ids, batch_size=3)["weeks"]
    assert [w["week"] for w in weeks["bo@example.org"]] == ["2026-W02", "2026-W04"]
    first, later = weeks["bo@example.org"]
    assert first["segments"] == later["segments"] == 4
    assert first["gold_agreement"] < 1.0 and later["gold_agreement"] == 1.0  # bo's one slip was in week 2
    assert iso_week("2026-01-01T00:00:00+00:00") == "2026-W01" and iso_week(None) == "(no date)"
    png = base64.b64decode(plot_weeks({"weeks": weeks}))
    assert png.startswith(b"\x89PNG")


def test_the_appendix_shows_versions_weeks_and_dawid_skene_confusion(store, tmp_path: Path) -> None:
    ws, old, new = store
    settings = _settings(ws)
    adjudicate(ws, new, "dawid-skene")
    appendix = build_appendix(ws, settings, new, drift_batch=3).as_dict()
    blocks = {s["id"]: s["blocks"] for s in appendix["sections"]}
    tables = {sid: [b for b in bs if b["kind"] == "table"] for sid, bs in blocks.items()}
    history = next(t for t in tables["codebook"] if "codes added" in t["header"])
    assert [r[0] for r in history["rows"]] == [old.content_hash, new.content_hash] and history["rows"][1][
        4
    ] == "weather"
    assert any("codebook hash" in t["header"] and "Kripp. alpha" in t["header"] for t in tables["agreement"])
    confusion = next(t for t in tables["procedure"] if "sensitivity" in t["header"])
    assert {r[0] for r in confusion["rows"]} == {"carrot", "stick", "weather"}
    assert any(b["kind"] == "image" for b in blocks["drift"])
    paths = write_appendix(appendix, tmp_path / "out")
    assert paths["drift-weeks"].read_bytes().startswith(b"\x89PNG")
    assert "![" in paths["md"].read_text() and "drift-weeks.png" in paths["tex"].read_text()
    assert "data:image/png;base64," in paths["html"].read_text()


def test_a_code_the_new_codebook_drops_leaves_the_old_annotations_readable(tmp_path: Path) -> None:
    from pipeline.agreement.ratings import load_ratings
    from pipeline.errors import CultureCodeError

    old = load_codebook(SMALL)
    data = _edited(old).model_dump()
    data["codes"] = [c for c in data["codes"] if c["id"] != "stick"]
    new = Codebook.model_validate(data)
    with make_workspace(tmp_path / "ws", old, {"doc": ["a", "b"]}) as ws:
        add_project(ws, 1, CODERS[0], old)
        add_annotation(ws, 1, 1, "doc-0", CODERS[0], ["carrot", "stick"], old)
        with pytest.raises(CultureCodeError, match="stick"):
            load_ratings(ws, new)  # a codebook the workspace never recorded: refused, as before
        with ws.transaction():
            ws.record_codebook(new)  # what `recode` does
        ratings = load_ratings(ws, new)
        assert ratings.codes == ["carrot", "weather"] and ratings.labels[0, 0].tolist() == [True, False]
        adjudicate(ws, new, "majority")
