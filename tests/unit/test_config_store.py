"""Codebook and settings validation, the store's schema, migrations and transactions."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from pipeline.config import DEFAULT_CODEBOOK, load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.store import MIGRATIONS, Document, Segment, Store

CODEBOOK_IDS = [
    "mission",
    "action_excitement",
    "violence",
    "us_them",
    "solidarity_isolation",
    "suspicion",
    "cynicism",
    "prejudice",
    "conservatism",
    "machismo",
    "authority",
    "surveillance",
    "intelligence",
    "enforcement",
    "welfare",
]


def test_default_codebook_has_the_fixed_15_codes_with_rich_text():
    book = load_codebook(DEFAULT_CODEBOOK)
    assert book.code_ids == CODEBOOK_IDS
    for code in book.codes:
        assert len(code.examples) >= 2 and code.include and code.exclude and code.hint, code.id
        assert len(code.hint) <= 120


def _codebook_file(tmp_path: Path, small_codebook: Path, mutate) -> Path:
    data = yaml.safe_load(small_codebook.read_text())
    mutate(data)
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "mutate,expect",
    [
        (lambda d: d["codes"][1].update(id="carrot"), "code 'carrot': field 'id' is duplicated"),
        (lambda d: d["codes"][1].pop("hint"), "code 'stick' (codes[1]): field 'hint' is required"),
        (lambda d: d["codes"][0].update(examples=[]), "code 'carrot' (codes[0]): field 'examples'"),
        (lambda d: d["codes"][0].update(id="Bad Id"), "codes[0]): field 'id'"),
        (lambda d: d["codes"].pop(), "field 'codes'"),
        (lambda d: d["codes"][0].update(colour="red"), "field 'colour'"),
    ],
)
def test_broken_codebook_names_file_code_and_field(tmp_path, small_codebook, mutate, expect):
    path = _codebook_file(tmp_path, small_codebook, mutate)
    with pytest.raises(CultureCodeError) as info:
        load_codebook(path)
    assert str(path) in str(info.value) and expect in str(info.value)


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "book.yaml"
    path.write_text("id: x\ncodes:\n  - id: [unclosed\n")
    with pytest.raises(CultureCodeError, match=r"book.yaml: line \d+ is not valid YAML"):
        load_codebook(path)


def test_codebook_of_200_codes_works_and_hash_tracks_content(tmp_path, small_codebook):
    def many(d):
        template = d["codes"][0]
        d["codes"] = [{**template, "id": f"c{i}"} for i in range(200)]

    big = load_codebook(_codebook_file(tmp_path, small_codebook, many))
    assert len(big.code_ids) == 200
    base = load_codebook(small_codebook)
    changed = load_codebook(_codebook_file(tmp_path, small_codebook, lambda d: d["codes"][0].update(hint="new")))
    assert base.content_hash == load_codebook(small_codebook).content_hash
    assert base.content_hash != changed.content_hash


def test_settings_flags_override_file_and_errors_name_field(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("workspace: from_file\ningest:\n  max_segment_chars: 300\n")
    settings = load_settings(path, {"ingest.max_segment_chars": 900, "studio.port": None})
    assert settings.workspace == "from_file" and settings.ingest.max_segment_chars == 900
    path.write_text("ingest:\n  max_segment_chars: 3\n")
    with pytest.raises(CultureCodeError, match="field 'ingest.max_segment_chars'"):
        load_settings(path)
    path.write_text("studio:\n  prot: 1\n")
    with pytest.raises(CultureCodeError, match="field 'studio.prot' is not a known setting"):
        load_settings(path)


def test_config_show_prints_effective_settings(cli):
    result = cli("config", "show", "--json", "--workspace", "elsewhere")
    data = json.loads(result.stdout)
    assert data["workspace"] == "elsewhere" and "classifier" in data and "studio" in data


def test_store_schema_wal_foreign_keys(tmp_path):
    store = Store(tmp_path / "ws")
    assert store.schema_version == len(MIGRATIONS)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"documents", "segments", "predictions", "tasks", "annotations", "gold", "runs", "models"} <= tables


def test_store_migrates_an_older_database(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    conn = sqlite3.connect(ws / "culturecode.db")
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.close()
    assert Store(ws).schema_version == len(MIGRATIONS)


def test_store_refuses_a_newer_database(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    sqlite3.connect(ws / "culturecode.db").execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    with pytest.raises(CultureCodeError, match="newer culturecode"):
        Store(ws)


def test_transaction_rolls_back_on_error(tmp_path):
    store = Store(tmp_path / "ws")
    doc = Document(id="d", source_path="d.txt", format="txt", content_hash="h")
    with pytest.raises(RuntimeError), store.transaction():
        store.put_document(doc, [Segment(id="s1", document_id="d", position=0, text="x")])
        raise RuntimeError("killed")
    assert store.count("documents") == 0 and store.count("segments") == 0
