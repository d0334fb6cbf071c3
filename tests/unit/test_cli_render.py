"""The one render layer: `--json` writes the same object the tables are drawn from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from pipeline.commands.render import Column, as_data, print_result, print_table


@dataclass
class Inner:
    code: str
    score: float | None


@dataclass
class Result:
    version: str
    path: Path
    rows: list[Inner] = field(default_factory=list)


@dataclass
class WithAsDict:
    scored: int
    seconds: float

    def as_dict(self) -> dict:
        return {"scored": self.scored, "per_second": self.scored / self.seconds}


class Model(BaseModel):
    name: str
    path: Path


def test_as_data_turns_results_into_plain_data():
    result = Result("clf-001", Path("models/clf-001"), [Inner("carrot", 0.5), Inner("stick", None)])
    assert as_data(result) == {
        "version": "clf-001",
        "path": "models/clf-001",
        "rows": [{"code": "carrot", "score": 0.5}, {"code": "stick", "score": None}],
    }
    assert as_data(WithAsDict(10, 2.0)) == {"scored": 10, "per_second": 5.0}  # a result's own as_dict() wins
    assert as_data(Model(name="x", path=Path("a/b"))) == {"name": "x", "path": "a/b"}
    assert as_data({"items": (Inner("a", 1.0),), "n": 3}) == {"items": [{"code": "a", "score": 1.0}], "n": 3}


def test_json_and_tables_show_the_same_object(capsys):
    result = Result("clf-002", Path("m"), [Inner("carrot", 0.25)])
    shown = []
    print_result(result, False, shown.append)
    print_result(result, True, shown.append)
    assert len(shown) == 1  # --json does not draw tables
    assert json.loads(capsys.readouterr().out) == shown[0]


def test_print_table_formats_cells(capsys):
    rows = [{"code": "carrot", "f1": 0.4567, "kappa": None}, {"code": "stick", "f1": 1, "kappa": 0.5}]
    print_table(
        rows,
        [
            "code",
            Column("F1", "f1", fmt=".2f"),
            Column("kappa", fmt=".1f", missing="n/a"),
            Column("upper", lambda r: r["code"].upper()),
        ],
        title="Scores",
    )
    text = capsys.readouterr().out
    assert "Scores" in text and "0.46" in text and "1.00" in text and "n/a" in text and "0.5" in text
    assert "CARROT" in text and "STICK" in text
