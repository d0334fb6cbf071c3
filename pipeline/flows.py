"""Flows: several stages in a row for one person's job. Stages never import flows; flows import
any stage (each inside the function that needs it, so importing this module loads no torch).

- `retrain`: pull -> gold labels (majority per code) -> train a new version -> evaluate the new and
  the current version on the new version's held-out segments -> promote the new one only if its
  macro F1 is higher (or `force`) -> pre-label the segments nobody has annotated -> push;
- `distill`: train the classifier on confidence-filtered LLM labels when no human gold exists yet;
- `push_disagreements`: send the contested segments to a Label Studio review project;
- `push_reliability_sample`: send the planner's chosen segments (only those) to the second coder's project.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.store import Store

if TYPE_CHECKING:
    from pipeline.classifier.predict import PrelabelReport
    from pipeline.classifier.training import TrainReport


def _plain(report: Any) -> Any:
    """A step's report as JSON-ready data (what `--json` prints)."""
    if report is None or isinstance(report, (dict, list, str, int, float)):
        return report
    if hasattr(report, "as_dict"):
        return report.as_dict()
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    return str(report)


# ---------------------------------------------------------------------------------------- retrain


@dataclass
class RetrainResult:
    """What each step of `retrain` did; `new`/`current` hold each version's held-out figures."""

    pull: Any
    adjudicate: Any
    new: dict[str, Any]
    current: dict[str, Any] | None
    promoted: bool
    prelabel: PrelabelReport
    push: Any | None
    held_out_segments: int
    current_model: str | None
    message: str
    prior: str | None = None  # the example gold the project's labels were added to (weighted less)
    calibration: Any | None = None  # the project calibration of the current model after training
    trained: bool = True  # False: nothing new to learn from since `new`'s version was trained; no version made
    pruned: Any | None = None  # the unused versions removed (loop.keep_unpromoted), classifier.versions.PruneReport

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _figures(version: str, metrics: dict) -> dict[str, Any]:
    return {"model_version": version, **{k: metrics[k] for k in ("micro_f1", "macro_f1", "segments", "per_code")}}


def _held_out_figures(
    store: Store, settings: Settings, codebook: Codebook, version: str, held_out: list
) -> dict[str, Any]:
    from pipeline.classifier.evaluation import score_examples
    from pipeline.classifier.registry import load_model

    # store=: a head-method model reads the held-out texts' embeddings from the workspace cache (no encoding)
    return _figures(version, score_examples(load_model(store, codebook, version), held_out, settings, store=store))


def _new_version_figures(store: Store, settings: Settings, codebook: Codebook, new: Any, kept: list[int]):
    """The new version's figures on its held-out examples `kept` (indices into its test split): the decisions of
    the model fitted without them, which a refit on all examples (classifier.refit_on_all) has since learned."""
    if new.test_decisions is None:
        return _held_out_figures(store, settings, codebook, new.version, [new.test_examples[i] for i in kept])
    from pipeline.classifier.data import label_matrix
    from pipeline.classifier.metrics import code_metrics

    held_out = [new.test_examples[i] for i in kept]
    codes = codebook.code_ids
    return _figures(new.version, code_metrics(label_matrix(held_out, codes), new.test_decisions[kept], codes))


def retrain(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    force: bool = False,
    extra_gold: str | Path | None = None,
    push: bool = True,
    show_progress: bool = True,
) -> RetrainResult:
    """Run the ML engineer's loop; returns before/after figures and what each step did. The project's labels
    are added to `extra_gold`, else to the example gold the current model was trained on (`prior_gold`), each
    project label weighing `classifier.project_weight` examples."""
    from pipeline import gold, studio
    from pipeline.agreement.admission import refresh_admission
    from pipeline.agreement.calibration import calibrate
    from pipeline.classifier.predict import prelabel
    from pipeline.classifier.registry import current_version, promote
    from pipeline.classifier.versions import prune_versions
    from pipeline.store.annotations import unannotated_segment_ids

    prior, extra = _gold_to_add(store, codebook, extra_gold)  # a bad file fails before anything changes
    pulled = studio.pull(store, settings, codebook, show_progress=show_progress)
    adjudicated = gold.adjudicate(store, codebook, method="majority")
    before = current_version(store)
    trained = _train_or_reuse(store, settings, codebook, extra, prior, before, show_progress)
    new_figures, old_figures, held_out = trained["new"], trained["current"], trained["held_out"]
    # the same input again makes no version: then only --force makes the one trained on it current
    better = trained["trained"] and (old_figures is None or new_figures["macro_f1"] > old_figures["macro_f1"])
    promoted = bool(force or better)
    if promoted:
        promote(store, new_figures["model_version"])
    pruned = prune_versions(store, settings.loop.keep_unpromoted)
    model = current_version(store)
    todo = unannotated_segment_ids(store)
    labelled = prelabel(store, settings, codebook, model_version=model, show_progress=show_progress, segment_ids=todo)
    calibrated = calibrate(store, settings, codebook, refresh_studio=False)  # the push below sends its pre-labels
    pushed = None
    if push:
        refresh_admission(store, settings, codebook, model)  # which of its codes may be pre-ticked
        pushed = studio.push(
            store, settings, codebook, model_version=model, segment_ids=todo, show_progress=show_progress
        )
    message = _retrain_message(trained, promoted, force, labelled.scored, model, pruned.message())
    result = RetrainResult(
        pulled, adjudicated, new_figures, old_figures, promoted, labelled, pushed, held_out, model, message
    )
    result.prior, result.calibration, result.trained, result.pruned = prior, calibrated, trained["trained"], pruned
    return result


def _gold_to_add(store: Store, codebook: Codebook, extra_gold: str | Path | None) -> tuple[str | None, Any]:
    """(where it is from, the gold) that retrain adds the project's labels to: `extra_gold`, else the example gold the
    current model was trained on (`prior_gold`)."""
    from pipeline.classifier.data import read_gold

    if extra_gold:
        return str(Path(extra_gold).resolve()), read_gold(extra_gold, codebook)
    return prior_gold(store, codebook)


def _retrain_message(
    trained: dict[str, Any], promoted: bool, force: bool, scored: int, model: str | None, pruned: str
) -> str:
    """What retrain did, in a sentence or two: the figures before and after, or that nothing new was trained."""
    new_figures, old_figures = trained["new"], trained["current"]
    if trained["trained"]:
        message = _message(new_figures, old_figures, promoted, force, scored)
    else:
        same = new_figures["model_version"]
        kept_as = f"{same} is current (forced)." if promoted else f"{model} stays current."
        message = f"nothing new to learn from since {same} was trained: no new version; {kept_as}"
    return " ".join(m for m in (message, pruned) if m)


def _train_or_reuse(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    extra: list | None,
    prior: str | None,
    before: str | None,
    show_progress: bool,
) -> dict[str, Any]:
    """Train a version and measure it and the current one on its held-out segments, unless a version was already
    trained on exactly this input (the same gold, example gold, settings and codebook): then no new version, and
    that version's recorded figures. {"trained", "new", "current", "held_out"}."""
    from pipeline.classifier.data import gold_from_store
    from pipeline.classifier.training import train
    from pipeline.classifier.versions import FINGERPRINT, same_training, training_fingerprint
    from pipeline.store.models import get_model, set_model_metric

    fingerprint = training_fingerprint(gold_from_store(store, codebook), extra, settings.classifier, codebook)
    same = same_training(store, fingerprint)
    if same is not None:
        recorded = (get_model(store, same) or {})["metrics"].get("retrain") or {}
        new_figures = recorded.get("new") or {"model_version": same, "macro_f1": None, "micro_f1": None}
        old_figures = recorded.get("current")
        if old_figures is not None and old_figures.get("model_version") != before:
            old_figures = None  # compared with a version that is no longer current
        return {"trained": False, "new": new_figures, "current": old_figures, "held_out": recorded.get("held_out", 0)}
    new = train(store, settings, codebook, promote=False, extra=extra, show_progress=show_progress)
    prior_examples = {id(e) for e in extra or []}  # the model compared with was trained on these
    kept = [i for i, e in enumerate(new.test_examples) if id(e) not in prior_examples]
    kept = kept or list(range(len(new.test_examples)))
    held_out = [new.test_examples[i] for i in kept]
    new_figures = _new_version_figures(store, settings, codebook, new, kept)
    old_figures = None if before is None else _held_out_figures(store, settings, codebook, before, held_out)
    recorded = {"new": new_figures, "current": old_figures, "held_out": len(held_out)}
    with store.transaction():
        set_model_metric(store, new.version, "prior", prior)
        set_model_metric(store, new.version, FINGERPRINT, fingerprint)
        set_model_metric(store, new.version, "retrain", recorded)
    return {"trained": True, **recorded}


def prior_gold(store: Store, codebook: Codebook) -> tuple[str | None, list | None]:
    """(where from, examples) of the example gold the current classifier was trained on: recorded by `retrain`
    (`prior`) or by `train --gold` (training.json `source`), else the repository's examples/gold; (None, None)
    when there is no current classifier or the gold does not fit the codebook (then the project's labels alone)."""
    from pipeline.classifier.data import read_gold
    from pipeline.store.models import current_model, get_model

    version = current_model(store, "classifier")
    row = get_model(store, version) if version else None
    if row is None:
        return None, None
    for candidate in _prior_candidates(row):
        if candidate.exists():
            try:
                return str(candidate.resolve()), read_gold(candidate, codebook)
            except CultureCodeError:  # another codebook's gold, or a broken file: not a prior for this project
                continue
    return None, None


def _prior_candidates(row: dict[str, Any]) -> list[Path]:
    found = []
    if row["metrics"].get("prior"):
        found.append(Path(row["metrics"]["prior"]))
    try:
        source = json.loads((Path(row["path"] or "") / "training.json").read_text(encoding="utf-8"))["source"]
        found.append(Path(source))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found.append(Path(__file__).resolve().parents[1] / "examples" / "gold")  # the repository's bundled examples
    return found


def _message(new: dict, old: dict | None, promoted: bool, force: bool, scored: int) -> str:
    version = new["model_version"]
    if old is None:
        return f"{version} is the first classifier and is now current."
    before, new_f1, old_f1 = old["model_version"], new["macro_f1"], old["macro_f1"]
    if promoted:
        why = "forced" if force and new_f1 <= old_f1 else f"macro F1 {old_f1:.3f} -> {new_f1:.3f}"
        return f"promoted {version} over {before} ({why}); pre-labelled {scored} segment(s)."
    return (
        f"kept {before}: {version} scored macro F1 {new_f1:.3f} vs {old_f1:.3f} (use --force to promote it "
        f"anyway, or `culturecode models promote --model-version {version}`)."
    )


# ------------------------------------------------------------------------------------ pull + calibrate


@dataclass
class PullResult:
    """`culturecode pull`: what the pull brought, then what the project calibration did with it."""

    pull: Any
    calibration: Any

    def as_dict(self) -> dict[str, Any]:
        return {**_plain(self.pull), "calibration": _plain(self.calibration)}


def pull_and_calibrate(
    store: Store, settings: Settings, codebook: Codebook, full: bool = False, show_progress: bool = True
) -> PullResult:
    """Pull, then re-tune the current classifier's thresholds on the project's labels once there are enough
    and refresh the pre-labels of unannotated tasks (`pipeline.agreement.calibration`)."""
    from pipeline import studio
    from pipeline.agreement.calibration import calibrate

    pulled = studio.pull(store, settings, codebook, show_progress=show_progress, full=full)
    return PullResult(pulled, calibrate(store, settings, codebook, show_progress=show_progress))


# ---------------------------------------------------------------------------------------- distill


@dataclass
class DistillResult:
    """The silver data a classifier was trained on, and that training's report."""

    silver_from: str
    silver_file: str
    segments: int
    left_out: int
    min_confidence: float
    train: TrainReport = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "train"},
            "train": self.train.as_dict(),
        }


def distill(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    version: str | None = None,
    min_confidence: float | None = None,
    method: str | None = None,
    promote: bool = True,
    show_progress: bool = True,
) -> DistillResult:
    """Train the classifier on confidence-filtered LLM labels only (no human gold needed)."""
    from pipeline.classifier.training import train
    from pipeline.llm.distill import llm_version, silver_rows
    from pipeline.store.models import set_model_metric

    version = llm_version(store, version)
    threshold = settings.llm.min_confidence if min_confidence is None else min_confidence
    rows, dropped = silver_rows(store, codebook, version, threshold)
    if not rows:
        raise CultureCodeError(
            f"no LLM label of {version} reaches confidence {threshold}; lower --min-confidence or label more segments"
        )
    path = Path(store.workspace) / "exports" / f"silver-{version}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    report = train(store, settings, codebook, gold=path, method=method, promote=promote, show_progress=show_progress)
    with store.transaction():
        set_model_metric(store, report.version, "distilled_from", version)
    return DistillResult(version, str(path), len(rows), dropped, threshold, report)


# ------------------------------------------------------------------------------ disagreements to review


def push_disagreements(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    rows: list[dict[str, Any]],
    adjudicator: str | None = None,
    show_progress: bool = True,
) -> Any:
    """Send contested segments (`agreement.disagreements(...)`) to a separate Label Studio review
    project (for `adjudicator`, if named)."""
    from pipeline import studio

    if not rows:
        raise CultureCodeError("no contested segments to push: every annotator pair agrees")
    return studio.push(
        store,
        settings,
        codebook,
        annotators=[adjudicator] if adjudicator else None,
        segment_ids=[r["item"] for r in rows],
        role="review",
        show_progress=show_progress,
    )


# ------------------------------------------------------------------------ reliability sample to the coder


def push_reliability_sample(
    store: Store, settings: Settings, codebook: Codebook, plan: Any, show_progress: bool = True
) -> Any:
    """Send the segments a `ReliabilityPlan` chose (and only those) to `plan.coder`'s annotation project."""
    from pipeline import studio

    if plan.coder is None:
        raise CultureCodeError("--push needs --coder NAME: the second coder whose project gets the sample")
    ids = plan.selection.segment_ids if plan.selection else []
    if not ids:
        raise CultureCodeError(f"no segment to push: {plan.stop_reason}")
    plan.pushed = studio.push(
        store, settings, codebook, annotators=[plan.coder], segment_ids=ids, show_progress=show_progress
    )
    return plan.pushed


# ------------------------------------------------------------------------------------------- push


@dataclass
class PushResult:
    """`culturecode push`: the push's report, and what connecting the projects it created to the model server did
    (one line to show; "" when `loop.connect` is off or no project was created)."""

    push: Any  # studio.push.PushReport
    connected: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**_plain(self.push), "connected": self.connected}


def push_to_studio(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    *,
    annotators: list[str] | None = None,
    model_version: str | None = None,
    labeller: str | None = None,
    update_config: bool = False,
    show_progress: bool = True,
) -> PushResult:
    """Send segments and pre-labels to Label Studio: admission is measured again first (the gate on pre-ticks uses
    the latest human labels), then the push, then, with `loop.connect`, the projects it created are connected to
    the running model server. `labeller`: pre-label with the current version of that labeller's kind (when no
    `model_version` is given)."""
    from pipeline import studio
    from pipeline.agreement.admission import refresh_admission
    from pipeline.labellers.registry import current_version

    if labeller is not None:
        model_version = model_version or current_version(store, labeller)
    refresh_admission(store, settings, codebook, model_version)
    report = studio.push(
        store,
        settings,
        codebook,
        annotators=annotators,
        model_version=model_version,
        update_config=update_config,
        show_progress=show_progress,
    )
    connected = ""
    if settings.loop.connect:
        from pipeline.loop.service import connect_new_projects

        connected = connect_new_projects(store, settings, [p.id for p in report.projects if p.created])
    return PushResult(report, connected)


# --------------------------------------------------------------------------------------- prelabel

PRELABEL_ENGINES = ("local", "ray")


def label_with_llm(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    *,
    segment_ids: list[str] | None = None,
    limit: int | None = None,
    refresh: bool = False,
    examples_path: str | Path | None = None,
    show_progress: bool = True,
) -> Any:
    """`culturecode llm label`: label with the LLM of the settings, then measure admission again for its version
    (which codes annotators may see pre-ticked) and attach the measured quality of the model and prompt on the
    example gold. Returns the `LlmRunReport` with `admission` and `measured` filled in."""
    from pipeline.agreement.admission import refresh_admission
    from pipeline.llm import prelabel_llm
    from pipeline.llm.measured import measured_quality

    report = prelabel_llm(
        store,
        settings,
        codebook,
        segment_ids=segment_ids,
        limit=limit,
        refresh=refresh,
        examples_path=examples_path,
        show_progress=show_progress,
    )
    table = refresh_admission(store, settings, codebook, report.model_version) if report.labelled else None
    report.admission = table.as_dict() if table is not None else None
    report.measured = measured_quality(report.model_version)
    return report


def check_prelabel(labeller: str, engine: str) -> str:
    """The labeller's name if it is installed and can run on `engine` (local or ray), else a one-line error."""
    from pipeline.labellers.registry import check

    if engine not in PRELABEL_ENGINES:
        raise CultureCodeError(f"--engine {engine}: use local or ray")
    labeller = check(labeller, "--with")
    if labeller != "classifier" and engine == "ray":
        raise CultureCodeError(f"--engine ray scores with the classifier only, not --with {labeller}")
    return labeller


@dataclass
class PrelabelResult:
    """`culturecode prelabel`: which labeller ran, what kind of report it gave ('classifier': a `PrelabelReport`,
    'llm': an `LlmRunReport`, 'plugin': a labeller run's report) and the report itself."""

    labeller: str
    kind: str
    report: Any

    def as_dict(self) -> dict[str, Any]:
        return {"labeller": self.labeller, "kind": self.kind, "report": _plain(self.report)}


def prelabel(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    *,
    labeller: str = "classifier",
    engine: str = "local",
    model_version: str | None = None,
    show_progress: bool = True,
) -> PrelabelResult:
    """Score the segments not scored yet with an installed labeller, dispatched three ways: the classifier (in
    this process, or its int8 ONNX copy on Ray with `engine="ray"`); an LLM labeller (`llm`: the settings' backend,
    `llm-NAME`: backend NAME) through `label_with_llm`; any other labeller through `pipeline.labellers.prelabel`."""
    from pipeline.labellers.registry import kind_of

    labeller = check_prelabel(labeller, engine)
    if labeller == "classifier":
        if engine == "ray":
            from pipeline.classifier.ray_engine import prelabel_on_ray

            report = prelabel_on_ray(
                store, settings, codebook, model_version=model_version, show_progress=show_progress
            )
        else:
            from pipeline import classifier

            report = classifier.prelabel(
                store, settings, codebook, model_version=model_version, show_progress=show_progress
            )
        return PrelabelResult(labeller, "classifier", report)
    if kind_of(labeller) == "llm":  # `llm`: the settings' backend; `llm-NAME`: backend NAME
        if labeller.startswith("llm-"):
            llm = settings.llm.model_copy(update={"backend": labeller.removeprefix("llm-")})
            settings = settings.model_copy(update={"llm": llm})
        return PrelabelResult(labeller, "llm", label_with_llm(store, settings, codebook, show_progress=show_progress))
    from pipeline.labellers import prelabel as run_labeller

    report = run_labeller(store, settings, codebook, labeller, model_version=model_version, show_progress=show_progress)
    return PrelabelResult(labeller, "plugin", report)
