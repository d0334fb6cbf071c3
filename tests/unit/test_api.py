"""pipeline.api.Workspace: the notebook's surface reads what the commands compute, and imports labels without
Label Studio (a model version here is a registered directory with its JSON files: no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.api import Workspace
from pipeline.errors import CultureCodeError
from pipeline.store.models import register_model

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "codebook_small.yaml"
TEXTS = ["I got him a bed at the hostel.", "One more breach and he is recalled.", "It rained.", "We booked detox."]


def rows(codes: list[list[str]], document: str = "doc_a") -> list[dict]:
    return [
        {"text": t, "document": document, "speaker": "PC" if i % 2 else "R", "codes": c}
        for i, (t, c) in enumerate(zip(TEXTS, codes, strict=True))
    ]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = Workspace.create(tmp_path / "ws", codebook=SMALL)
    ws.import_labelled(rows([["carrot"], ["stick"], [], ["carrot"]]), annotator="alice")
    ws.import_labelled(rows([["carrot"], ["stick"], ["stick"], []]), annotator="bob")
    return ws


def test_labels_from_elsewhere_become_segments_and_annotations(ws: Workspace) -> None:
    assert ws.segments()["text"].tolist() == TEXTS
    annotations = ws.annotations()
    assert sorted(annotations["annotator"].unique()) == ["alice", "bob"] and len(annotations) == 8
    again = ws.import_labelled(rows([["carrot"], ["stick"], [], ["carrot"]]), annotator="alice")  # idempotent
    assert (again.documents_added, again.segments_added, again.annotations) == (0, 0, 4)
    assert len(ws.annotations()) == 8 and len(ws.segments()) == 4


def test_import_refuses_unknown_codes_and_turns_a_document_lacks(ws: Workspace) -> None:
    with pytest.raises(CultureCodeError, match="unknown code"):
        ws.import_labelled(rows([["carrot"], ["nope"], [], []], document="doc_b"), annotator="carol")
    strange = [{"text": "A turn doc_a never had.", "document": "doc_a", "codes": []}]
    with pytest.raises(CultureCodeError, match="without the turn"):
        ws.import_labelled(strange, annotator="carol")
    assert len(ws.segments()) == 4  # nothing of the failed imports was kept


def test_agreement_is_the_commands_report(ws: Workspace, cli) -> None:
    agreement = ws.agreement(bootstrap=50, seed=3)
    result = cli("agreement", "-w", ws.path, "--codebook", SMALL, "--bootstrap", "50", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert agreement.per_code.loc["carrot", "krippendorff_alpha"] == printed["codes"]["carrot"]["krippendorff_alpha"]
    assert agreement.per_code.loc["carrot", "alpha_ci_low"] == printed["codes"]["carrot"]["krippendorff_alpha_ci"][0]
    assert list(agreement.overall.index) == ["alpha_masi", "alpha_jaccard", "exact_match"]
    assert agreement.pairwise_kappa.shape == (2, 2) and agreement.paths == {}
    assert agreement.plot().axes[0].get_yticklabels()[0].get_text() == "carrot"


def test_gold_as_dataframe_and_dataset(ws: Workspace) -> None:
    with pytest.raises(CultureCodeError, match="adjudicate"):
        ws.gold()
    ws.adjudicate()
    gold = ws.gold()
    assert gold.set_index("text").loc[TEXTS[0], "gold_codes"] == ["carrot"]
    dataset = ws.gold_dataset()
    assert dataset.num_rows == 4 and dataset.features["labels"].feature.dtype == "int8"
    with pytest.raises(CultureCodeError, match="split"):
        ws.gold_dataset(split="dev")


def test_model_version_and_figures(ws: Workspace) -> None:
    assert ws.model_version is None
    with pytest.raises(CultureCodeError, match="no classifier"):
        ws.model()
    folder = ws.path / "models" / "clf-001"
    folder.mkdir(parents=True)
    manifest = {"codes": ["carrot", "stick"], "thresholds": [0.4, 0.55], "method": "head", "base_model": "minilm"}
    per_code = {c: {"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 2} for c in ("carrot", "stick")}
    (folder / "classifier.json").write_text(json.dumps(manifest))
    (folder / "metrics.json").write_text(json.dumps({"test": {"micro_f1": 0.7, "macro_f1": 0.6, "per_code": per_code}}))
    with ws.store(write="test") as store, store.transaction():
        register_model(store, "clf-001", "classifier", folder, ws.codebook.content_hash, {}, promote=True)
    model = ws.model()
    assert (ws.model_version, model.version, model.is_current, model.method) == ("clf-001", "clf-001", True, "head")
    assert model.micro_f1 == 0.7 and model.thresholds == {"carrot": 0.4, "stick": 0.55}
    assert model.per_code.loc["stick", "threshold"] == 0.55 and model.per_code.loc["carrot", "f1"] == 0.667


def test_opening_a_folder_that_is_no_workspace_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(CultureCodeError, match="Workspace.create"):
        Workspace(tmp_path)
