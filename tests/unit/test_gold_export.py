"""Export: DatasetDict on disk (loads back with the same rows), flat files, dataset card."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from datasets import load_from_disk
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_codebook, load_settings
from pipeline.gold import adjudicate, export
from pipeline.gold.export import split_documents
from pipeline.store import Store
from tests.unit.test_agreement_workspace import ANNOTATORS, HOSTILE, SMALL_CODEBOOK, build_workspace

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path):
    with build_workspace(tmp_path / "ws") as s:
        adjudicate(s, load_codebook(SMALL_CODEBOOK))
        yield s


def settings():
    return load_settings(overrides={"agreement.bootstrap": 50, "codebook": str(SMALL_CODEBOOK)})


def test_export_loads_back_with_the_same_rows(store: Store, tmp_path: Path) -> None:
    book = load_codebook(SMALL_CODEBOOK)
    report = export(store, settings(), book, out_dir=tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "gold.jsonl").read_text().splitlines()]
    assert report.rows == len(rows) == 18
    dd = load_from_disk(str(tmp_path / "out" / "hf"))
    assert set(dd) == {"train", "validation", "test"}
    loaded = sorted((r for split in dd.values() for r in split), key=lambda r: r["id"])
    assert loaded == sorted(rows, key=lambda r: r["id"])
    hostile = next(r for r in rows if r["id"] == "doc_b-4")
    assert hostile["text"] == HOSTILE  # stored as written; escaping is the viewer's job


def test_columns_pseudonyms_and_prelabel_changes(store: Store, tmp_path: Path) -> None:
    export(store, settings(), load_codebook(SMALL_CODEBOOK), ["jsonl"], tmp_path / "out")
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "gold.jsonl").read_text().splitlines())}
    row = rows["doc_a-1"]  # gold stick; the pre-label (ana's choice) was stick
    assert row["gold_codes"] == ["stick"] and row["gold_code_names"] == ["Stick"] and row["labels"] == [0, 1]
    assert row["speaker"] == "Officer" and row["document"] == "doc_a" and row["n_annotators"] == 3
    assert row["agreement"] == pytest.approx(2 / 3) and row["exact_agreement"] == pytest.approx(1 / 3)
    names = {a["annotator"] for a in row["annotations"]}
    assert names == {"annotator_1", "annotator_2", "annotator_3"}
    assert sorted(a["changed_prelabel"] for a in row["annotations"]) == [False, False, True]
    assert {a["prelabel_version"] for a in row["annotations"]} == {"v1"} and row["prelabel_version"] == "v1"
    text = (tmp_path / "out" / "gold.jsonl").read_text()
    assert not any(a in text for a in ANNOTATORS)
    assert rows["doc_a-4"]["n_annotators"] == 2


def test_keep_annotator_ids_and_flat_files(store: Store, tmp_path: Path) -> None:
    report = export(
        store, settings(), load_codebook(SMALL_CODEBOOK), ["csv", "parquet"], tmp_path / "o", keep_annotator_ids=True
    )
    assert set(report.files) == {"csv", "parquet", "card"}
    csv = pd.read_csv(tmp_path / "o" / "gold.csv")
    parquet = pd.read_parquet(tmp_path / "o" / "gold.parquet")
    assert len(csv) == len(parquet) == 18
    annotations = json.loads(csv.loc[csv["id"] == "doc_a-0", "annotations"].item())
    assert {a["annotator"] for a in annotations} == set(ANNOTATORS)
    assert list(parquet.loc[parquet["id"] == "doc_a-0", "gold_codes"].item()) == ["carrot"]


def test_split_is_by_document(store: Store, tmp_path: Path) -> None:
    export(store, settings(), load_codebook(SMALL_CODEBOOK), ["jsonl"], tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "gold.jsonl").read_text().splitlines()]
    by_doc: dict[str, set[str]] = {}
    for r in rows:
        by_doc.setdefault(r["document"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_doc.values())
    assert {s for v in by_doc.values() for s in v} == {"train", "validation", "test"}
    docs = [f"d{i}" for i in range(20)]
    split = split_documents(docs, 0.1, 0.2, seed=7)
    assert split == split_documents(list(reversed(docs)), 0.1, 0.2, seed=7)
    assert sorted(split.values()).count("test") == 4 and sorted(split.values()).count("validation") == 2
    assert split_documents(["only"], 0.1, 0.2, seed=7) == {"only": "train"}


def test_dataset_card(store: Store, tmp_path: Path) -> None:
    export(store, settings(), load_codebook(SMALL_CODEBOOK), ["jsonl"], tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| carrot | Carrot |" in card and "| stick | Stick |" in card
    assert "Krippendorff's alpha with MASI distance" in card and "majority (18 segments)" in card
    assert "pseudonymised" in card and "v1" in card


def test_export_needs_gold(tmp_path: Path) -> None:
    build_workspace(tmp_path / "ws").close()
    result = runner.invoke(app, ["export", "-w", str(tmp_path / "ws"), "--codebook", str(SMALL_CODEBOOK)])
    assert result.exit_code == 2 and "culturecode adjudicate" in result.stderr


def test_cli_export_default_location(store: Store) -> None:
    ws = str(store.workspace)
    result = runner.invoke(app, ["export", "-w", ws, "--codebook", str(SMALL_CODEBOOK), "-f", "hf", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Path(data["out_dir"]).parent == store.workspace / "exports"
    assert load_from_disk(data["files"]["hf"])["train"].num_rows == data["splits"]["train"]
    again = runner.invoke(app, ["export", "-w", ws, "--codebook", str(SMALL_CODEBOOK), "-f", "hf", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["splits"] == data["splits"]
    bad = runner.invoke(app, ["export", "-w", ws, "--codebook", str(SMALL_CODEBOOK), "-f", "xlsx"])
    assert bad.exit_code == 2 and "xlsx" in bad.stderr
