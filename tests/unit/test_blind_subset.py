"""The anchoring check: the blind subset (stable, the right size, never pre-labelled) and the report's
blind-against-assisted section on a workspace where assisted annotators copy the model."""

from __future__ import annotations

import importlib
import random
from types import SimpleNamespace

import pytest

from pipeline.agreement import agreement_report
from pipeline.agreement import anchoring as anchoring_module
from pipeline.agreement.anchoring import NEVER_TICKED, anchoring_check
from pipeline.agreement.ratings import load_ratings, model_labels
from pipeline.config import load_codebook, load_settings
from pipeline.errors import CultureCodeError
from pipeline.store.annotations import task_streams
from pipeline.store.blind import (
    BlindSubset,
    blind_subset,
    last_blind_fraction,
    pushed_blind_subset,
    record_blind_fraction,
    workspace_salt,
)
from pipeline.studio.projects import ProjectRef
from tests.factory import SERVER, add_annotation, add_model, add_project, add_scores, make_workspace

push_module = importlib.import_module("pipeline.studio.push")  # `pipeline.studio.push` is also the function
IDS = [f"doc{d}-{p}" for d in range(20) for p in range(100)]


# --------------------------------------------------------------------------- the subset


def test_the_subset_depends_only_on_salt_fraction_and_id():
    a, b = BlindSubset("salt-1", 0.1), BlindSubset("salt-1", 0.1)
    assert a.pick(IDS) == b.pick(IDS) == [i for i in IDS if i in a]
    assert a.pick(reversed(IDS)) == list(reversed(a.pick(IDS)))  # membership, not position, decides
    assert BlindSubset("salt-2", 0.1).pick(IDS) != a.pick(IDS)


def test_the_subset_has_about_the_asked_size_and_grows_monotonically():
    small, large = BlindSubset("s", 0.1), BlindSubset("s", 0.3)
    n_small, n_large = len(small.pick(IDS)), len(large.pick(IDS))
    # binomial(2000, p): 4 standard deviations either side
    assert abs(n_small - 200) < 4 * (2000 * 0.1 * 0.9) ** 0.5
    assert abs(n_large - 600) < 4 * (2000 * 0.3 * 0.7) ** 0.5
    assert set(small.pick(IDS)) <= set(large.pick(IDS))
    assert BlindSubset("s", 0.0).pick(IDS) == [] and BlindSubset("s", 1.0).pick(IDS) == IDS


def test_the_workspace_keeps_its_salt_and_the_fractions_pushed(tmp_path, small_codebook):
    book = load_codebook(small_codebook)
    store = make_workspace(tmp_path / "ws", book)
    assert pushed_blind_subset(store) is None and blind_subset(store).fraction == 0
    first = blind_subset(store, 0.2)
    assert blind_subset(store, 0.2).pick(IDS) == first.pick(IDS)  # the same salt on a second call
    with store.transaction():
        record_blind_fraction(store, SERVER, 1, 0.2)
        record_blind_fraction(store, SERVER, 2, 0.1)
    store.close()
    reopened = make_workspace(tmp_path / "ws", book)
    assert workspace_salt(reopened) == first.salt
    assert last_blind_fraction(reopened) == 0.2
    assert pushed_blind_subset(reopened) == BlindSubset(first.salt, 0.2)
    assert blind_subset(reopened).pick(IDS) == first.pick(IDS)  # no fraction given: the one pushed
    other = make_workspace(tmp_path / "other", book)
    assert blind_subset(other, 0.2).pick(IDS) != first.pick(IDS)  # each workspace draws its own salt


# --------------------------------------------------------------------------- push payloads


class _FakeStudio:
    """Just enough of `Studio` for a push into a new project: records every imported task."""

    url = SERVER
    retried = 0

    def __init__(self):
        self.imported: list[dict] = []
        self.sdk = SimpleNamespace(
            projects=SimpleNamespace(import_tasks=self._import, update=lambda *a, **k: None),
            views=SimpleNamespace(list=lambda **k: [], create=lambda **k: None),  # the label stream's tabs
        )

    def call(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def _import(self, project_id, request, return_task_ids):
        start = len(self.imported)
        self.imported += request
        return SimpleNamespace(task_ids=list(range(start + 1, start + 1 + len(request))))


def test_blind_tasks_carry_no_predictions_and_no_model_text(tmp_path, small_codebook, monkeypatch):
    book = load_codebook(small_codebook)
    docs = {f"doc{d}": [f"Turn {t} of {d}." for t in range(20)] for d in range(3)}
    store = make_workspace(tmp_path / "ws", book, docs)
    segments = [s.id for s in store.segments()]
    add_model(store, "v1", book, {s: ["carrot"] for s in segments}, rationale="it mentions a reward")
    studio = _FakeStudio()
    monkeypatch.setattr(push_module, "connect", lambda settings: studio)
    monkeypatch.setattr(
        push_module, "ensure_project", lambda *a: ProjectRef(7, "p", "annotation", None, True, False, False)
    )
    settings = load_settings(
        overrides={"workspace": str(tmp_path / "ws"), "admission.enabled": False, "studio.blind_fraction": 0.3}
    )
    report = push_module.push(store, settings, book, show_progress=False)

    blind = blind_subset(store)
    assert blind.fraction == 0.3
    expected = blind.pick(segments)
    assert 0 < len(expected) < len(segments)
    assert report.blind_segments == len(expected) == report.projects[0].blind
    for task in studio.imported:
        if task["data"]["segment_id"] in blind:
            assert "predictions" not in task
            assert task["data"]["rationale"] == "" and task["data"]["prediction_version"] == ""
        else:
            assert task["predictions"][0]["result"][0]["value"]["choices"] == ["carrot"]
            assert "it mentions a reward" in task["data"]["rationale"]
    assert len(studio.imported) == len(segments)
    run = store.last_runs(1)[0]
    assert run["summary"]["blind"] == {"fraction": 0.3, "segments": len(expected)}
    assert pushed_blind_subset(store) == blind
    # every task carries its place in the label stream; the ledger records its stream and inclusion probability
    assert all(task["data"]["stream_order"] for task in studio.imported)
    streams = {t["segment_id"]: t for t in task_streams(store)}
    for seg in segments:
        row = streams[seg]
        if seg in blind:
            assert (row["stream"], row["inclusion_probability"]) == ("blind", 0.3)
        else:
            assert (row["stream"], row["inclusion_probability"]) == ("uncertainty", None)


def test_blind_and_audit_tasks_are_met_early_and_throughout_a_model_ordered_stream(
    tmp_path, small_codebook, monkeypatch
):
    """Issue 27: under `uncertainty` sampling (the default) blind tasks have no score, yet the stream's sort key puts
    one blind or audit task in each equal stretch of the stream, so an annotator who codes a few meets some."""
    book = load_codebook(small_codebook)
    docs = {f"doc{d}": [f"Turn {t} of {d}." for t in range(50)] for d in range(6)}
    store = make_workspace(tmp_path / "ws", book, docs)
    rng = random.Random(5)
    segments = [s.id for s in store.segments()]
    scores = {s: {"carrot": rng.random(), "stick": 0.02} for s in segments}
    add_scores(store, "v1", book, scores)
    studio = _FakeStudio()
    monkeypatch.setattr(push_module, "connect", lambda settings: studio)
    monkeypatch.setattr(
        push_module, "ensure_project", lambda *a: ProjectRef(7, "p", "annotation", None, True, False, False)
    )
    overrides = {"studio.blind_fraction": 0.1, "studio.audit_fraction": 0.1, "admission.enabled": False}
    settings = load_settings(overrides={"workspace": str(tmp_path / "ws"), **overrides})
    report = push_module.push(store, settings, book, show_progress=False)
    assert report.blind_segments > 0 and report.audit_segments > 0 and "random positions" in report.order_rule

    streams = {t["segment_id"]: t for t in task_streams(store)}
    served = [t["data"]["segment_id"] for t in sorted(studio.imported, key=lambda t: t["data"]["stream_order"])]
    random_at = [i for i, seg in enumerate(served) if streams[seg]["stream"] in ("blind", "audit")]
    stretch = len(served) / len(random_at)
    assert random_at[0] < stretch + 1  # met within the first stretch, not after every pre-labelled task
    for j, position in enumerate(random_at):  # one in each equal stretch of the stream
        assert j * stretch - 1 <= position <= (j + 1) * stretch + 1
    modelled = [seg for seg in served if streams[seg]["stream"] == "uncertainty"]
    certainty = {s: min(max(p, 1 - p) for p in scores[s].values()) for s in segments}
    assert modelled == sorted(modelled, key=certainty.get)  # the rest: least certain first
    probabilities = {streams[seg]["stream"]: streams[seg]["inclusion_probability"] for seg in served}
    assert probabilities == {"blind": 0.1, "audit": pytest.approx(0.09), "uncertainty": None}


def test_push_states_the_order_rule_whatever_the_sampling(tmp_path, small_codebook, monkeypatch, capsys):
    from pipeline.commands.studio import _show_push

    book = load_codebook(small_codebook)
    store = make_workspace(tmp_path / "ws", book, {"doc0": [f"Turn {t}." for t in range(40)]})
    add_model(store, "v1", book, {s.id: ["carrot"] for s in store.segments()})
    monkeypatch.setattr(push_module, "connect", lambda settings: _FakeStudio())
    monkeypatch.setattr(
        push_module, "ensure_project", lambda *a: ProjectRef(7, "p", "annotation", None, True, False, False)
    )
    shown = {}
    for sampling in ("uncertainty", "sequential"):
        settings = load_settings(
            overrides={"workspace": str(tmp_path / "ws"), "studio.blind_fraction": 0.3, "studio.sampling": sampling}
        )
        report = push_module.push(store, settings, book, show_progress=False)
        assert report.blind_segments > 0
        _show_push(report.as_dict())
        shown[sampling] = capsys.readouterr().out
    for sampling, out in shown.items():
        assert "spread through each annotator's label stream at random positions" in out
        assert f"studio.sampling ({sampling})" in out
        assert "come after" not in out


# --------------------------------------------------------------------------- the report


ANNOTATORS = ["ana@example.org", "bo@example.org"]


def _anchored_workspace(tmp_path, small_codebook):
    """200 segments; the model ticks carrot on 60% of them, the truth has it on 20%. On assisted segments
    both annotators keep the model's ticks; on blind ones they code the truth, each missing 1 in 20."""
    book = load_codebook(small_codebook)
    rng = random.Random(3)
    docs = {f"doc{d}": [f"Turn {t} of interview {d}." for t in range(20)] for d in range(10)}
    store = make_workspace(tmp_path / "ws", book, docs)
    segments = [s.id for s in store.segments()]
    truth = {s: rng.random() < 0.2 for s in segments}
    model = {s: ["carrot"] if truth[s] or rng.random() < 0.5 else [] for s in segments}
    add_model(store, "v1", book, model)
    blind = blind_subset(store, 0.4)
    with store.transaction():
        for project in (1, 2):
            record_blind_fraction(store, SERVER, project, 0.4)
    n = 0
    for project, who in enumerate(ANNOTATORS, start=1):
        add_project(store, project, who, book)
        for seg in segments:
            n += 1
            if seg in blind:
                slip = rng.random() < 0.05
                codes = ["carrot"] if truth[seg] != slip else []
                add_annotation(store, n, project, seg, who, codes, book, version=None)
            else:
                add_annotation(store, n, project, seg, who, model[seg], book, version="v1")
    return store, book, blind


def test_the_report_shows_that_assisted_annotators_follow_the_model(tmp_path, small_codebook):
    store, book, blind = _anchored_workspace(tmp_path, small_codebook)
    settings = load_settings(overrides={"workspace": str(tmp_path / "ws"), "agreement.bootstrap": 300})
    result = agreement_report(store, settings, book, out_dir=tmp_path / "reports")
    check = result.report["anchoring"]
    assert check["blind_fraction"] == 0.4 and check["model_version"] == "v1"
    n_blind = len(blind.pick(s.id for s in store.segments()))
    assert check["groups"]["blind"] == {"n_items": n_blind, "n_annotations": 2 * n_blind}
    assert check["left_out"] == {"blind_with_prelabels": 0, "unassisted_outside_blind": 0}
    carrot = check["codes"]["carrot"]
    rate, kappa = carrot["positive_rate"], carrot["model_kappa"]
    assert rate["assisted"]["value"] > rate["blind"]["value"] + 0.2
    assert kappa["assisted"]["value"] == 1.0 and kappa["blind"]["value"] < 0.6
    for stat in (rate, kappa):
        low, high = stat["difference"]["ci"]
        assert high < 0 and stat["difference"]["excludes_zero"]
        assert low <= stat["difference"]["value"] <= high
        b_low, b_high = stat["blind"]["ci"]
        assert b_low <= stat["blind"]["value"] <= b_high
    assert "carrot" in check["shifted"]
    assert {"code": "carrot", "figure": "model_kappa", "direction": "assisted higher"}.items() <= next(
        s for s in check["shifts"] if s["code"] == "carrot" and s["figure"] == "model_kappa"
    ).items()
    assert carrot["model_kappa"]["difference"]["p_adjusted"] < 0.05 and "Holm" in check["multiplicity"]
    # no audit stream: the assisted segments were the model's choice, and the note says so (not "random parts")
    assert check["assisted_sample"] == "model-ordered stream (not random)" and "not a random sample" in check["note"]
    # nobody ticks stick: its rates agree (0 = 0) and alpha and kappa are undefined, with reasons
    stick = check["codes"]["stick"]
    assert stick["positive_rate"]["difference"]["value"] == 0
    assert stick["krippendorff_alpha"]["blind"]["value"] is None and stick["krippendorff_alpha"]["blind"]["reason"]
    # the model never ticked stick: said in words, not as 0.000 [0.000, 0.000]
    assert stick["model_kappa"]["assisted"] == {"value": None, "ci": None, "reason": NEVER_TICKED}
    md = result.paths["md"].read_text(encoding="utf-8")
    assert "## Anchoring check" in md and "Schroeder et al." in md
    assert "carrot model kappa: assisted higher" in md and "never ticked" in md
    html = result.paths["html"].read_text(encoding="utf-8")
    assert 'id="anchoring"' in html


def test_blind_annotations_made_with_pre_labels_are_left_out(tmp_path, small_codebook):
    store, book, blind = _anchored_workspace(tmp_path, small_codebook)
    seg = blind.pick(s.id for s in store.segments())[0]
    add_annotation(store, 1_000, 1, seg, ANNOTATORS[0], ["carrot"], book, version="v1")  # an edit, pre-labels shown
    settings = load_settings(overrides={"workspace": str(tmp_path / "ws"), "agreement.bootstrap": 50})
    check = agreement_report(store, settings, book, out_dir=None).report["anchoring"]
    assert check["left_out"]["blind_with_prelabels"] == 1


def test_no_section_without_a_blind_push_and_a_reason_while_a_group_is_empty(tmp_path, small_codebook):
    book = load_codebook(small_codebook)
    store = make_workspace(tmp_path / "ws", book, {"doc": ["One.", "Two.", "Three."]})
    add_project(store, 1, ANNOTATORS[0], book)
    for n, seg in enumerate(store.segments()):
        add_annotation(store, n + 1, 1, seg.id, ANNOTATORS[0], ["carrot"], book)
    settings = load_settings(overrides={"workspace": str(tmp_path / "ws"), "agreement.bootstrap": 20})
    assert "anchoring" not in agreement_report(store, settings, book, out_dir=None).report
    with store.transaction():
        record_blind_fraction(store, SERVER, 1, 0.5)
    blind_subset(store, 0.5)  # draws the salt
    check = agreement_report(store, settings, book, out_dir=None).report["anchoring"]
    assert check["codes"] == {} and "no assisted" in check["reason"]


def test_with_no_blind_annotations_yet_the_check_says_so(tmp_path, small_codebook):
    book = load_codebook(small_codebook)
    store = make_workspace(tmp_path / "ws", book, {"doc": [f"Turn {t}." for t in range(20)]})
    segments = [s.id for s in store.segments()]
    add_model(store, "v1", book, {s: ["carrot"] for s in segments})
    blind = blind_subset(store, 0.3)
    with store.transaction():
        record_blind_fraction(store, SERVER, 1, 0.3)
    add_project(store, 1, ANNOTATORS[0], book)
    assisted = [s for s in segments if s not in blind]  # the annotator stopped before the stream's blind tasks
    for n, seg in enumerate(assisted, start=1):
        add_annotation(store, n, 1, seg, ANNOTATORS[0], ["carrot"], book, version="v1")
    settings = load_settings(overrides={"workspace": str(tmp_path / "ws"), "agreement.bootstrap": 20})
    check = agreement_report(store, settings, book, out_dir=None).report["anchoring"]
    assert check["codes"] == {} and check["reason"].startswith("no blind annotations yet")


def test_the_assisted_group_is_the_random_audit_stream_when_annotators_coded_it(tmp_path, small_codebook):
    store, book, blind = _anchored_workspace(tmp_path, small_codebook)
    ratings = load_ratings(store, book)
    assisted = [s.id for s in store.segments() if s.id not in blind]
    audit = set(assisted[::3])
    check = anchoring_check(ratings, blind, model_labels(store, ratings), bootstrap=50, audit=audit)
    assert check["assisted_sample"] == "audit stream (random)" and check["note"].startswith(
        "Blind segments were coded with no pre-labels; assisted segments, from the audit stream"
    )
    assert "uniformly random samples of the same segments" in check["note"]
    assert check["groups"]["assisted"]["n_items"] == len(audit)
    assert check["left_out"]["assisted_outside_audit"] == 2 * (len(assisted) - len(audit))


def test_anchoring_verdicts_are_adjusted_for_multiple_comparisons_with_a_direction():
    """Holm over every code x figure: 0.01 survives (x4 = 0.04), 0.02 and 0.03 do not (0.06)."""
    diff = lambda p, value: {"p": p, "value": value, "direction": "blind higher" if value > 0 else "assisted higher"}  # noqa: E731
    codes = {
        "a": {"positive_rate": {"difference": diff(0.01, -0.3)}, "model_kappa": {"difference": diff(0.02, 0.2)}},
        "b": {"positive_rate": {"difference": diff(0.03, -0.1)}, "model_kappa": {"difference": diff(0.5, 0.0)}},
        "c": {"positive_rate": {"difference": {"p": None, "value": None}}},
    }
    shifts = anchoring_module._adjust(codes)
    assert shifts == [{"code": "a", "figure": "positive_rate", "direction": "assisted higher", "p_adjusted": 0.04}]
    assert codes["a"]["model_kappa"]["difference"]["p_adjusted"] == pytest.approx(0.06)
    assert not codes["b"]["positive_rate"]["difference"]["shifted"]
    assert codes["c"]["positive_rate"]["difference"]["p_adjusted"] is None


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_push_refuses_a_fraction_outside_0_to_1(cli, tmp_path, value):
    result = cli("push", "--workspace", tmp_path / "ws", "--blind-fraction", value)
    assert result.exit_code == 2


def test_the_agreement_command_names_the_shifted_codes(cli, tmp_path, small_codebook):
    store, _, _ = _anchored_workspace(tmp_path, small_codebook)
    store.close()
    result = cli("agreement", "-w", tmp_path / "ws", "--codebook", small_codebook, "--bootstrap", "100")
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    assert (
        "Shifted beyond chance (Holm's step-down adjustment" in shown
        and "carrot positive rate: assisted higher" in shown
    )


def test_an_unknown_label_stream_strategy_is_refused_naming_the_installed_ones(tmp_path, small_codebook):
    from pipeline.studio.stream import stream_rank, stream_ranks

    store = make_workspace(tmp_path / "ws", load_codebook(small_codebook), {"doc": ["Tea."]})
    with pytest.raises(CultureCodeError, match="studio.sampling 'rarest'.*uncertainty"):
        stream_ranks(store, "rarest", "v1")
    assert stream_ranks(store, "uncertainty", "v1") is None and stream_rank(None, "s") is None
    assert stream_rank({"a": 0.0}, "a") == 0.0 and stream_rank({"a": 0.0}, "b") == 1.0  # unranked: after the ranked


def test_random_stream_places_are_stable_within_a_workspace_and_differ_between_workspaces():
    from pipeline.studio.stream import plan_stream

    keys = {i: n / len(IDS) for n, i in enumerate(IDS)}

    def random_positions(salt: str) -> list[int]:
        places = plan_stream(IDS, "uncertainty", BlindSubset(salt, 0.05), BlindSubset(salt, 0.05, "audit\x00"), keys)
        served = sorted(IDS, key=lambda i: places[i].order)
        return [n for n, i in enumerate(served) if places[i].stream in ("blind", "audit")]

    assert random_positions("ws-1") == random_positions("ws-1")
    assert random_positions("ws-1") != random_positions("ws-2")
    assert max(random_positions("ws-1")[0], random_positions("ws-2")[0]) < 20  # both met within the first 20
