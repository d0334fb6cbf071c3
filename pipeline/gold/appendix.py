"""The methods appendix: what a methods section and its reviewers need, regenerated from the workspace.

from pipeline.gold.appendix import build_appendix, write_appendix
appendix = build_appendix(store, settings, codebook)   # sections of text, tables, lists and code blocks
write_appendix(appendix, out_dir)                      # appendix.html, appendix.md, appendix.tex, CITATION.cff

Reproducible: the same workspace gives the same files apart from the generation date (everything is sorted and
the bootstrap uses the settings' seed). Annotators are pseudonymised as in `export` unless asked otherwise.
The statistics come from pipeline/agreement (the agreement report's own functions); nothing is recomputed here.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from pipeline import __version__
from pipeline.agreement.drift import DEFAULT_BATCH
from pipeline.agreement.render import ANCHORING_STATS, fmt, fmt_ci, fmt_shift, fmt_side, shift_summary
from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.gold.export import pseudonyms
from pipeline.store import Store
from pipeline.store import appendix as facts
from pipeline.store.annotations import stream_segments
from pipeline.store.blind import blind_fractions, pushed_blind_subset
from pipeline.store.models import list_models

PACKAGES = ("crowd-kit", "jinja2", "label-studio-sdk", "numpy", "scikit-learn", "scipy", "torch", "transformers")
MAX_DOCUMENTS_LISTED = 200
CONTESTED_LISTED = 10
METHODS = {
    "majority": "majority vote of the annotators per code",
    "dawid-skene": "Dawid and Skene's (1979) latent-class model (crowd-kit): each coder's per-code confusion is "
    "estimated and the gold label is the most probable one",
    "adjudicator": "the decision of an adjudicator in the review project, who saw every annotator's codes",
}


def todo(what: str) -> dict[str, Any]:
    """A placeholder the researcher fills: the workspace cannot know this."""
    return {"kind": "todo", "text": f"[To be completed by the researcher: {what}]"}


def text(value: str) -> dict[str, Any]:
    return {"kind": "text", "text": value}


def table(header: list[str], rows: list[list[Any]], caption: str = "") -> dict[str, Any]:
    return {"kind": "table", "caption": caption, "header": header, "rows": [[str(c) for c in r] for r in rows]}


def heading(value: str) -> dict[str, Any]:
    return {"kind": "heading", "text": value}


@dataclass
class Section:
    id: str
    title: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Appendix:
    title: str
    generated_on: str
    sections: list[Section]
    agreement: dict[str, Any] | None = None

    def outline(self) -> list[str]:
        return [f"{i}. {s.title}" for i, s in enumerate(self.sections, 1)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "generated_on": self.generated_on,
            "outline": self.outline(),
            "sections": [{"id": s.id, "title": s.title, "blocks": s.blocks} for s in self.sections],
        }


# --------------------------------------------------------------------------- gathering


@dataclass
class Context:
    store: Store
    settings: Settings
    codebook: Codebook
    names: dict[str, str]
    report: dict[str, Any] | None
    report_reason: str | None
    models: list[dict[str, Any]]
    drift: dict[str, Any]


def _agreement(store: Store, settings: Settings, codebook: Codebook) -> tuple[dict[str, Any] | None, str | None]:
    """The agreement report's figures (and the anchoring check where a push was blind), or why there are none."""
    from pipeline.agreement.anchoring import anchoring_check
    from pipeline.agreement.ratings import load_ratings, model_labels
    from pipeline.agreement.report import compute_agreement
    from pipeline.agreement.versions import agreement_by_version

    try:
        ratings = load_ratings(store, codebook)
    except CultureCodeError as exc:
        return None, str(exc)
    boot, seed = settings.agreement.bootstrap, settings.agreement.seed
    models = model_labels(store, ratings)
    report = compute_agreement(ratings, None, boot, seed, models=models)
    blind = pushed_blind_subset(store)
    if blind is not None:
        audit = stream_segments(store, "audit")
        report["anchoring"] = anchoring_check(ratings, blind, models, None, boot, seed, audit=audit)
    by_version = agreement_by_version(store, codebook, None, {}, boot, seed)
    if by_version is not None:
        report["codebook_versions"] = by_version
    return report, None


def _context(
    store: Store, settings: Settings, codebook: Codebook, keep_annotator_ids: bool, drift_batch: int
) -> Context:
    from pipeline.agreement.drift import coder_drift

    activity = facts.annotator_activity(store)
    names = pseudonyms([a.annotator for a in activity], keep_annotator_ids)
    report, reason = _agreement(store, settings, codebook)
    models = [m for kind in ("classifier", "llm") for m in list_models(store, kind)]
    models.sort(key=lambda m: (m["created_at"], m["version"]))
    drift = coder_drift(store, codebook.code_ids, drift_batch)
    return Context(store, settings, codebook, names, report, reason, models, drift)


def build_appendix(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    keep_annotator_ids: bool = False,
    drift_batch: int = DEFAULT_BATCH,
) -> Appendix:
    """Every section of the appendix, from the workspace alone (read-only); coder drift by `drift_batch` segments."""
    ctx = _context(store, settings, codebook, keep_annotator_ids, drift_batch)
    sections = [
        codebook_section(ctx),
        data_section(ctx),
        procedure_section(ctx),
        agreement_section(ctx),
        plan_section(ctx),
        anchoring_section(ctx),
        drift_section(ctx),
        model_cards_section(ctx),
        prompts_section(ctx),
        data_statement_section(ctx),
        software_section(ctx),
    ]
    title = f"Methods appendix: {codebook.name}"
    return Appendix(title, datetime.now(UTC).date().isoformat(), sections, ctx.report)


# --------------------------------------------------------------------------- sections


def codebook_section(ctx: Context) -> Section:
    book = ctx.codebook
    blocks = [
        text(
            f"Codebook {book.id} version {book.version} ({len(book.codes)} codes, "
            f"{'one code per segment' if book.single_choice else 'any number of codes per segment'}); "
            f"content hash {book.content_hash}. {book.description}".strip()
        )
    ]
    for code in book.codes:
        blocks += [heading(f"{code.id}: {code.name}"), text(code.definition)]
        blocks.append({"kind": "list", "items": [f"Include: {x}" for x in code.include]})
        if code.exclude:
            blocks.append({"kind": "list", "items": [f"Exclude: {x}" for x in code.exclude]})
        blocks.append({"kind": "list", "items": [f"Example: {x}" for x in code.examples]})
    blocks += [heading("Version history"), *_versions(ctx), *_history(ctx)]
    return Section("codebook", "Codebook", blocks)


def _versions(ctx: Context) -> list[dict[str, Any]]:
    """The recorded codebook versions (`culturecode recode` adds one per edit) and what each changed."""
    from pipeline.agreement.versions import codebook_history

    history = codebook_history(ctx.store)
    if not history:
        return []

    def changed(row: dict[str, Any]) -> str:
        return "; ".join(f"{code} ({', '.join(fields)})" for code, fields in row["changed"].items()) or "-"

    rows = [
        [
            h["hash"],
            h["version"],
            h["first_seen"][:10],
            "yes" if h["hash"] == ctx.codebook.content_hash else "no",
            ", ".join(h["added"]) or "-",
            ", ".join(h["removed"]) or "-",
            changed(h),
        ]
        for h in history
    ]
    header = ["codebook hash", "version", "first seen", "current", "codes added", "codes removed", "codes changed"]
    return [table(header, rows, "Each version against the one before it; its full text is kept in the workspace.")]


def _history(ctx: Context) -> list[dict[str, Any]]:
    seen = facts.codebook_hashes_seen(ctx.store)
    if not seen:
        return [text("No stored row records a codebook hash yet.")]
    kinds = ("annotations", "predictions", "gold", "models", "studio_projects")
    rows = [
        [digest, "yes" if digest == ctx.codebook.content_hash else "no", info["first"] or "-"]
        + [info.get(k, 0) for k in kinds]
        for digest, info in seen.items()
    ]
    header = ["codebook hash", "current", "first seen", "annotations", "predictions", "gold", "models", "projects"]
    note = "Every stored label records the hash of the codebook it was made with; oldest first."
    return [table(header, rows, note)]


def data_section(ctx: Context) -> Section:
    stats = facts.segment_stats(ctx.store)
    docs = ctx.store.documents()
    pseudo = ctx.settings.ingest.pseudonymise or (ctx.store.workspace / "pseudonyms.json").exists()
    mean = f"{stats.mean_chars:.0f}" if stats.mean_chars is not None else "-"
    blocks = [
        text(
            f"{len(docs)} document(s), {sum(stats.per_document.values())} segment(s) (speaker turns, split above "
            f"{ctx.settings.ingest.max_segment_chars} characters; mean {mean} characters), {stats.speakers} distinct "
            f"speaker label(s). Pseudonymisation of names in the transcripts at ingest: "
            f"{'on (the mapping stays in the workspace)' if pseudo else 'off'}."
        )
    ]
    if len(docs) <= MAX_DOCUMENTS_LISTED:
        rows = [[d.id, d.format, stats.per_document.get(d.id, 0), d.content_hash[:16]] for d in docs]
        blocks.append(table(["document", "format", "segments", "content hash"], rows))
    blocks += [heading("Who coded what and when"), _activity_table(ctx)]
    return Section("data", "Data", blocks)


def _activity_table(ctx: Context) -> dict[str, Any]:
    activity = sorted(facts.annotator_activity(ctx.store), key=lambda a: ctx.names[a.annotator])
    rows = [
        [ctx.names[a.annotator], a.annotations, a.segments, (a.first or "-")[:10], (a.last or "-")[:10]]
        for a in activity
    ]
    note = "Kept annotations of annotation projects (last edit dates, UTC); annotators pseudonymised as in `export`."
    if ctx.names and all(k == v for k, v in ctx.names.items()):
        note = "Kept annotations of annotation projects (last edit dates, UTC)."
    return table(["annotator", "annotations", "segments", "first", "last"], rows, note)


def procedure_section(ctx: Context) -> Section:
    counts = facts.prediction_counts(ctx.store)
    rows = [
        [
            m["version"],
            m["kind"],
            m["created_at"][:10],
            counts.get(m["version"], 0),
            _admitted(m),
            m["metrics"].get("prompt_version") or "-",
            "yes" if m["is_current"] else "no",
        ]
        for m in ctx.models
    ]
    blocks = [heading("Pre-labels")]
    if rows:
        header = ["model version", "kind", "created", "predictions", "codes admitted", "prompt", "current"]
        caption = "Codes admitted: pre-ticked for annotators (models.metrics admission); the others showed as hints."
        blocks.append(table(header, rows, caption))
    else:
        blocks.append(text("No model pre-labelled this workspace: annotators coded without suggestions."))
    blocks += [heading("Sampling design and task order"), *_design(ctx)]
    blocks += [heading("Threshold changes during coding"), *_calibration_events(ctx)]
    blocks += [heading("Blind subset"), text(_blind_text(ctx))]
    blocks += [heading("Adjudication"), *_adjudication(ctx)]
    return Section("procedure", "Procedure", blocks)


STREAM_HOW = {
    "blind": "uniformly random (stable hash of a per-workspace salt and the segment id); no pre-labels",
    "audit": "uniformly random (an independent stable hash); pre-labelled; a segment drawn for both went blind",
    "review": "segments sent to adjudicators for review",
    "uncertainty": "chosen and ordered by the model: least certain pre-label first",
    "sequential": "the rest, in import (document) order",
}


def _design(ctx: Context) -> list[dict[str, Any]]:
    """The streams the pushed tasks belong to, with their inclusion probabilities, and the order rule."""
    from pipeline.store.annotations import task_streams
    from pipeline.store.blind import ORDER_RULE

    tasks = task_streams(ctx.store)
    if not tasks:
        return [text("No task was pushed to Label Studio.")]
    groups: dict[tuple[str, float | None], tuple[int, set[str]]] = {}
    for t in tasks:
        key = (t["stream"] or "(not recorded)", t["inclusion_probability"])
        n, segs = groups.get(key, (0, set()))
        groups[key] = (n + 1, segs | {t["segment_id"]})
    rows = [
        [
            stream,
            n,
            len(segs),
            "-" if p is None else f"{p:.4g}",
            STREAM_HOW.get(stream, f"chosen and ordered by the active-learning strategy {stream}")
            if stream != "(not recorded)"
            else "pushed before streams were recorded (culturecode < issue 27): chosen by the label stream's order",
        ]
        for (stream, p), (n, segs) in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))
    ]
    header = ["stream", "tasks", "segments", "inclusion probability", "how chosen"]
    random_streams = any(stream in ("blind", "audit") for stream, _ in groups)
    order = (
        f"Task order in each annotator's label stream: {ORDER_RULE}. The model-ordered tasks follow studio.sampling "
        f"({ctx.settings.studio.sampling}); a new model version re-orders the tasks nobody has annotated yet."
    )
    if not random_streams:
        order = (
            f"Task order in each annotator's label stream: studio.sampling ({ctx.settings.studio.sampling}); no "
            "random stream (blind or audit) was pushed, so every coded segment was chosen by that order and no "
            "figure rests on a random sample."
        )
    return [table(header, rows, "Per pushed task (one per segment and project)."), text(order)]


def _calibration_events(ctx: Context) -> list[dict[str, Any]]:
    """Each re-tuning of a model's thresholds on the project's labels (`calibrate`, run by `pull` and `retrain`):
    when, which model, on how many labels, and the thresholds that moved (before -> after)."""
    from pipeline.store.calibration import calibration_history

    history = calibration_history(ctx.store)
    if not history:
        return [text("No threshold was re-tuned during coding: pre-ticks followed each model's own thresholds.")]
    rows: list[list[Any]] = []
    previous: dict[str, dict[str, float]] = {}
    for cal in history:
        before = previous.get(cal.model_version)
        moved = [
            f"{code} {before[code]:.3f} -> {value:.3f}" if before and code in before else f"{code} -> {value:.3f}"
            for code, value in sorted(cal.thresholds.items())
            if cal.sources.get(code) == "project" and (not before or before.get(code) != value)
        ]
        rows.append([cal.created_at[:19], cal.model_version, cal.labels, "; ".join(moved) or "none moved"])
        previous[cal.model_version] = cal.thresholds
    caption = (
        "Thresholds re-tuned on the project's own labels while coding went on; each change re-decided the pre-labels "
        "of segments nobody had annotated and updated their Label Studio tasks, so later annotators saw different "
        "pre-ticks than earlier ones. 'code -> t' without a before: first re-tuning (before: the model's own)."
    )
    return [table(["when (UTC)", "model version", "labels", "thresholds moved (before -> after)"], rows, caption)]


def _admitted(model: dict[str, Any]) -> str:
    admission = model["metrics"].get("admission")
    if not admission:
        return "not measured (every predicted code pre-ticked)"
    if not admission.get("enabled", True):
        return "gate off (every predicted code pre-ticked)"
    return ", ".join(sorted(admission.get("admitted") or [])) or "none"


def _blind_text(ctx: Context) -> str:
    fractions = blind_fractions(ctx.store)
    blind = pushed_blind_subset(ctx.store)
    if blind is None:
        return "No project was pushed with a blind subset: every pushed segment carried the model's pre-labels."
    from pipeline.store.segments import segment_ids

    members = len(blind.pick(sorted(segment_ids(ctx.store))))
    return (
        f"A stable random {blind.fraction:.0%} of segments ({members} now) went to every annotator with no "
        f"pre-selected codes and no model reasons (sha256 of a per-workspace salt and the segment id; "
        f"{len(fractions)} project(s) pushed with a blind fraction)."
    )


def _adjudication(ctx: Context) -> list[dict[str, Any]]:
    methods = facts.gold_methods(ctx.store)
    if not methods:
        return [text("No gold labels yet (`culturecode adjudicate`).")]
    rows = [[m, n, METHODS.get(m, m)] for m, n in methods.items()]
    blocks = [table(["method", "gold segments", "how the gold label was decided"], rows)]
    if "dawid-skene" in methods:
        blocks += _confusion(ctx)
    return blocks


def _confusion(ctx: Context) -> list[dict[str, Any]]:
    """Each coder's sensitivity and specificity per code, as the last Dawid-Skene adjudication estimated them."""
    from pipeline.gold.adjudicate import CONFUSION_META

    raw = ctx.store.get_meta(CONFUSION_META)
    note = "Dawid-Skene was used: each coder's confusion per code is estimated from all annotations (EM)."
    if not raw:
        return [text(note)]
    rows = [
        [code, ctx.names.get(coder, coder), f["segments"], fmt(f["sensitivity"]), fmt(f["specificity"])]
        for code, coders in json.loads(raw).items()
        for coder, f in sorted(coders.items(), key=lambda kv: ctx.names.get(kv[0], kv[0]))
    ]
    caption = (
        "Sensitivity: the estimated chance the coder ticks the code where it applies; specificity: that they leave "
        "it where it does not (Dawid and Skene 1979, one yes/no model per code)."
    )
    return [text(note), table(["code", "coder", "segments", "sensitivity", "specificity"], rows, caption)]


def _no_agreement(ctx: Context, what: str) -> list[dict[str, Any]]:
    return [text(f"No {what}: {ctx.report_reason}")]


def agreement_section(ctx: Context) -> Section:
    r = ctx.report
    if r is None:
        return Section("agreement", "Agreement", _no_agreement(ctx, "agreement figures"))
    boot = r["bootstrap"]
    blocks = [
        text(
            f"{r['n_items']} segment(s) coded by {r['n_annotators']} annotator(s). 95% bootstrap intervals over "
            f"segments ({boot['replicates']} replicates, seed {boot['seed']}). "
            f"Bands: {r['definitions']['alpha_bands']}; kappa: {r['definitions']['kappa_bands']}. "
            f"{r['summary']['text']}"
        )
    ]
    rows = []
    for code, s in r["codes"].items():
        band = s["interpretation"]["krippendorff_alpha"]
        rows.append(
            [
                code,
                s["n_pairable_units"],
                fmt(s["percent_agreement"]),
                fmt(s["krippendorff_alpha"]),
                fmt_ci(s["krippendorff_alpha_ci"]),
                band,
                fmt(s["cohen_kappa_mean"]),
                fmt(s["gwet_ac1"]),
            ]
        )
    header = ["code", "double-coded", "% agr.", "Kripp. alpha", "95% CI", "band", "Cohen kappa", "Gwet AC1"]
    blocks.append(table(header, rows, "Per code (present/absent)."))
    o = r["overall"]
    overall_rows = [
        [name, fmt(o.get(name)), o["interpretation"].get(name) or "-"]
        for name in ("alpha_masi", "alpha_jaccard", "exact_match")
    ]
    blocks.append(table(["over the label set", "value", "band"], overall_rows))
    blocks += _per_version(r.get("codebook_versions"))
    blocks += _contested(ctx, r["disagreements"][:CONTESTED_LISTED])
    return Section("agreement", "Agreement", blocks)


def _per_version(versions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Alpha per code for each codebook version the annotations were made with (when there are several)."""
    if not versions:
        return []
    rows = [
        [v["hash"], v["version"], v["n_items"], code, fmt(c["krippendorff_alpha"]), fmt_ci(c["krippendorff_alpha_ci"])]
        + [c["n_pairable_units"]]
        for v in versions
        for code, c in v["codes"].items()
    ]
    header = ["codebook hash", "version", "segments", "code", "Kripp. alpha", "95% CI", "double-coded"]
    caption = "Annotations grouped by the codebook version they were made with, oldest version first."
    return [heading("Agreement per codebook version"), table(header, rows, caption)]


def _contested(ctx: Context, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The most contested segments with their text: what the coders read differently."""
    from pipeline.store.segments import segment_texts

    if not rows:
        return []
    texts = segment_texts(ctx.store, [d["item"] for d in rows])
    cells = [
        [
            d["item"],
            ", ".join(f"{c} {n}/{d['n_annotators']}" for c, n in d["split_votes"].items()),
            texts.get(d["item"]),
        ]
        for d in rows
    ]
    caption = "Split votes: annotators who ticked the code / annotators who coded the segment."
    return [heading("Most contested segments"), table(["segment", "split votes", "text"], cells, caption)]


def plan_section(ctx: Context) -> Section:
    raw = ctx.store.get_meta("reliability_plan")
    if raw is None:
        blocks = [
            text("No reliability plan was recorded (`culturecode reliability`)."),
            todo("how many segments were double-coded and why that many"),
        ]
        return Section("plan", "Reliability plan", blocks)
    plan = json.loads(raw)
    first_raw = ctx.store.get_meta("reliability_plan_precoding")
    first = json.loads(first_raw) if first_raw else None
    t = plan["target"]
    goal = f"alpha >= {t['alpha_min']:.3f} at p = {t['significance']:g} with {t['coders']} coders"
    source = f"expected shares from {plan['model_version']}" if plan.get("model_version") else "given expected shares"
    units = plan["units"] if plan["units"] is not None else "unknown"
    blocks = [text(f"Target: {goal} (Bloch and Kraemer's formula as Krippendorff 2019 applies it; {source}).")]
    blocks.append(text(_plans_text(first, plan, units)))
    before = {c["code"]: c for c in (first or {}).get("codes", [])}
    rows = [
        [
            c["code"],
            fmt(before[c["code"]]["share"]) if c["code"] in before else "-",
            (before[c["code"]]["units"] or "-") if c["code"] in before else "-",
            fmt(c["share"]),
            c["units"] or "-",
            c["units_oversampled"] or "-",
        ]
        for c in plan["codes"]
    ]
    header = ["code", "share (pre-coding)", "units (pre-coding)", "share (latest)", "units (latest)", "oversampled"]
    blocks.append(table(header, rows))
    if plan.get("progress"):
        rows = [
            [
                p["code"],
                p["double_coded"],
                fmt(p["alpha"]),
                fmt_ci(p.get("ci")),
                fmt(p["lower_bound"]),
                "-" if p["more_needed"] is None else p["more_needed"],
                p["status"],
            ]
            for p in plan["progress"]
        ]
        header = ["code", "double-coded", "alpha", "95% CI", "lower bound", "more needed", "status"]
        blocks.append(table(header, rows, "Progress when the plan was last run."))
    verdict = "met" if plan.get("stop") else "not met"
    blocks.append(text(f"Stop rule when the plan was last run: {verdict} ({plan.get('stop_reason') or '-'})."))
    blocks.append(text(_met_now(ctx, t["alpha_min"])))
    return Section("plan", "Reliability plan", blocks)


def _plans_text(first: dict[str, Any] | None, latest: dict[str, Any], units: Any) -> str:
    """The plan made before coding (frozen, with its date) beside the latest."""
    when = (latest.get("recorded_at") or "date not recorded")[:10]
    if first is None:
        return (
            f"No plan was recorded before double-coding began. Latest plan ({when}): {units} segment(s) "
            "double-coded for the whole codebook."
        )
    first_units = first["units"] if first["units"] is not None else "unknown"
    return (
        f"Planned before coding ({(first.get('recorded_at') or '')[:10]}, frozen): {first_units} double-coded "
        f"segment(s) for the whole codebook. Latest plan ({when}): {units}."
    )


def _met_now(ctx: Context, alpha_min: float) -> str:
    """Whether every code's 95% interval now lies above the target (the agreement section's figures)."""
    if ctx.report is None:
        return f"Now: not known ({ctx.report_reason})"
    short = [
        code
        for code, s in ctx.report["codes"].items()
        if not s["krippendorff_alpha_ci"] or s["krippendorff_alpha_ci"][0] < alpha_min
    ]
    if not short:
        return f"Now: met, every code's 95% interval lies above alpha = {alpha_min:.3f}."
    return f"Now: not met; the 95% interval reaches below alpha = {alpha_min:.3f} for {', '.join(short)}."


def anchoring_section(ctx: Context) -> Section:
    check = (ctx.report or {}).get("anchoring")
    if not check:
        return Section("anchoring", "Anchoring check", [text(_blind_text(ctx))])
    groups = check["groups"]
    blocks = [
        text(
            f"{groups['blind']['n_items']} blind and {groups['assisted']['n_items']} assisted segment(s) coded "
            f"(pre-labels from {check['model_version'] or 'no model'}). {check['note']}"
        )
    ]
    if check.get("reason"):
        return Section("anchoring", "Anchoring check", [*blocks, text(f"Not computed: {check['reason']}.")])
    rows = []
    for code, stats in check["codes"].items():
        for key, label in ANCHORING_STATS:
            s = stats[key]
            diff = s["difference"]
            rows.append([code, label, fmt_side(s["blind"]), fmt_side(s["assisted"]), fmt_side(diff), fmt_shift(diff)])
    header = ["code", "figure", "blind [95% CI]", "assisted [95% CI]", "difference [95% CI]", "adjusted p: shifted"]
    blocks.append(table(header, rows))
    blocks.append(text(shift_summary(check)))
    return Section("anchoring", "Anchoring check", blocks)


def drift_section(ctx: Context) -> Section:
    from pipeline.agreement.drift import HEADER, METHOD, drift_rows

    rows = drift_rows(ctx.drift, ctx.names)
    if not rows:
        return Section("drift", "Coder drift", [text(METHOD), text("No annotations yet.")])
    caption = f"Batches of {ctx.drift['batch_size']} segments per annotator, in the order they were coded."
    blocks = [text(METHOD), table(HEADER, rows, caption), *_weeks(ctx)]
    return Section("drift", "Coder drift", blocks)


def _weeks(ctx: Context) -> list[dict[str, Any]]:
    from pipeline.agreement.drift import WEEK_HEADER, plot_weeks, week_rows

    rows = week_rows(ctx.drift, ctx.names)
    if not rows:
        return []
    blocks = [heading("By ISO week"), table(WEEK_HEADER, rows, "The same figures by the ISO week of the last edit.")]
    png = plot_weeks(ctx.drift, ctx.names)
    if png is not None:
        caption = "Cohen's kappa with the gold (solid) and with the model (dashed) by week, per annotator."
        blocks.append({"kind": "image", "file": "drift-weeks.png", "caption": caption, "png": png})
    return blocks


def model_cards_section(ctx: Context) -> Section:
    if not ctx.models:
        return Section("models", "Model cards", [text("No model was registered in this workspace.")])
    per_version = (ctx.report or {}).get("models", {})
    blocks: list[dict[str, Any]] = []
    for m in ctx.models:
        blocks.append(heading(f"{m['version']} ({m['kind']})"))
        facts_ = {k: v for k, v in sorted(m["metrics"].items()) if isinstance(v, str | int | float | bool)}
        items = [f"created {m['created_at'][:10]}, codebook {m['codebook_hash']}"]
        items += [f"{k}: {fmt(v)}" for k, v in facts_.items()]
        blocks.append({"kind": "list", "items": items})
        agreement = per_version.get(m["version"])
        if agreement is None:
            blocks.append(text("No model-human agreement: the model labelled none of the annotated segments."))
            continue
        rows = [
            [code, fmt(a["cohen_kappa_mean"]), a["interpretation"] or "-", fmt(a["percent_agreement"])]
            for code, a in agreement["codes"].items()
        ]
        caption = f"Model-human agreement on {agreement['n_items']} annotated segment(s) (mean over annotators)."
        blocks.append(table(["code", "Cohen kappa", "band", "% agr."], rows, caption))
    return Section("models", "Model cards", blocks)


def _prompt_names(ctx: Context) -> list[str]:
    used = {m["metrics"]["prompt"] for m in ctx.models if m["kind"] == "llm" and m["metrics"].get("prompt")}
    return sorted(used | {ctx.settings.llm.prompt})


def prompts_section(ctx: Context) -> Section:
    from pipeline.llm.prompts import load_template

    recorded: dict[str, list[str]] = {}
    for m in ctx.models:
        if m["kind"] == "llm" and m["metrics"].get("prompt_version"):
            recorded.setdefault(m["metrics"]["prompt_version"], []).append(m["version"])
    blocks = [
        text(
            "A prompt's version is the hash of its two template files (pipeline/llm/prompts.py); every LLM "
            "label records the version that produced it."
        )
    ]
    for name in _prompt_names(ctx):
        try:
            template = load_template(name, ctx.settings.llm.prompts_dir)
        except CultureCodeError as exc:
            blocks += [heading(name), text(f"Template not found now: {exc}")]
            continue
        used_by = ", ".join(recorded.get(template.version, [])) or "no model version in this workspace"
        blocks += [heading(f"{name} (version {template.version})"), text(f"Used by: {used_by}.")]
        blocks.append({"kind": "code", "caption": "system", "text": template.system_source.rstrip()})
        blocks.append({"kind": "code", "caption": "user", "text": template.user_source.rstrip()})
    stale = sorted(set(recorded) - {load_version(ctx, n) for n in _prompt_names(ctx)})
    if stale:
        blocks.append(text(f"Recorded prompt versions whose templates changed since: {', '.join(stale)}."))
    return Section("prompts", "LLM prompts", blocks)


def load_version(ctx: Context, name: str) -> str | None:
    from pipeline.llm.prompts import load_template

    try:
        return load_template(name, ctx.settings.llm.prompts_dir).version
    except CultureCodeError:
        return None


def data_statement_section(ctx: Context) -> Section:
    """Bender and Friedman's (2018) data statement: the workspace's facts, and placeholders for the rest."""
    stats = facts.segment_stats(ctx.store)
    formats = sorted({d.format for d in ctx.store.documents()})
    heads: list[tuple[str, list[dict[str, Any]]]] = [
        ("Curation rationale", [todo("why these interviews or transcripts were selected, and what was left out")]),
        (
            "Language variety",
            [
                text(f"Language setting at ingest: {ctx.settings.ingest.language}."),
                todo("the language variety, with a BCP-47 tag and a prose description (e.g. en-GB, British English)"),
            ],
        ),
        (
            "Speaker demographic",
            [
                text(f"{stats.speakers} distinct speaker label(s) in the transcripts."),
                todo("age, gender, occupation, role and other relevant traits of the speakers"),
            ],
        ),
        (
            "Annotator demographic",
            [
                text(f"{len(ctx.names)} annotator(s) coded segments."),
                todo("the annotators' training, background and relation to the study"),
            ],
        ),
        ("Speech situation", [todo("time, place, modality (interview, focus group), interviewer and purpose")]),
        (
            "Text characteristics",
            [
                text(
                    f"{sum(stats.per_document.values())} segment(s) of transcribed speech in "
                    f"{len(stats.per_document)} document(s); formats {', '.join(formats) or '-'}."
                ),
                todo("genre, topic and transcription conventions"),
            ],
        ),
        ("Provenance", [todo("who collected and transcribed the data, consent, ethics approval and licence")]),
    ]
    blocks: list[dict[str, Any]] = [text("Headings after Bender and Friedman (2018).")]
    for title, content in heads:
        blocks += [heading(title), *content]
    return Section("data-statement", "Data statement", blocks)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _fingerprint(rows: list[Any]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def software_section(ctx: Context) -> Section:
    from pipeline.store.annotations import live_annotations
    from pipeline.store.gold import gold_segments

    versions = [["culturecode", __version__], ["python", platform.python_version()]]
    versions += [[p, _version(p)] for p in PACKAGES]
    annotations = sorted([a.segment_id, a.annotator, sorted(a.codes)] for a in live_annotations(ctx.store))
    gold = [[g.segment_id, sorted(g.codes), g.method] for g in gold_segments(ctx.store)]
    hashes = [
        ["codebook", ctx.codebook.content_hash],
        ["documents (ids and content hashes)", _fingerprint([[d.id, d.content_hash] for d in ctx.store.documents()])],
        ["annotations (segment, annotator, codes)", _fingerprint(annotations)],
        ["gold (segment, codes, method)", _fingerprint(gold)],
        ["database schema version", str(ctx.store.schema_version)],
    ]
    blocks = [
        table(["software", "version"], versions),
        table(["content", "sha256 (first 16 hex digits)"], hashes, "Same data, same hash: compare with a rerun."),
        text("Cite culturecode with the CITATION.cff written next to this appendix."),
    ]
    return Section("software", "Software and content hashes", blocks)
