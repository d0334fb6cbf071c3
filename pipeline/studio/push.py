"""Push segments and pre-labels to Label Studio, idempotently and in bulk.

Per project: reconcile the ledger (`tasks`) with what the server holds (tasks carry their segment
ID, so leftovers of a killed push are adopted, duplicates dropped and tasks deleted on the server
re-imported), import the missing segments in batches with their predictions, then give unannotated
tasks the predictions of a newer model version. Task rows are recorded after every batch, so an
interrupted push resumes where it stopped.

Segments of the blind subset (`studio.blind_fraction`, pipeline/store/blind.py) go to every project
with no predictions and no model text; a blind segment's task that still shows an earlier push's
pre-labels loses them while nobody has annotated it, and is counted as exposed once someone has.

Each task records its stream (blind, audit or the model-ordered stream), inclusion probability and sort key in the
label stream (pipeline/studio/stream.py); tasks nobody has annotated get their new key and stream on every push.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.progress import progress_bar
from pipeline.store import Segment, Store
from pipeline.store.annotations import (
    annotated_task_ids,
    count_tasks,
    count_tasks_to_update,
    drop_task,
    project_annotators,
    record_tasks,
    set_task_streams,
    set_task_versions,
    task_ledger,
    tasks_shown_other_version,
)
from pipeline.store.blind import (
    AUDIT_FRACTIONS_KEY,
    ORDER_RULE,
    BlindSubset,
    audit_subset,
    blind_subset,
    record_blind_fraction,
)
from pipeline.store.models import current_model, set_model_metric
from pipeline.store.predictions import PredictionRow, count_predictions, predictions_of
from pipeline.store.segments import segment_ids as all_segment_ids
from pipeline.studio import labeling
from pipeline.studio.client import Studio, connect
from pipeline.studio.gate import Gate, admission_gate, gate_changed, pushed_gate
from pipeline.studio.projects import ROLES, ProjectRef, ensure_project
from pipeline.studio.stream import (
    ORDER_FIELD,
    Place,
    model_keys,
    order_label_stream,
    plan_stream,
    stream_rank,
    stream_ranks,
)
from pipeline.studio.users import annotator_email


@dataclass
class ProjectPush(ProjectRef):
    """A project as `ensure_project` found it, plus what this push did to it."""

    imported: int = 0
    adopted: int = 0
    duplicates_removed: int = 0
    vanished: int = 0
    predictions_updated: int = 0
    tasks: int = 0
    blind: int = 0  # tasks of blind segments (no pre-labels)
    blind_stripped: int = 0  # blind tasks whose earlier pre-labels this push removed (nobody had annotated them)
    blind_exposed: int = 0  # blind tasks annotated while they showed pre-labels: assisted, left out of the check
    tabs_kept: list[int] = field(default_factory=list)  # Data Manager tabs ordered by hand: not re-ordered
    audit: int = 0  # tasks of the audit stream
    reordered: int = 0  # tasks nobody had annotated whose place in the stream this push changed


@dataclass
class PushReport:
    url: str
    model_version: str | None
    segments: int
    projects: list[ProjectPush] = field(default_factory=list)
    admission: dict[str, Any] = field(default_factory=dict)  # the gate: which codes were pre-ticked
    blind_fraction: float = 0.0
    blind_segments: int = 0  # of the pushed segments, those sent with no pre-labels
    audit_fraction: float = 0.0
    audit_segments: int = 0  # of the pushed segments, those of the audit stream (random, pre-labelled)
    sampling: str = "uncertainty"  # the model-ordered stream's mode (studio.sampling)
    order_rule: str = ""  # where the random streams' tasks sit in the label stream, when there are any

    @property
    def imported(self) -> int:
        return sum(p.imported for p in self.projects)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "imported": self.imported}


def _segments(store: Store, segment_ids: list[str] | None) -> list[Segment]:
    if segment_ids is None:
        return store.segments()  # in document order, so each transcript's context is read once
    found = {s.id: s for s in (store.segment(i) for i in dict.fromkeys(segment_ids)) if s}
    missing = [i for i in segment_ids if i not in found]
    if missing:
        raise CultureCodeError(
            f"segment(s) not in the workspace: {', '.join(missing[:5])}; list them with `culturecode segments`"
        )
    return sorted(found.values(), key=lambda s: (s.document_id, s.position))


def _predictions(store: Store, model_version: str | None) -> dict[str, PredictionRow]:
    return predictions_of(store, model_version) if model_version is not None else {}


def _server_tasks(studio: Studio, project_id: int) -> dict[str, list[Any]]:
    """segment_id -> the project's tasks for it (normally exactly one)."""
    tasks: list[Any] = studio.call(
        lambda: list(
            studio.sdk.tasks.list(
                project=project_id,
                fields="task_only",
                page_size=5000,
                include="id,data,total_annotations,cancelled_annotations",
            )
        )
    )
    by_segment: dict[str, list[Any]] = defaultdict(list)
    for task in tasks:
        seg = (task.data or {}).get("segment_id")
        if seg:
            by_segment[seg].append(task)
    return by_segment


def _reconcile(studio: Studio, store: Store, ref: ProjectPush) -> dict[str, Any]:
    """Make the ledger match the server; returns segment_id -> the one server task kept."""
    server = _server_tasks(studio, ref.id)
    ledger = {r["segment_id"]: r for r in task_ledger(store, studio.url, ref.id)}
    keep: dict[str, Any] = {}
    for seg, tasks in server.items():
        tasks.sort(key=lambda t: (-(t.total_annotations or 0) - (t.cancelled_annotations or 0), t.id))
        keep[seg] = tasks[0]
        for extra in tasks[1:]:
            if not (extra.total_annotations or extra.cancelled_annotations):
                studio.call(studio.sdk.tasks.delete, extra.id)
                ref.duplicates_removed += 1
    known_segments = all_segment_ids(store) if server else set()
    with store.transaction():
        for seg, row in ledger.items():
            if seg not in keep or keep[seg].id != row["task_id"]:
                drop_task(store, studio.url, ref.id, seg)
                ref.vanished += seg not in keep
        for seg, task in keep.items():
            if seg in known_segments and (seg not in ledger or ledger[seg]["task_id"] != task.id):
                record_tasks(store, studio.url, ref.id, [(task.id, seg, task.data.get("prediction_version") or None)])
                ref.adopted += seg not in ledger
    return keep


class _Context:
    """Turns around a segment (2 before, 1 after, as `Store.neighbours`), read once per document."""

    def __init__(self, store: Store):
        self.store = store
        self.docs: dict[str, dict[int, Segment]] = {}

    def __call__(self, seg: Segment) -> tuple[list[Segment], list[Segment]]:
        if seg.document_id not in self.docs:
            self.docs = {seg.document_id: {s.position: s for s in self.store.segments(seg.document_id)}}
        turns = self.docs[seg.document_id]
        pick = lambda rng: [turns[p] for p in rng if p in turns]  # noqa: E731
        return pick(range(seg.position - 2, seg.position)), pick(range(seg.position + 1, seg.position + 2))


def task_payload(
    context: _Context,
    seg: Segment,
    pred: PredictionRow | None,
    model_version: str | None,
    gate: Gate,
    ranks: dict[str, float] | None = None,
    place: Place | None = None,
) -> dict[str, Any]:
    """One task to import: the segment with its context and its place in the label stream, and the prediction with
    only admitted codes ticked."""
    before, after = context(seg)
    order = {ORDER_FIELD: place.order} if place else {}
    if pred is None:
        return {"data": {**labeling.task_data(seg, before, after, None, None), **order}}
    ticked, _ = gate.split(pred)
    data = {**labeling.task_data(seg, before, after, pred.rationale, model_version, gate.hint(pred)), **order}
    rank = stream_rank(ranks, seg.id)
    return {"data": data, "predictions": [labeling.prediction(ticked, pred.scores, pred.model_version, rank)]}


def _import(
    studio: Studio,
    store: Store,
    settings: Settings,
    ref: ProjectPush,
    todo: list[Segment],
    preds: dict[str, PredictionRow],
    model_version: str | None,
    gate: Gate,
    bar: Any,
    ranks: dict[str, float] | None = None,
    places: dict[str, Place] | None = None,
) -> None:
    size, context, places = settings.studio.batch_size, _Context(store), places or {}
    for start in range(0, len(todo), size):
        batch = todo[start : start + size]
        payload = [
            task_payload(context, s, preds.get(s.id), model_version, gate, ranks, places.get(s.id)) for s in batch
        ]
        resp = studio.call(studio.sdk.projects.import_tasks, ref.id, request=payload, return_task_ids=True)
        ids = list(getattr(resp, "task_ids", None) or [])  # present when return_task_ids=True
        if len(ids) != len(batch):
            raise CultureCodeError(
                f"Label Studio imported {len(ids)} of {len(batch)} tasks into project "
                f"{ref.id}; rerun `culturecode push` to reconcile"
            )
        with store.transaction():
            shown = [(tid, s.id, model_version if s.id in preds else None) for tid, s in zip(ids, batch, strict=True)]
            record_tasks(store, studio.url, ref.id, shown)
            streams = [
                (tid, p.stream, p.inclusion_probability, p.order)
                for tid, s in zip(ids, batch, strict=True)
                if (p := places.get(s.id))
            ]
            set_task_streams(store, studio.url, ref.id, streams)
        ref.imported += len(batch)
        bar.advance(len(batch))


def _unannotated(keep: dict[str, Any], segment_id: str) -> bool:
    task = keep.get(segment_id)
    return task is not None and not (task.total_annotations or task.cancelled_annotations)


def _update_predictions(
    studio: Studio,
    store: Store,
    settings: Settings,
    ref: ProjectPush,
    keep: dict[str, Any],
    preds: dict[str, PredictionRow],
    model_version: str | None,
    gate: Gate,
    regated: bool,
    ranks: dict[str, float] | None = None,
) -> None:
    """Tasks nobody has annotated yet get the predictions of the new model version; with `regated`
    (the version's admitted codes changed since it was pushed) its own tasks are re-sent too."""
    if model_version is None:
        return
    rows = task_ledger(store, studio.url, ref.id)
    stale = [
        r
        for r in rows
        if (r["model_version"] != model_version or regated)
        and r["segment_id"] in preds
        and _unannotated(keep, r["segment_id"])
    ]
    size = settings.studio.batch_size
    for start in range(0, len(stale), size):
        batch = stale[start : start + size]
        again = [r["task_id"] for r in batch if r["model_version"] == model_version]
        if again:  # the same version's earlier pre-ticks would stay on the task beside the new ones
            studio.call(
                studio.sdk.actions.create,
                id="delete_tasks_predictions",
                project=ref.id,
                selected_items={"all": False, "included": again},
            )
        payload = []
        for row in batch:
            pred = preds[row["segment_id"]]
            ticked, _ = gate.split(pred)
            rank = stream_rank(ranks, row["segment_id"])
            payload.append({"task": row["task_id"], **labeling.prediction(ticked, pred.scores, model_version, rank)})
            data = keep[row["segment_id"]].data
            shown = labeling.shown_rationale(pred.rationale, gate.hint(pred))
            if data.get("rationale", "") != shown:
                _patch(studio, row["task_id"], data, rationale=shown, prediction_version=model_version)
        studio.call(studio.sdk.projects.import_predictions, ref.id, request=payload)
        with store.transaction():
            set_task_versions(store, studio.url, ref.id, [r["task_id"] for r in batch], model_version)
        ref.predictions_updated += len(batch)


def _patch(studio: Studio, task_id: int, data: dict[str, Any], **changes: Any) -> None:
    """Change fields of a task's data on the server, and in `data` (the listed task's), so later patches keep them."""
    data.update(changes)
    studio.call(studio.sdk.tasks.update, task_id, data=dict(data))


def _unsettled(store: Store, url: str, ref: ProjectPush, places: dict[str, Place]) -> list[dict[str, Any]]:
    """Ledger rows with no pulled annotation whose recorded stream or place differs from this push's plan."""
    done = annotated_task_ids(store, url, ref.id)
    return [
        r
        for r in task_ledger(store, url, ref.id)
        if r["task_id"] not in done
        and (p := places.get(r["segment_id"])) is not None
        and (r["stream"], r["inclusion_probability"], r["stream_order"]) != (p.stream, p.inclusion_probability, p.order)
    ]


def _reorder(studio: Studio, store: Store, ref: ProjectPush, keep: dict[str, Any], places: dict[str, Place]) -> None:
    """Tasks nobody has annotated take this push's stream and place (their sort key in the data, rewritten when it
    moved); annotated ones keep what they were coded under."""
    rows = [r for r in _unsettled(store, studio.url, ref, places) if _unannotated(keep, r["segment_id"])]
    for row in rows:
        data, order = keep[row["segment_id"]].data, places[row["segment_id"]].order
        if data.get(ORDER_FIELD) != order:
            _patch(studio, row["task_id"], data, **{ORDER_FIELD: order})
            ref.reordered += 1
    with store.transaction():
        streams = [(r["task_id"], *_stream_row(places[r["segment_id"]])) for r in rows]
        set_task_streams(store, studio.url, ref.id, streams)


def _stream_row(place: Place) -> tuple[str, float | None, str]:
    return place.stream, place.inclusion_probability, place.order


def _stale(
    store: Store, url: str, ref: ProjectPush, model_version: str, preds: dict[str, PredictionRow], blind: BlindSubset
) -> int:
    """Tasks showing another version's pre-labels that `model_version` has (unblinded) predictions for."""
    if not blind.fraction:
        return count_tasks_to_update(store, url, ref.id, model_version)
    return sum(r["segment_id"] in preds for r in tasks_shown_other_version(store, url, ref.id, model_version))


def _blind_shown(store: Store, url: str, ref: ProjectPush, blind: BlindSubset) -> list[dict[str, Any]]:
    """Ledger rows of blind segments whose task shows a model's pre-labels."""
    return [r for r in task_ledger(store, url, ref.id) if r["model_version"] and r["segment_id"] in blind]


def _out_of_step(
    studio: Studio,
    store: Store,
    ref: ProjectPush,
    model_version: str | None,
    regated: bool,
    preds: dict[str, PredictionRow],
    blind: BlindSubset,
    places: dict[str, Place],
) -> bool:
    """Whether listing the project's tasks is needed: the server's task count differs from the
    ledger (a killed push, a deleted task, a duplicate), some tasks may need new predictions or a new place in the
    stream, or blind segments' tasks still show pre-labels."""
    if ref.created:
        return False
    if regated or _blind_shown(store, studio.url, ref, blind) or _unsettled(store, studio.url, ref, places):
        return True
    ledger = count_tasks(store, studio.url, ref.id)
    stale = _stale(store, studio.url, ref, model_version, preds, blind) if model_version else 0
    return bool(stale) or studio.call(studio.sdk.projects.get, ref.id).task_number != ledger


def _blind_again(
    studio: Studio, store: Store, settings: Settings, ref: ProjectPush, keep: dict[str, Any], blind: BlindSubset
) -> None:
    """Blind segments' tasks that still show an earlier push's pre-labels: nobody annotated them yet,
    so the predictions and the model's text go; annotated ones stay as they are and are counted."""
    shown = _blind_shown(store, studio.url, ref, blind)
    clean = [r for r in shown if _unannotated(keep, r["segment_id"])]
    ref.blind_exposed = len(shown) - len(clean)
    size = settings.studio.batch_size
    for start in range(0, len(clean), size):
        batch = clean[start : start + size]
        studio.call(
            studio.sdk.actions.create,
            id="delete_tasks_predictions",
            project=ref.id,
            selected_items={"all": False, "included": [r["task_id"] for r in batch]},
        )
        for row in batch:
            data = keep[row["segment_id"]].data
            if data.get("rationale") or data.get("prediction_version"):
                _patch(studio, row["task_id"], data, rationale="", prediction_version="")
        with store.transaction():
            record_tasks(store, studio.url, ref.id, [(r["task_id"], r["segment_id"], None) for r in batch])
        ref.blind_stripped += len(batch)


@dataclass
class _PushPlan:
    """What one push sends to every project. `preds` holds no blind segment's prediction, so blind tasks are imported
    and kept without any; `model_version`: the version whose pre-labels are shown (None: no predictions); `regated`:
    the admitted codes changed since the last push; `ranks`: each segment's place in the label stream's strategy
    (`studio.sampling`), None: the least certain first; `places`: each segment's stream and sort key
    (`stream.plan_stream`)."""

    preds: dict[str, PredictionRow]
    model_version: str | None
    gate: Gate
    regated: bool
    blind: BlindSubset
    audit: BlindSubset
    ranks: dict[str, float] | None
    places: dict[str, Place]


def _plan_push(store: Store, settings: Settings, segments: list[Segment], role: str, version: str | None) -> _PushPlan:
    blind = blind_subset(store, settings.studio.blind_fraction)
    preds = {seg: p for seg, p in _predictions(store, version).items() if seg not in blind}
    shown = version if preds else None
    gate = admission_gate(store, settings.admission, shown)
    regated = shown is not None and gate_changed(gate, pushed_gate(store, shown))
    ranks = stream_ranks(store, settings.studio.sampling, shown) if shown else None
    audit = audit_subset(store, settings.studio.audit_fraction)
    places = _plan(store, settings, segments, role, blind, audit, preds, ranks)
    return _PushPlan(
        preds=preds,
        model_version=shown,
        gate=gate,
        regated=regated,
        blind=blind,
        audit=audit,
        ranks=ranks,
        places=places,
    )


def _push_project(
    studio: Studio,
    store: Store,
    settings: Settings,
    ref: ProjectPush,
    segments: list[Segment],
    plan: _PushPlan,
    show_progress: bool,
) -> None:
    """Bring one project up to date with `plan`, importing `segments` it does not hold yet."""
    preds, model_version, gate, regated = plan.preds, plan.model_version, plan.gate, plan.regated
    blind, audit, ranks, places = plan.blind, plan.audit, plan.ranks, plan.places
    out_of_step = _out_of_step(studio, store, ref, model_version, regated, preds, blind, places)
    keep = _reconcile(studio, store, ref) if out_of_step else {}
    have = {r["segment_id"] for r in task_ledger(store, studio.url, ref.id)}
    todo = [s for s in segments if s.id not in have]
    before = studio.retried
    with progress_bar(f"push to project {ref.id}", len(todo), show_progress) as bar:
        _import(studio, store, settings, ref, todo, preds, model_version, gate, bar, ranks, places)
    if studio.retried > before:  # a request may have landed twice while the server was flaky
        keep = _reconcile(studio, store, ref)
    _update_predictions(studio, store, settings, ref, keep, preds, model_version, gate, regated, ranks)
    _blind_again(studio, store, settings, ref, keep, blind)
    _reorder(studio, store, ref, keep, places)
    if model_version:
        studio.call(studio.sdk.projects.update, ref.id, model_version=model_version, show_collab_predictions=True)
    if model_version or places:
        ref.tabs_kept = order_label_stream(studio, ref.id, settings.studio.sampling)
    ledger = task_ledger(store, studio.url, ref.id)
    ref.tasks, ref.blind = len(ledger), sum(r["segment_id"] in blind for r in ledger)
    ref.audit = sum(r["stream"] == "audit" for r in ledger)
    with store.transaction():
        record_blind_fraction(store, studio.url, ref.id, blind.fraction)
        record_blind_fraction(store, studio.url, ref.id, audit.fraction, AUDIT_FRACTIONS_KEY)


def _plan(
    store: Store,
    settings: Settings,
    segments: list[Segment],
    role: str,
    blind: BlindSubset,
    audit: BlindSubset,
    preds: dict[str, PredictionRow],
    ranks: dict[str, float] | None,
) -> dict[str, Place]:
    """The pushed segments' streams and places: review projects hold one `review` stream in import order."""
    ids = [s.id for s in segments]
    if role == "review":
        return {s: Place("review", None, f"{(i + 0.5) / len(ids):.6f}") for i, s in enumerate(ids)}
    mode = settings.studio.sampling
    keys = model_keys(mode, {s: p.scores for s, p in preds.items()}, ranks) if preds else None
    return plan_stream(ids, mode, blind, audit, keys)


def _targets(
    store: Store, studio: Studio, settings: Settings, annotators: list[str] | None, role: str
) -> list[str | None]:
    if annotators:
        return list(dict.fromkeys(annotator_email(a, settings) for a in annotators))
    return project_annotators(store, studio.url, role) or [None]


def _check_request(store: Store, role: str, segment_ids: list[str] | None, model_version: str | None) -> None:
    """Refuse a push that cannot be made: an unknown role, a review without segments, a version with no predictions."""
    if role not in ROLES:
        raise CultureCodeError(f"role '{role}' is not one of {', '.join(ROLES)}")
    if role == "review" and not segment_ids:
        raise CultureCodeError("a review push needs the segments to adjudicate (segment_ids)")
    if model_version and not count_predictions(store, model_version):
        raise CultureCodeError(
            f"no predictions of model version '{model_version}' in the workspace; "
            f"run `culturecode prelabel` first or pick a version from `culturecode status`"
        )


def _new_report(url: str, settings: Settings, segments: int, plan: _PushPlan) -> PushReport:
    """The push's report before any project is pushed: what it sends, and how the label stream is ordered."""
    places = plan.places.values()
    report = PushReport(
        url, plan.model_version, segments, admission=plan.gate.as_dict(), blind_fraction=plan.blind.fraction
    )
    report.blind_segments = sum(p.stream == "blind" for p in places)
    report.audit_fraction, report.sampling = plan.audit.fraction, settings.studio.sampling
    report.audit_segments = sum(p.stream == "audit" for p in places)
    report.order_rule = ORDER_RULE if report.blind_segments or report.audit_segments else ""
    return report


def _run_summary(report: PushReport, plan: _PushPlan) -> dict[str, Any]:
    """What the push's run record keeps."""
    return {
        "imported": report.imported,
        "projects": [p.id for p in report.projects],
        "admission": plan.gate.as_dict(),
        "blind": {"fraction": plan.blind.fraction, "segments": report.blind_segments},
        "audit": {"fraction": plan.audit.fraction, "segments": report.audit_segments},
        "streams": dict(Counter(p.stream for p in plan.places.values())),
        "blind_exposed": sum(p.blind_exposed for p in report.projects),
    }


def push(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    annotators: list[str] | None = None,
    model_version: str | None = None,
    segment_ids: list[str] | None = None,
    role: str = "annotation",
    update_config: bool = False,
    show_progress: bool = True,
    update_only: bool = False,
) -> PushReport:
    """Create or update the workspace's Label Studio project(s) and import segments with pre-labels.

    One project per annotator (`annotators`), reusing the workspace's existing projects when none
    are named; `role="review"` with `segment_ids` makes review projects for adjudicators. `update_only`
    imports nothing: only the pre-labels of tasks already there are brought up to date (a calibration).
    """
    _check_request(store, role, segment_ids, model_version)
    version = model_version or current_model(store)
    segments = _segments(store, segment_ids)
    if not segments:
        raise CultureCodeError(f"workspace {store.workspace} has no segments: run `culturecode ingest PATH` first")
    studio = connect(settings)
    plan = _plan_push(store, settings, segments, role, version)
    report = _new_report(studio.url, settings, len(segments), plan)
    args = {
        "annotators": annotators,
        "model_version": version,
        "role": role,
        "blind_fraction": plan.blind.fraction,
        "audit_fraction": plan.audit.fraction,
        "sampling": settings.studio.sampling,
    }
    with store.run("push", args) as summary:
        for who in _targets(store, studio, settings, annotators, role):
            found: ProjectRef = ensure_project(studio, store, settings, codebook, role, who, version, update_config)
            ref = ProjectPush(found.id, found.title, role, who, found.created, found.recreated, found.config_updated)
            to_import = [] if update_only else segments
            _push_project(studio, store, settings, ref, to_import, plan, show_progress)
            report.projects.append(ref)
        summary.update(_run_summary(report, plan))
        if plan.model_version is not None:
            with store.transaction():
                set_model_metric(store, plan.model_version, "admission_pushed", plan.gate.as_dict())
    return report
