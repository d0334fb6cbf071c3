"""Selection strategies (`culturecode next`): each one's order and explanation, read from stored scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import load_codebook
from pipeline.errors import CultureCodeError
from pipeline.learning import Pick, available, next_segments, register, unregister
from tests import factory

BOOK = load_codebook(Path(__file__).parents[1] / "fixtures" / "codebook_small.yaml")
ANA = "ana@example.org"

# segments already labelled: (scores, codes the annotator chose)
LABELLED = {
    "d-0": ({"carrot": 0.9, "stick": 0.1, "machismo": 0.1}, ["carrot"]),
    "d-1": ({"carrot": 0.1, "stick": 0.9, "machismo": 0.1}, ["stick"]),
    "d-2": ({"carrot": 0.9, "stick": 0.9, "machismo": 0.1}, ["carrot", "stick"]),
}
# nobody has annotated these
OPEN = {
    "d-3": {"carrot": 0.52, "stick": 0.1, "machismo": 0.05},  # a close call on carrot
    "d-4": {"carrot": 0.9, "stick": 0.8, "machismo": 0.1},
    "d-5": {"carrot": 0.1, "stick": 0.1, "machismo": 0.7},  # the rare code
    "d-6": {"carrot": 0.3, "stick": 0.4, "machismo": 0.2},
    "d-7": {"carrot": 0.95, "stick": 0.05, "machismo": 0.02},
}


def make(tmp_path: Path, labelled=LABELLED, open_=OPEN, path: Path | None = None):
    segments = sorted({*labelled, *open_}, key=lambda s: int(s.split("-")[1]))
    texts = [f"Turn {seg}: the officer talks about the shift." for seg in segments]
    store = factory.make_workspace(tmp_path / "ws", BOOK, {"d": texts})
    scores = {seg: s for seg, (s, _) in labelled.items()} | dict(open_)
    factory.add_scores(store, "v1", BOOK, scores, path=path)
    factory.add_project(store, 1, ANA, BOOK)
    for i, (seg, (_, codes)) in enumerate(labelled.items(), start=1):
        factory.add_annotation(store, i, 1, seg, ANA, codes, BOOK)
    return store


def ids(picks: list[Pick]) -> list[str]:
    return [p.segment_id for p in picks]


def test_the_built_in_strategies_are_installed_as_entry_points() -> None:
    assert {"uncertainty", "rare", "diversity", "random"} <= set(available())


def test_uncertainty_puts_the_closest_call_first_and_says_by_how_much(tmp_path: Path) -> None:
    report = next_segments(make(tmp_path), "uncertainty", n=10)
    assert ids(report.picks) == ["d-3", "d-6", "d-5", "d-4", "d-7"]  # |score - 0.5|: .02, .1, .2, .3, .45
    first = report.picks[0]
    assert (first.rank, first.code, first.score, first.threshold) == (1, "carrot", 0.52, 0.5)
    assert first.margin == pytest.approx(0.02)
    assert "carrot scored 0.52, 0.02 above its threshold 0.50" in first.reason
    assert report.picks[1].margin == pytest.approx(-0.1) and "below" in report.picks[1].reason
    assert first.text.startswith("Turn d-3") and first.document_id == "d"
    assert report.candidates == 5 and report.unscored == 0


def test_uncertainty_uses_the_thresholds_the_classifier_stored(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    manifest = {"codes": ["carrot", "stick", "machismo"], "thresholds": [0.9, 0.5, 0.5]}
    (model_dir / "classifier.json").write_text(json.dumps(manifest))
    report = next_segments(make(tmp_path, path=model_dir), "uncertainty", n=1)
    (first,) = report.picks
    assert (first.segment_id, first.code, first.threshold) == ("d-4", "carrot", 0.9)  # 0.9 sits on its threshold
    assert first.margin == pytest.approx(0.0)


def test_rare_surfaces_the_segment_scored_high_for_the_code_nobody_has_labelled(tmp_path: Path) -> None:
    report = next_segments(make(tmp_path), "rare", n=2)
    assert report.label_counts == {"carrot": 2, "stick": 2, "machismo": 0} and report.counts_from == "annotations"
    first = report.picks[0]
    assert (first.segment_id, first.code, first.score, first.labels_so_far) == ("d-5", "machismo", 0.7, 0)
    assert "machismo is rare (0 label(s) so far)" in first.reason
    assert ids(report.picks) == ["d-5", "d-6"]  # the next best bet for machismo (0.2)


def test_rare_takes_turns_between_the_rarest_codes(tmp_path: Path) -> None:
    labelled = {
        f"d-{i}": ({"a": 0.1, "b": 0.1, "c": 0.9, "d": 0.1, "e": 0.1, "f": 0.1}, ["c"]) for i in range(4)
    }  # c has 4 labels, the other five none: the rarest third (2 codes) widens to every code tied at 0
    open_ = {f"d-{i}": {k: (0.8 if k == "abdef"[i - 4] else 0.2) for k in "abcdef"} for i in range(4, 9)}
    report = next_segments(make(tmp_path, labelled, open_), "rare", n=5)
    assert [p.code for p in report.picks] == ["a", "b", "d", "e", "f"]
    assert ids(report.picks) == ["d-4", "d-5", "d-6", "d-7", "d-8"]


def test_diversity_covers_the_score_space_and_names_each_cluster(tmp_path: Path) -> None:
    open_ = {
        "d-3": {"carrot": 0.9, "stick": 0.1, "machismo": 0.12},  # like labelled d-0
        "d-4": {"carrot": 0.1, "stick": 0.1, "machismo": 0.9},  # far from every labelled segment
        "d-5": {"carrot": 0.1, "stick": 0.1, "machismo": 0.88},  # a near twin of d-4
        "d-6": {"carrot": 0.5, "stick": 0.5, "machismo": 0.5},
    }
    report = next_segments(make(tmp_path, open_=open_), "diversity", n=2)
    assert ids(report.picks) == ["d-4", "d-6"]  # not d-4's twin
    first = report.picks[0]
    assert (first.cluster, first.code) == (0, "machismo")
    assert sum(p.cluster_size or 0 for p in report.picks) == 4 and first.cluster_size == 2  # d-4 and its twin
    assert "farthest from everything labelled or picked before" in first.reason
    assert first.priority > report.picks[1].priority


def test_random_is_a_seeded_draw_of_unannotated_segments(tmp_path: Path) -> None:
    store = make(tmp_path)
    one, again = next_segments(store, "random", n=3, seed=7), next_segments(store, "random", n=3, seed=7)
    assert ids(one.picks) == ids(again.picks) and set(ids(one.picks)) <= set(OPEN)
    assert len(set(ids(one.picks))) == 3 and "random draw (seed 7)" in one.picks[0].reason
    every = {tuple(ids(next_segments(store, "random", n=5, seed=s).picks)) for s in range(5)}
    assert len(every) > 1  # the seed changes the order


def test_a_plugin_strategy_registers_like_an_installed_one(tmp_path: Path) -> None:
    register("last", lambda pool, n: [Pick(c.segment_id, 0.0, "the last one") for c in pool.candidates[::-1][:n]])
    try:
        assert "last" in available()
        assert ids(next_segments(make(tmp_path), "last", n=2).picks) == ["d-7", "d-6"]
    finally:
        unregister("last")
    assert "last" not in available()


def test_unknown_strategy_lists_the_installed_ones(tmp_path: Path, cli) -> None:
    make(tmp_path).close()
    result = cli("next", "--workspace", tmp_path / "ws", "--strategy", "oracle")
    assert result.exit_code == 2
    assert "--strategy 'oracle': no strategy of that name is installed" in result.stderr
    assert "installed: anchor, auto, diversity, hybrid, random, rare, typical, uncertainty" in result.stderr


def test_next_without_predictions_says_what_to_run(tmp_path: Path) -> None:
    store = factory.make_workspace(tmp_path / "ws", BOOK, {"d": ["one", "two"]})
    with pytest.raises(CultureCodeError, match="culturecode prelabel"):
        next_segments(store, "uncertainty")


def test_cli_next_json_and_table_show_the_same_picks(tmp_path: Path, cli) -> None:
    make(tmp_path).close()
    result = cli("next", "--workspace", tmp_path / "ws", "--strategy", "rare", "--n", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [p["segment_id"] for p in data["picks"]] == ["d-5", "d-6"] and data["model_version"] == "v1"
    assert data["picks"][0]["rank"] == 1 and data["picks"][0]["labels_so_far"] == 0
    table = cli("next", "--workspace", tmp_path / "ws", "--strategy", "rare", "--n", "2")
    assert table.exit_code == 0 and "machismo is rare" in table.stdout and "Next 2 of 5" in table.stdout
