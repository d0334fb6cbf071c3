"""`culturecode recode`: a codebook edit re-scores the segments with a labeller that reads the codebook; only the
segments whose codes flip are listed and queued for review, and both codebook versions stay in the history."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pipeline import studio
from pipeline.config import Codebook, load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.gold.recode import codebook_diff, recode
from pipeline.labellers import LabelContext, registry
from pipeline.labellers.run import run_labeller
from pipeline.store import Store
from pipeline.store.codebooks import codebook_versions
from pipeline.store.db import MIGRATIONS, _statements
from pipeline.store.models import current_model
from pipeline.store.predictions import PredictionRow
from tests.factory import add_model, make_workspace

TEXTS = {
    "doc": [
        "I got him a bed at the hostel.",  # carrot before and after
        "We searched his flat last night.",  # stick before; nothing after (search leaves stick's include)
        "He was recalled on Friday.",  # stick before and after
        "The weather was fine.",  # nothing before; the new code after
    ]
}


class IncludeLabeller:
    """A code applies when one of its include phrases is in the segment: its labels follow the codebook."""

    name = "include"
    kind = "include"

    def __init__(self, context: LabelContext):
        self.book = context.codebook
        self.version = f"inc-{self.book.content_hash[:8]}"

    def label(self, segments):
        rows = []
        for seg in segments:
            chosen = [c.id for c in self.book.codes if any(p in seg.text.lower() for p in c.include)]
            rows.append(
                PredictionRow(seg.id, self.version, {c: float(c in chosen) for c in self.book.code_ids}, chosen)
            )
        return rows


def _book(small_codebook, stick_include: list[str], extra_code: bool = False) -> Codebook:
    data = load_codebook(small_codebook).model_dump()
    data["codes"][0]["include"] = ["hostel"]
    data["codes"][1]["include"] = stick_include
    if extra_code:
        weather = {**data["codes"][0], "id": "weather", "name": "Weather", "include": ["weather"]}
        data["codes"].append(weather)
        data["version"] = "2"
    return Codebook.model_validate(data)


@pytest.fixture
def include():
    registry.register("include", f"{__name__}:IncludeLabeller")
    yield "include"
    registry.unregister("include")


@pytest.fixture
def books(small_codebook):
    return _book(small_codebook, ["arrest", "recall", "search"]), _book(small_codebook, ["arrest", "recall"], True)


@pytest.fixture
def workspace(tmp_path, books, include):
    old, _ = books
    store = make_workspace(tmp_path / "ws", old, TEXTS)
    settings = load_settings(None, {"workspace": str(tmp_path / "ws")})
    labeller = registry.create(include, LabelContext(store, settings, old, show_progress=False))
    run_labeller(labeller, store, old, show_progress=False)
    yield store, settings
    store.close()


def test_the_diff_names_added_removed_and_changed_codes(books):
    old, new = books
    diff = codebook_diff(old, new)
    assert diff.added == ["weather"] and diff.removed == [] and diff.changed == {"stick": ["include"]}
    back = codebook_diff(new, old)
    assert back.removed == ["weather"] and back.added == []
    assert (diff.old_version, diff.new_version) == ("1", "2")


def test_a_dry_run_lists_only_the_flipped_segments_and_changes_nothing(workspace, books, monkeypatch):
    store, settings = workspace
    old, new = books
    monkeypatch.setattr(studio, "push", lambda *a, **k: pytest.fail("a dry run pushed"))
    before_model = current_model(store, "include")
    report = recode(store, settings, new, "include", dry_run=True, show_progress=False)
    flips = {f.segment_id: (f.before, f.after) for f in report.flips}
    assert flips == {"doc-1": (["stick"], []), "doc-3": ([], ["weather"])}
    assert report.scored == 4 and report.as_dict()["unchanged"] == 2
    assert report.as_dict()["by_code"] == {"stick": {"gained": 0, "lost": 1}, "weather": {"gained": 1, "lost": 0}}
    assert store.codebook_hash == old.content_hash and current_model(store, "include") == before_model
    assert [v.hash for v in codebook_versions(store)] == [old.content_hash]


def test_recode_queues_only_the_flips_for_review_and_keeps_both_versions(workspace, books, monkeypatch):
    store, settings = workspace
    old, new = books
    calls = []
    monkeypatch.setattr(studio, "push", lambda *a, **k: calls.append(k) or {"imported": len(k["segment_ids"])})
    report = recode(store, settings, new, "include", adjudicator="rev@example.org", show_progress=False)
    assert len(calls) == 1 and calls[0]["role"] == "review" and calls[0]["annotators"] == ["rev@example.org"]
    assert sorted(calls[0]["segment_ids"]) == ["doc-1", "doc-3"] and calls[0]["model_version"] == report.model_after
    assert store.codebook_hash == new.content_hash and current_model(store, "include") == report.model_after
    history = {v.hash: v for v in codebook_versions(store)}
    assert set(history) == {old.content_hash, new.content_hash}
    assert "weather" in history[new.content_hash].yaml and "weather" not in history[old.content_hash].yaml
    again = recode(store, settings, new, "include", show_progress=False)
    assert again.flips == [] and "unchanged" in again.message


def test_the_classifier_says_it_cannot_express_a_new_code_and_suggests_retrain(tmp_path, books):
    old, new = books
    with make_workspace(tmp_path / "ws", old, TEXTS) as store:
        add_model(store, "clf-001", old, {"doc-0": ["carrot"]})
        settings = load_settings(None, {"workspace": str(tmp_path / "ws")})
        with pytest.raises(CultureCodeError, match="cannot express the new code.*weather.*--retrain"):
            recode(store, settings, new, "classifier", show_progress=False)
        assert store.codebook_hash == old.content_hash


def test_the_cli_dry_run_prints_the_flips_as_json(cli, tmp_path, workspace, books):
    store, settings = workspace
    _, new = books
    path = tmp_path / "edited.yaml"
    path.write_text(json.dumps(new.model_dump()), encoding="utf-8")  # JSON is YAML
    store.close()
    result = cli("recode", "--with", "include", "--dry-run", "--json", "-w", settings.workspace, "--codebook", path)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["flipped"] == 2 and data["dry_run"] and data["codebook"]["added"] == ["weather"]
    assert {f["segment_id"] for f in data["flips"]} == {"doc-1", "doc-3"}
    shown = cli("recode", "--with", "include", "--dry-run", "-w", settings.workspace, "--codebook", path)
    assert shown.exit_code == 0 and "doc-3" in shown.stdout and "weather +1/-0" in shown.stdout
    assert "2 of 4 segment(s) flip" in " ".join(shown.stdout.split())


def test_the_migration_records_the_codebook_of_an_older_workspace(tmp_path, books):
    old, _ = books
    make_workspace(tmp_path / "ws", old, TEXTS).close()
    script = next(m for m in MIGRATIONS if "CREATE TABLE codebook_versions" in m)
    conn = sqlite3.connect(tmp_path / "ws" / "culturecode.db")
    conn.execute("DROP TABLE codebook_versions")  # as before the migration, when only meta held the codebook
    for statement in _statements(script):
        conn.execute(statement)
    conn.commit()
    conn.close()
    with Store(tmp_path / "ws") as store:
        versions = codebook_versions(store)
    assert [(v.hash, v.version) for v in versions] == [(old.content_hash, "1")]
    assert Codebook.model_validate(json.loads(versions[0].yaml)).content_hash == old.content_hash


class RelabelLabeller(IncludeLabeller):
    """Like an LLM: one version whatever the codebook, every selected segment labelled again on each run."""

    relabel = True

    def __init__(self, context: LabelContext):
        super().__init__(context)
        self.version = "inc"


@pytest.fixture
def relabel_workspace(tmp_path, books):
    old, _ = books
    registry.register("relabel", f"{__name__}:RelabelLabeller")
    store = make_workspace(tmp_path / "ws", old, TEXTS)
    settings = load_settings(None, {"workspace": str(tmp_path / "ws")})
    run_labeller(registry.create("relabel", LabelContext(store, settings, old)), store, old, show_progress=False)
    yield store, settings
    store.close()
    registry.unregister("relabel")


def _stored(store: Store, version: str) -> dict[str, tuple[list[str], str]]:
    rows = store.conn.execute(
        "SELECT segment_id, codes, codebook_hash FROM predictions WHERE model_version = ?", (version,)
    )
    return {r[0]: (json.loads(r[1]), r[2]) for r in rows}


def test_a_labeller_that_keeps_its_version_is_reprompted_and_a_dry_run_puts_its_answers_back(relabel_workspace, books):
    store, settings = relabel_workspace
    old, new = books
    stored = _stored(store, "inc")
    dry = recode(store, settings, new, "relabel", dry_run=True, show_progress=False)
    assert {f.segment_id for f in dry.flips} == {"doc-1", "doc-3"} and dry.model_before == dry.model_after == "inc"
    assert _stored(store, "inc") == stored  # the answers to the old codebook, under its hash
    monkey = pytest.MonkeyPatch()
    monkey.setattr(studio, "push", lambda *a, **k: {"imported": len(k["segment_ids"])})
    try:
        real = recode(store, settings, new, "relabel", show_progress=False)
    finally:
        monkey.undo()
    assert real.pushed == {"imported": 2}
    assert {seg: hash_ for seg, (_, hash_) in _stored(store, "inc").items()} == dict.fromkeys(stored, new.content_hash)


def _fake_training(monkeypatch) -> list[tuple[str, bool]]:
    """Training replaced by a model that follows each codebook's include phrases (with a directory of its own);
    returns the list of (codebook hash, promoted) of each training."""
    import pipeline.gold.recode as module
    from pipeline.store.models import model_versions, register_model

    trained: list[tuple[str, bool]] = []

    def fake_retrain(store, settings, book, promote, show_progress):
        version = f"clf-{len(model_versions(store, 'classifier')) + 1:03d}"
        trained.append((book.content_hash, promote))
        folder = store.workspace / "models" / version
        folder.mkdir(parents=True)
        with store.transaction():  # the row keeps this path when add_model registers it again
            register_model(store, version, "classifier", folder, book.content_hash, {})
        labeller = IncludeLabeller(LabelContext(store, settings, book))
        add_model(
            store,
            version,
            book,
            {r.segment_id: r.codes for r in labeller.label(store.segments())},
            current=promote,
            code_ids=book.code_ids,
        )
        return version

    monkeypatch.setattr(module, "_retrain", fake_retrain)
    monkeypatch.setattr(module, "_rescore", lambda *a, **k: a[4])
    monkeypatch.setattr(studio, "push", lambda *a, **k: {"imported": len(k["segment_ids"])})
    return trained


def test_retrain_compares_two_classifiers_trained_on_the_same_gold(workspace, books, monkeypatch):
    """The wiring of --retrain, with training replaced by a model that follows each codebook's include phrases."""
    store, settings = workspace
    old, new = books
    add_model(store, "clf-001", old, {"doc-0": ["carrot"]})  # trained on other labels: not the baseline
    trained = _fake_training(monkeypatch)
    report = recode(store, settings, new, "classifier", retrain=True, show_progress=False)
    assert trained == [(old.content_hash, False), (new.content_hash, True)]
    assert (report.model_before, report.model_after) == ("clf-002", "clf-003") and report.retrained
    # the two new classifiers score every segment (clf-001 had scored one): doc-1 loses stick, doc-3 gains weather
    assert report.scored == 4 and {f.segment_id for f in report.flips} == {"doc-1", "doc-3"}
    assert current_model(store, "classifier") == "clf-003" and store.codebook_hash == new.content_hash
    assert (store.workspace / "models" / "clf-002").is_dir() and (store.workspace / "models" / "clf-003").is_dir()


def test_a_retrain_dry_run_reports_the_flips_and_leaves_no_model_behind(workspace, books, monkeypatch):
    from pipeline.store.models import forget_model, model_versions
    from pipeline.store.predictions import count_predictions

    store, settings = workspace
    old, new = books
    add_model(store, "clf-001", old, {"doc-0": ["carrot"]})
    trained = _fake_training(monkeypatch)
    report = recode(store, settings, new, "classifier", retrain=True, dry_run=True, show_progress=False)
    assert trained == [(old.content_hash, False), (new.content_hash, False)]
    assert {f.segment_id for f in report.flips} == {"doc-1", "doc-3"} and report.pushed is None
    assert "the two trial classifiers were discarded" in report.message
    assert model_versions(store, "classifier") == ["clf-001"] and current_model(store, "classifier") == "clf-001"
    assert count_predictions(store, "clf-002") == count_predictions(store, "clf-003") == 0
    assert count_predictions(store, "clf-001") == 1 and store.codebook_hash == old.content_hash
    assert (
        not (store.workspace / "models" / "clf-002").exists() and not (store.workspace / "models" / "clf-003").exists()
    )
    with pytest.raises(ValueError, match="current model"), store.transaction():
        forget_model(store, "clf-001")
    # the real run after it numbers its models as if the dry run had not happened
    real = recode(store, settings, new, "classifier", retrain=True, show_progress=False)
    assert (real.model_before, real.model_after) == ("clf-002", "clf-003") and real.flips == report.flips


def test_a_failed_push_is_retried_by_running_the_same_recode_again(workspace, books, monkeypatch):
    store, settings = workspace
    _, new = books

    def unreachable(*args, **kwargs):
        raise CultureCodeError("cannot reach Label Studio")

    monkeypatch.setattr(studio, "push", unreachable)
    with pytest.raises(CultureCodeError, match="cannot reach"):
        recode(store, settings, new, "include", show_progress=False)
    assert store.codebook_hash == new.content_hash  # the new predictions and codebook stay
    calls = []
    monkeypatch.setattr(studio, "push", lambda *a, **k: calls.append(k) or {"imported": len(k["segment_ids"])})
    again = recode(store, settings, new, "include", show_progress=False)
    assert [sorted(c["segment_ids"]) for c in calls] == [["doc-1", "doc-3"]] and len(again.flips) == 2
    assert "previous recode" in again.message
    last = recode(store, settings, new, "include", show_progress=False)
    assert last.flips == [] and "unchanged" in last.message and len(calls) == 1
