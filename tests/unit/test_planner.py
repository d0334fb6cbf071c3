"""The reliability-sampling planner: Krippendorff's published sample sizes, the `--json` contract,
progress during coding on a synthetic workspace, the stop rule and the choice of segments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.agreement import planner as pl
from pipeline.config import load_codebook
from pipeline.errors import CultureCodeError
from tests.factory import add_annotation, add_model, add_project, make_workspace

ANA, BO = "ana@example.org", "bo@example.org"

# Krippendorff (2019, ch. 12) as quoted in the ATLAS.ti inter-coder agreement manual ("Sample size and
# decision rules"): two coders, four equally likely values (smallest share 0.25), p = .05.
PUBLISHED = [(0.800, 0.05, 0.25, 139), (0.667, 0.05, 0.25, 81)]


@pytest.mark.parametrize(("alpha_min", "p", "share", "units"), PUBLISHED)
def test_published_cells(alpha_min, p, share, units):
    assert pl.required_units(pl.Target(alpha_min, p), share) == units


def test_rarer_values_higher_alpha_and_stricter_levels_need_more_units():
    base = pl.required_units(pl.Target(0.8, 0.05), 0.25)
    assert pl.required_units(pl.Target(0.8, 0.05), 0.1) > base
    assert pl.required_units(pl.Target(0.9, 0.05), 0.25) > base
    assert pl.required_units(pl.Target(0.8, 0.01), 0.25) > base
    assert pl.required_units(pl.Target(0.8, 0.05), 0.5) < base


def test_more_coders_keep_the_two_coder_figure():
    assert pl.required_units(pl.Target(0.8, 0.05, coders=4), 0.25) == 139


@pytest.mark.parametrize(
    ("target", "share", "words"),
    [
        (pl.Target(1.0), 0.25, "--alpha-min"),
        (pl.Target(0.8, 0.5), 0.25, "--significance"),
        (pl.Target(0.8, 0.05, 1), 0.25, "--coders"),
        (pl.Target(), 0.0, "smallest share"),
        (pl.Target(), 0.6, "smallest share"),
    ],
)
def test_impossible_inputs_are_refused(target, share, words):
    with pytest.raises(CultureCodeError, match=words):
        pl.required_units(target, share)


def test_json_contract_of_the_single_variable_form(cli):
    args = ["--alpha-min", "0.8", "--significance", "0.05", "--coders", "2", "--smallest-share", "0.25", "--json"]
    result = cli("plan", *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["units"] == 139
    assert {"alpha_min", "significance", "coders", "smallest_share"} <= set(data)


def test_single_variable_form_in_words(cli):
    result = cli("plan", "--alpha-min", "0.667", "--smallest-share", "0.25")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("81 units")


def test_a_bad_share_is_one_line_and_exit_2(cli):
    result = cli("plan", "--smallest-share", "0.7", "--json")
    assert result.exit_code == 2
    assert "smallest share 0.7" in result.stderr


# --------------------------------------------------------------------------- during coding


def _matrix(pairs: list[tuple[int, int]]) -> np.ndarray:
    """Two coders' 0/1 decisions on one code, one row per segment."""
    return np.array(pairs, dtype=np.float64)


def test_perfect_agreement_on_enough_segments_is_reached():
    x = _matrix([(1, 1)] * 45 + [(0, 0)] * 105)  # share .3: the formula plans 124 segments
    row = pl.code_progress(x, "c", pl.Target(), 500, 7, None)
    assert row.planned == 124 and row.double_coded == 150
    assert row.status == pl.REACHED and row.more_needed == 0
    assert row.lower_bound == pytest.approx(1.0)


def test_perfect_agreement_on_too_few_segments_needs_the_planned_rest():
    x = _matrix([(1, 1)] * 15 + [(0, 0)] * 35)
    row = pl.code_progress(x, "c", pl.Target(), 500, 7, None)
    assert row.status == pl.CONTINUE
    assert row.more_needed == row.planned - 50


def test_more_needed_brings_the_simulated_lower_bound_to_the_target():
    x = _matrix([(1, 1)] * 20 + [(1, 0)] * 3 + [(0, 1)] * 2 + [(0, 0)] * 55)  # alpha .846 on 80 segments
    target = pl.Target()
    row = pl.code_progress(x, "c", target, 500, 7, None)
    assert row.alpha is not None and row.alpha > target.alpha_min
    assert row.lower_bound < target.alpha_min and row.status == pl.CONTINUE
    counts = np.column_stack([(x == 0).sum(axis=1), (x == 1).sum(axis=1)]).astype(np.float64)
    total = row.double_coded + row.more_needed
    assert pl.lower_bound_at(counts, total, target.significance, 500, 7) >= target.alpha_min
    assert row.more_needed > row.planned - row.double_coded  # here the simulation, not the formula, sets it
    assert pl.lower_bound_at(counts, total - 1, target.significance, 500, 7) < target.alpha_min


def test_low_agreement_is_out_of_reach_by_more_coding():
    x = _matrix([(1, 1)] * 10 + [(1, 0)] * 10 + [(0, 1)] * 10 + [(0, 0)] * 70)
    row = pl.code_progress(x, "c", pl.Target(), 300, 7, None)
    assert row.status == pl.OUT_OF_REACH and row.more_needed is None
    assert "revise" in row.reason


def test_a_code_nobody_ticked_uses_the_expected_share():
    x = _matrix([(0, 0)] * 30)
    row = pl.code_progress(x, "c", pl.Target(), 300, 7, 0.25)
    assert row.status == pl.NO_DATA and row.alpha is None
    assert row.more_needed == 139 - 30


def _row(status: str, more: int | None) -> pl.CodeProgress:
    return pl.CodeProgress("c" + status[:2] + str(more), 10, 0.3, 0.9, None, 0.8, 100, more, status)


def test_stop_rule():
    target = pl.Target()
    stop, text = pl.stop_rule([_row(pl.REACHED, 0), _row(pl.REACHED, 0)], target)
    assert stop and text.startswith("stop: every code")
    stop, text = pl.stop_rule([_row(pl.REACHED, 0), _row(pl.CONTINUE, 40), _row(pl.CONTINUE, 12)], target)
    assert not stop and "40 more" in text
    stop, text = pl.stop_rule([_row(pl.REACHED, 0), _row(pl.OUT_OF_REACH, None)], target)
    assert stop and "revise" in text
    stop, text = pl.stop_rule([], target)
    assert not stop and "no segment is double-coded" in text


# --------------------------------------------------------------------------- a synthetic workspace


def _workspace(tmp_path, small_codebook, double_coded: int = 0, agree: bool = True):
    """200 segments; the model gives carrot to every 4th and stick to every 20th; ana and bo
    double-code the first `double_coded` of doc_a's and doc_b's segments."""
    book = load_codebook(small_codebook)
    texts = {f"doc_{d}": [f"turn {i} of {d}" for i in range(50)] for d in "abcd"}
    store = make_workspace(tmp_path / "ws", book, texts)
    ids = [f"doc_{d}-{i}" for d in "abcd" for i in range(50)]
    model = {s: [c for c, every in (("carrot", 4), ("stick", 20)) if n % every == 0] for n, s in enumerate(ids)}
    add_model(store, "v1", book, model)
    add_project(store, 1, ANA, book)
    add_project(store, 2, BO, book)
    for n, seg in enumerate(ids[:double_coded]):
        codes = model[seg]
        other = codes if agree or n % 3 else ["stick"]
        add_annotation(store, 2 * n + 1, 1, seg, ANA, codes, book)
        add_annotation(store, 2 * n + 2, 2, seg, BO, other, book)
    return store, book, ids, model


def test_plan_before_coding_from_the_model(tmp_path, small_codebook):
    store, book, _, _ = _workspace(tmp_path, small_codebook)
    plan = pl.reliability_plan(store, book, pl.Target(), min_share=0.1)
    by_code = {p.code: p for p in plan.codes}
    assert by_code["carrot"].share == pytest.approx(0.25) and by_code["carrot"].units == 139
    assert by_code["stick"].share == pytest.approx(0.05) and by_code["stick"].oversampled
    assert by_code["stick"].units == pl.required_units(pl.Target(), 0.05)
    assert plan.units_random_sampling == by_code["stick"].units
    assert plan.progress == [] and not plan.stop
    assert len(plan.selection.segment_ids) == min(plan.units, 200)


def test_given_shares_override_the_model(tmp_path, small_codebook):
    store, book, _, _ = _workspace(tmp_path, small_codebook)
    plan = pl.reliability_plan(store, book, pl.Target(), given={"stick": 0.5})
    stick = next(p for p in plan.codes if p.code == "stick")
    assert stick.source == "given" and stick.units == pl.required_units(pl.Target(), 0.5) and not stick.oversampled
    with pytest.raises(CultureCodeError, match="unknown code"):
        pl.reliability_plan(store, book, pl.Target(), given={"nope": 0.5})


def test_rare_codes_are_oversampled_by_model_score(tmp_path, small_codebook):
    store, book, _, model = _workspace(tmp_path, small_codebook)
    plan = pl.reliability_plan(store, book, pl.Target(), min_share=0.3, size=30)
    chosen = plan.selection.segment_ids
    with_stick = [s for s in chosen if "stick" in model[s]]
    assert len(chosen) == 30
    assert len(with_stick) == 10  # every segment the model gives stick; a random 30 of 200 holds 1.5
    assert plan.selection.oversampled["stick"] == 10
    again = pl.reliability_plan(store, book, pl.Target(), min_share=0.3, size=30)
    assert again.selection.segment_ids == chosen  # seeded


def test_progress_and_next_segments_during_coding(tmp_path, small_codebook):
    store, book, ids, _ = _workspace(tmp_path, small_codebook, double_coded=60)
    plan = pl.reliability_plan(store, book, pl.Target(), coder=BO)
    rows = {p.code: p for p in plan.progress}
    assert rows["carrot"].double_coded == 60 and rows["carrot"].alpha == pytest.approx(1.0)
    assert rows["carrot"].status == pl.CONTINUE and rows["carrot"].more_needed == 139 - 60
    assert not plan.stop and "more double-coded" in plan.stop_reason
    chosen = set(plan.selection.segment_ids)
    assert plan.selection.wanted == max(p.more_needed for p in plan.progress) == 560 - 60  # stick: 3 of 60
    assert len(chosen) == plan.selection.candidates == 200 - 60  # all the workspace has left
    assert not chosen & set(ids[:60])  # never a segment bo has coded already


def test_disagreement_makes_a_code_out_of_reach(tmp_path, small_codebook):
    store, book, _, _ = _workspace(tmp_path, small_codebook, double_coded=150, agree=False)
    plan = pl.reliability_plan(store, book, pl.Target(), bootstrap=300)
    stick = next(p for p in plan.progress if p.code == "stick")
    assert stick.status == pl.OUT_OF_REACH
    assert "stick" in plan.stop_reason


def test_plan_command_json_on_a_workspace_records_the_plan(tmp_path, small_codebook, cli):
    store, _, _, _ = _workspace(tmp_path, small_codebook, double_coded=60)
    store.close()
    common = ["--workspace", tmp_path / "ws", "--codebook", small_codebook]
    result = cli("plan", *common, "--coder", "bo@example.org", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["units"] == data["units_random_sampling"] or data["units"] < data["units_random_sampling"]
    assert {p["code"] for p in data["progress"]} == {"carrot", "stick"}
    shown = cli("plan", *common)
    assert shown.exit_code == 0 and "Double-coded so far" in shown.stdout and "Continue:" in shown.stdout
    from pipeline.store import Store

    with Store(tmp_path / "ws") as again:
        assert json.loads(again.get_meta("reliability_plan"))["stop"] is False


def test_push_without_a_coder_is_refused(tmp_path, small_codebook, cli):
    result = cli("plan", "--workspace", tmp_path / "ws", "--codebook", small_codebook, "--push")
    assert result.exit_code == 2 and "--coder" in result.stderr


# --------------------------------------------------------------------------- verdicts from the interval (issue 27)


def test_a_code_whose_interval_covers_the_target_continues_rather_than_out_of_reach():
    x = _matrix([(1, 1)] * 6 + [(1, 0)] * 1 + [(0, 1)] * 1 + [(0, 0)] * 12)  # alpha below .8 on 20 segments
    row = pl.code_progress(x, "c", pl.Target(), 300, 7, None)
    assert row.alpha is not None and row.alpha < 0.8 and row.ci is not None and row.ci[1] >= 0.8
    assert row.status == pl.CONTINUE and row.more_needed is None
    assert "covers it" in row.reason and "revise" not in row.reason


def test_out_of_reach_only_when_the_interval_lies_below_the_target():
    x = _matrix([(1, 1)] * 10 + [(1, 0)] * 10 + [(0, 1)] * 10 + [(0, 0)] * 70)
    row = pl.code_progress(x, "c", pl.Target(), 300, 7, None)
    assert row.status == pl.OUT_OF_REACH and row.ci[1] < 0.8


def test_stop_rule_keeps_coding_for_codes_with_no_projected_number():
    target = pl.Target()
    stop, text = pl.stop_rule([_row(pl.CONTINUE, 40), _row(pl.CONTINUE, None)], target)
    assert not stop and "40 more" in text and "no projected number for ccoNone" in text
    stop, text = pl.stop_rule([_row(pl.REACHED, 0), _row(pl.CONTINUE, None)], target)
    assert not stop and text.startswith("continue: keep double-coding for ccoNone")


def test_the_plan_made_before_coding_is_frozen_beside_the_latest(tmp_path, small_codebook):
    store, book, ids, model = _workspace(tmp_path, small_codebook)
    first = pl.reliability_plan(store, book, pl.Target(), {"carrot": 0.25, "stick": 0.05})
    pl.record_plan(store, first)
    frozen = json.loads(store.get_meta(pl.PRECODING_KEY))
    assert frozen["units"] == first.units and frozen["recorded_at"]
    for n, seg in enumerate(ids[:40]):  # coding starts; a later plan does not replace the pre-coding one
        add_annotation(store, 1000 + 2 * n, 1, seg, ANA, model[seg], book)
        add_annotation(store, 1001 + 2 * n, 2, seg, BO, model[seg], book)
    later = pl.reliability_plan(store, book, pl.Target(), {"carrot": 0.4, "stick": 0.4})
    pl.record_plan(store, later)
    assert json.loads(store.get_meta(pl.PRECODING_KEY)) == frozen
    assert json.loads(store.get_meta("reliability_plan"))["units"] == later.units != first.units
