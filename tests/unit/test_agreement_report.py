"""The agreement report and commands on a workspace with three annotators, and on --input files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.agreement import agreement_from_file, agreement_report, disagreements
from pipeline.agreement import coefficients as co
from pipeline.agreement.ratings import Record, from_records
from pipeline.agreement.report import compute_agreement
from pipeline.cli import app
from pipeline.config import load_codebook, load_settings
from tests.factory import add_annotation
from tests.unit.test_agreement_workspace import ANNOTATORS, HOSTILE, SMALL_CODEBOOK, build_workspace

runner = CliRunner()
CODE_KEYS = {
    "percent_agreement",
    "cohen_kappa_mean",
    "fleiss_kappa",
    "krippendorff_alpha",
    "gwet_ac1",
    "krippendorff_alpha_ci",
    "undefined_reason",
}


def strict_json(text: str) -> dict:
    """JSON that must not contain NaN or Infinity."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def settings(bootstrap: int = 200):
    return load_settings(overrides={"agreement.bootstrap": bootstrap, "codebook": str(SMALL_CODEBOOK)})


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    build_workspace(tmp_path / "ws").close()
    return tmp_path / "ws"


def run(*args: str) -> object:
    return runner.invoke(app, [*args, "--codebook", str(SMALL_CODEBOOK)])


def test_report_figures_match_the_coefficients(workspace: Path) -> None:
    from pipeline.store import Store

    with Store(workspace) as store:
        result = agreement_report(store, settings(), load_codebook(SMALL_CODEBOOK), out_dir=None)
    report = result.report
    assert report["n_items"] == 18 and report["n_annotators"] == 3
    carrot = report["codes"]["carrot"]
    assert set(carrot) >= CODE_KEYS
    # recompute from the builder's decisions, independently of the report code
    from tests.unit.test_agreement_workspace import DECISIONS

    matrix = np.array(
        [[np.nan if d is None else float("carrot" in d) for d in row] for rows in DECISIONS.values() for row in rows]
    )
    assert carrot["krippendorff_alpha"] == pytest.approx(co.krippendorff_alpha(matrix, 2).value)
    assert carrot["fleiss_kappa"] == pytest.approx(co.fleiss_kappa(matrix, 2).value)
    lo, hi = carrot["krippendorff_alpha_ci"]
    assert lo <= carrot["krippendorff_alpha"] <= hi
    assert carrot["n_pairable_values"] == 52 and carrot["n_units"] == 18
    assert set(carrot["cohen_kappa_pairs"]) == {
        f"{a} | {b}" for i, a in enumerate(ANNOTATORS) for b in ANNOTATORS[i + 1 :]
    }
    assert carrot["interpretation"]["krippendorff_alpha"] == co.alpha_band(carrot["krippendorff_alpha"])
    assert report["overall"]["alpha_masi"] is not None and report["overall"]["exact_match"] is not None
    assert "v1" in report["models"] and report["models"]["v1"]["n_items"] == 18
    assert list(report["rounds"]) == ["v1"]
    assert report["disagreements"][0]["item"] == "doc_b-4" and report["disagreements"][0]["text"] == HOSTILE
    assert "carrot" in report["summary"]["text"]


def test_bootstrap_is_reproducible_and_seeded(workspace: Path) -> None:
    from pipeline.store import Store

    with Store(workspace) as store:
        book = load_codebook(SMALL_CODEBOOK)
        a = agreement_report(store, settings(), book, out_dir=None).report["codes"]["stick"]["krippendorff_alpha_ci"]
        b = agreement_report(store, settings(), book, out_dir=None).report["codes"]["stick"]["krippendorff_alpha_ci"]
        other = load_settings(overrides={"agreement.bootstrap": 200, "agreement.seed": 99})
        c = agreement_report(store, other, book, out_dir=None).report["codes"]["stick"]["krippendorff_alpha_ci"]
    assert a == b and a != c


def test_cli_json_shape_and_files(workspace: Path) -> None:
    result = run("agreement", "-w", str(workspace), "--bootstrap", "100", "--json")
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert {"n_items", "n_annotators", "codes", "overall"} <= set(data)
    assert set(data["codes"]) == {"carrot", "stick"}
    for stats in data["codes"].values():
        assert set(stats) >= CODE_KEYS
    assert {"alpha_masi", "alpha_jaccard", "exact_match"} <= set(data["overall"])
    for ext in ("html", "md", "json"):
        path = Path(data["paths"][ext])
        assert path.parent == workspace / "reports" and path.name.startswith("agreement-")
    html = Path(data["paths"]["html"]).read_text()
    assert HOSTILE not in html and "&lt;script&gt;window.__pwned" in html
    assert html.count("data:image/png;base64,") >= 3 and 'src="http' not in html
    assert (
        strict_json(Path(data["paths"]["json"]).read_text())["codes"]["carrot"]["fleiss_kappa"]
        == data["codes"]["carrot"]["fleiss_kappa"]
    )


def test_cli_table_and_filters(workspace: Path) -> None:
    result = run(
        "agreement", "-w", str(workspace), "--bootstrap", "0", "--codes", "stick", "--out", str(workspace / "out")
    )
    assert result.exit_code == 0, result.output
    assert "stick" in result.output and "carrot" not in result.output.split("Whole label set")[0]
    assert (workspace / "out").is_dir()
    single = run("agreement", "-w", str(workspace), "--annotators", ANNOTATORS[0], "--json", "--bootstrap", "0")
    data = strict_json(single.stdout)
    assert data["n_annotators"] == 1
    for stats in data["codes"].values():
        assert stats["krippendorff_alpha"] is None and stats["fleiss_kappa"] is None
        assert "only one annotator" in stats["undefined_reason"]
    docs = strict_json(
        run("agreement", "-w", str(workspace), "--documents", "doc_c", "--json", "--bootstrap", "0").stdout
    )
    assert docs["n_items"] == 6
    bad = run("agreement", "-w", str(workspace), "--codes", "nonsense")
    assert bad.exit_code == 2 and "nonsense" in bad.stderr


def test_unused_code_is_undefined_not_nan(tmp_path: Path) -> None:
    from tests.unit.test_agreement_workspace import DECISIONS

    no_stick = {
        doc: [tuple(None if c is None else ["carrot"] if "stick" in c else c for c in row) for row in rows]
        for doc, rows in DECISIONS.items()
    }
    with build_workspace(tmp_path / "ws", decisions=no_stick) as store:
        report = agreement_report(store, settings(0), load_codebook(SMALL_CODEBOOK), out_dir=None).report
    stick = report["codes"]["stick"]
    for key in ("krippendorff_alpha", "fleiss_kappa", "cohen_kappa_mean"):
        assert stick[key] is None
        assert "only one category ('absent')" in stick["undefined_reasons"][key]
    assert stick["percent_agreement"] == 1.0 and stick["krippendorff_alpha_ci"] is None
    assert "stick" in report["summary"]["undefined"]


def test_no_annotations_is_a_user_error(tmp_path: Path) -> None:
    from pipeline.store import Store

    Store(tmp_path / "empty").close()
    result = run("agreement", "-w", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "culturecode pull" in result.stderr


def test_disagreements_most_contested_first(workspace: Path) -> None:
    from pipeline.store import Store

    with Store(workspace) as store:
        rows = disagreements(store, load_codebook(SMALL_CODEBOOK))
    assert rows[0]["item"] == "doc_b-4" and rows[0]["split_votes"] == {"carrot": 2, "stick": 2}
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert "doc_a-0" not in {r["item"] for r in rows}  # unanimous
    result = run("disagreements", "-w", str(workspace), "-n", "3", "--json")
    data = strict_json(result.stdout)
    assert len(data["disagreements"]) == 3 and data["pushed"] is None
    table = run("disagreements", "-w", str(workspace), "-n", "2")
    assert "<script>" in table.output  # plain terminal text, shown as written


# --------------------------------------------------------------------------- --input files


def test_input_csv_with_codebook(tmp_path: Path) -> None:
    path = tmp_path / "nvivo.csv"
    path.write_text(
        "item,annotator,codes\n"
        + "".join(
            f"s{i},{a},{c}\n"
            for i, row in enumerate(
                [
                    ("carrot", "carrot", "carrot;stick"),
                    ("", "", ""),
                    ("stick", "stick", "stick"),
                    ("carrot", "", "carrot"),
                ]
            )
            for a, c in zip("xyz", row, strict=True)
        )
    )
    result = run("agreement", "--input", str(path), "--json", "--bootstrap", "50", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["n_items"] == 4 and data["n_annotators"] == 3
    assert (tmp_path / "r").is_dir()
    path.write_text("item,annotator,codes\ns1,x,carrot;pizza\n")
    bad = run("agreement", "--input", str(path))
    assert bad.exit_code == 2 and "pizza" in bad.stderr and "nvivo.csv:2" in bad.stderr


def test_input_jsonl_single_choice_codes_from_data(tmp_path: Path) -> None:
    rows = [
        ("u1", ["a"], ["a"], ["a"]),
        ("u2", ["b"], ["b"], ["c"]),
        ("u3", ["c"], ["c"], ["c"]),
        ("u4", ["a"], ["b"], ["a"]),
        ("u5", [], [], []),
    ]
    path = tmp_path / "sheet.jsonl"
    path.write_text(
        "".join(
            json.dumps({"item": item, "annotator": who, "codes": codes}) + "\n"
            for item, *codes_by in rows
            for who, codes in zip(("p", "q", "r"), codes_by, strict=True)
        )
    )
    result = agreement_from_file(path, settings(0), None, single_choice=True)
    report = result.report
    assert set(report["codes"]) == {"a", "b", "c"}
    overall = report["overall"]
    for key in ("krippendorff_alpha_nominal", "fleiss_kappa", "cohen_kappa_mean", "gwet_ac1", "percent_agreement"):
        assert overall[key] is not None, key
    x = np.array([[0, 0, 0], [1, 1, 2], [2, 2, 2], [0, 1, 0], [3, 3, 3]], dtype=float)  # 3 = no code
    assert overall["krippendorff_alpha_nominal"] == pytest.approx(co.krippendorff_alpha(x, 4).value)
    assert overall["gwet_ac1"] == pytest.approx(co.gwet_ac1(x, 4).value)
    path.write_text(json.dumps({"item": "u1", "annotator": "p", "codes": ["a", "b"]}) + "\n")
    with pytest.raises(Exception, match="single-choice"):
        agreement_from_file(path, settings(0), None, single_choice=True)


def test_single_choice_multi_category_over_records() -> None:
    recs = [
        Record(f"i{i}", a, [c])
        for i, row in enumerate([("x", "x"), ("y", "y"), ("x", "y"), ("z", "z")])
        for a, c in zip(("p", "q"), row, strict=True)
    ]
    report = compute_agreement(from_records(recs, ["x", "y", "z"], single_choice=True), bootstrap=0)
    assert report["overall"]["cohen_kappa_mean"] == pytest.approx(
        co.cohen_kappa(np.array([0.0, 1, 0, 2]), np.array([0.0, 1, 1, 2]), 3).value
    )
    assert report["overall"]["percent_agreement"] == pytest.approx(0.75)


def test_input_file_errors(tmp_path: Path) -> None:
    missing = run("agreement", "--input", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "not found" in missing.stderr
    (tmp_path / "x.csv").write_text("item,who,codes\n1,a,b\n")
    wrong = run("agreement", "--input", str(tmp_path / "x.csv"))
    assert wrong.exit_code == 2 and "'annotator'" in wrong.stderr


def test_single_choice_workspace(tmp_path: Path) -> None:
    import yaml

    from pipeline.store import Store

    raw = yaml.safe_load(SMALL_CODEBOOK.read_text())
    raw["single_choice"] = True
    book_path = tmp_path / "single.yaml"
    book_path.write_text(yaml.safe_dump(raw))
    decisions = {
        "d1": [
            (["carrot"], ["carrot"], ["carrot"]),
            (["stick"], ["stick"], ["carrot"]),
            ([], [], []),
            (["stick"], ["stick"], ["stick"]),
        ]
    }
    build_workspace(tmp_path / "ws", book_path, decisions=decisions).close()
    result = runner.invoke(
        app, ["agreement", "-w", str(tmp_path / "ws"), "--codebook", str(book_path), "--json", "--bootstrap", "0"]
    )
    assert result.exit_code == 0, result.output
    overall = strict_json(result.stdout)["overall"]
    x = np.array([[0, 0, 0], [1, 1, 0], [2, 2, 2], [1, 1, 1]], dtype=float)  # 2 = no code
    assert overall["krippendorff_alpha_nominal"] == pytest.approx(co.krippendorff_alpha(x, 3).value)
    assert overall["fleiss_kappa"] == pytest.approx(co.fleiss_kappa(x, 3).value)
    with Store(tmp_path / "ws") as store:  # annotation 1 edited to two codes
        add_annotation(store, 1, 1, "d1-0", ANNOTATORS[0], ["carrot", "stick"], store.codebook_hash, "v1")
    bad = runner.invoke(app, ["agreement", "-w", str(tmp_path / "ws"), "--codebook", str(book_path)])
    assert bad.exit_code == 2 and "single-choice" in bad.stderr


def test_since_filter_from_the_cli(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    build_workspace(workspace, edited_at={"doc_c": "2026-05-01T09:00:00+00:00"}).close()
    data = strict_json(
        run("agreement", "-w", str(workspace), "--since", "2026-04-30", "--json", "--bootstrap", "0").stdout
    )
    assert data["n_items"] == 6 and data["filters"]["since"] == "2026-04-30"
