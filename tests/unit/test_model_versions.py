"""Model versions on disk stay bounded (issue 26 #2: every retrain stored a new 524 MB version, even with nothing new
labelled; eight retrains left 4.5 GB). `prune_versions` removes only versions nothing uses, oldest first, keeping the
newest `keep`; `culturecode models prune` does it by hand and lists why each kept version stays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.classifier.data import Example
from pipeline.classifier.versions import prune_versions, same_training, training_fingerprint
from pipeline.config import ClassifierSettings
from pipeline.store import Store
from pipeline.store.annotations import record_tasks
from pipeline.store.models import get_model, promote_model, register_model, set_model_metric
from pipeline.store.predictions import PredictionRow, write_predictions
from tests.factory import add_annotation, add_documents, add_project, make_workspace
from tests.unit.test_classifier_helpers import codebook, examples

URL = "http://studio.test"


def _version(store: Store, version: str, where: Path | None = None) -> Path:
    folder = where or store.workspace / "models" / version
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * 1000)
    with store.transaction():
        register_model(store, version, "classifier", folder, codebook().content_hash, {}, promote=False)
    return folder


@pytest.fixture
def versions(tmp_path):
    """clf-001 current; clf-002 promoted once; clf-003 named by a pushed task; clf-004 annotated against; clf-005
    with stored predictions; clf-006 with its files outside the workspace; clf-007 .. clf-010 used by nothing."""
    book = codebook()
    store = make_workspace(tmp_path / "ws", book)
    (seg, *_) = add_documents(store, {"doc": ["One.", "Two."]})
    folders = {}
    for n in range(1, 11):
        version = f"clf-{n:03d}"
        folders[version] = _version(store, version, tmp_path / "elsewhere" / version if n == 6 else None)
    with store.transaction():
        promote_model(store, "clf-002", "classifier")
        promote_model(store, "clf-001", "classifier")
        record_tasks(store, URL, 1, [(7, seg.id, "clf-003")])
        write_predictions(store, [PredictionRow(seg.id, "clf-005", {"carrot": 0.9}, ["carrot"])], book.content_hash)
    add_project(store, 1, "alice", book, url=URL)
    add_annotation(store, 1, 1, seg.id, "alice", ["carrot"], book, version="clf-004", url=URL, task_id=7)
    yield store, folders
    store.close()


def test_prune_removes_only_unused_versions_beyond_the_newest_kept(versions):
    store, folders = versions
    dry = prune_versions(store, keep=2, dry_run=True)
    assert [r["version"] for r in dry.removed] == ["clf-007", "clf-008"] and folders["clf-007"].is_dir()

    report = prune_versions(store, keep=2)
    assert [r["version"] for r in report.removed] == ["clf-007", "clf-008"]
    assert report.freed_bytes == 2000 and "removed 2 unpromoted version(s)" in report.message()
    assert not folders["clf-007"].exists() and not folders["clf-008"].exists()
    assert get_model(store, "clf-007") is None and get_model(store, "clf-009") is not None
    reasons = {r["version"]: " ".join(r["reasons"]) for r in report.kept}
    assert reasons["clf-001"] == "current" and reasons["clf-002"].startswith("promoted at")
    assert "Label Studio task" in reasons["clf-003"] and "annotation(s) made against it" in reasons["clf-004"]
    assert "stored prediction" in reasons["clf-005"] and "outside" in reasons["clf-006"]
    assert reasons["clf-009"] == reasons["clf-010"] == "among the newest 2 unused"
    for version in ("clf-001", "clf-002", "clf-003", "clf-004", "clf-005", "clf-006", "clf-009", "clf-010"):
        assert folders[version].is_dir(), version

    assert [r["version"] for r in prune_versions(store, keep=0).removed] == ["clf-009", "clf-010"]
    assert prune_versions(store, keep=0).removed == []


def test_models_prune_command(cli, versions):
    store, folders = versions
    common = ["--workspace", store.workspace]
    shown = cli("models", "prune", "--dry-run", "--keep", "3", *common)
    assert shown.exit_code == 0, shown.output
    assert "Would remove: clf-007" in shown.stdout and folders["clf-007"].is_dir()
    done = json.loads(cli("models", "prune", "--keep", "3", "--json", *common).stdout)
    assert [r["version"] for r in done["removed"]] == ["clf-007"] and done["freed_bytes"] == 1000
    assert not folders["clf-007"].exists()


def test_the_fingerprint_changes_with_any_input_and_finds_the_version_trained_on_it(versions):
    store, _ = versions
    book, cfg = codebook(), ClassifierSettings(base_model="minilm")
    rows = [Example(f"s{i}", r["text"], r["codes"], r["document"]) for i, r in enumerate(examples())]
    first = training_fingerprint(rows, None, cfg, book)
    assert first == training_fingerprint(list(rows), None, cfg, book)
    changed = [Example(rows[0].key, rows[0].text, ["stick"], rows[0].document), *rows[1:]]
    others = [
        training_fingerprint(changed, None, cfg, book),
        training_fingerprint(rows[1:], None, cfg, book),
        training_fingerprint(rows, rows[:1], cfg, book),
        training_fingerprint(rows, None, ClassifierSettings(base_model="minilm", seed=1), book),
    ]
    assert first not in others and len(set(others)) == len(others)
    assert same_training(store, first) is None
    with store.transaction():
        set_model_metric(store, "clf-009", "training_input", first)
    assert same_training(store, first) == "clf-009"
