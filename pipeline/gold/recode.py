"""Recode: after the codebook changes, re-score the segments and send only those whose codes flip to review.

`recode(...)` compares the workspace's recorded codebook with the edited one (codes added, removed, changed),
scores the segments the current model of a labeller kind had predicted under the old codebook again under the
new one, and lists the segments whose predicted codes differ. Unless it is a dry run, the new codebook becomes
the workspace's (both versions stay in `codebook_versions`) and the flipped segments, and only those, go to a
Label Studio review project.

How each labeller re-reads the codebook:
- the LLM labellers are prompted again with it (their prompts are built from the codebook; the new answers
  replace the old under the same version), as is any plugin that relabels or whose version follows the codebook;
- the classifier folds the codebook into its weights when it is trained, so it cannot read an edited definition
  or a new code: `retrain=True` trains two versions on the gold labels with the same settings, one under each
  codebook (codes the new one drops are left out), and compares those, so that the flips come from the edit
  and not from training data the current model may not share.

A push that fails leaves the flips pending (meta `recode_pending`); running the same recode again pushes them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.agreement.versions import CodebookDiff, codebook_diff
from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.store import Store
from pipeline.store.codebooks import codebook_version, record_codebook_version
from pipeline.store.db import dumps
from pipeline.store.models import current_model, forget_model, promote_model
from pipeline.store.predictions import predictions_of, write_predictions


@dataclass
class Flip:
    segment_id: str
    before: list[str]
    after: list[str]

    @property
    def gained(self) -> list[str]:
        return [c for c in self.after if c not in self.before]

    @property
    def lost(self) -> list[str]:
        return [c for c in self.before if c not in self.after]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gained": self.gained, "lost": self.lost}


def find_flips(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[Flip]:
    """Segments scored under both codebooks whose sets of predicted codes differ, in `before`'s order."""
    return [
        Flip(seg, sorted(old), sorted(after[seg]))
        for seg, old in before.items()
        if seg in after and set(old) != set(after[seg])
    ]


@dataclass
class RecodeReport:
    diff: CodebookDiff
    labeller: str
    model_before: str
    model_after: str | None = None
    retrained: bool = False
    scored: int = 0
    flips: list[Flip] = field(default_factory=list)
    dry_run: bool = False
    pushed: Any = None
    message: str = ""

    def by_code(self) -> dict[str, dict[str, int]]:
        """Per code, the flipped segments that gained it and those that lost it (codes that moved only)."""
        out: dict[str, dict[str, int]] = {}
        for flip in self.flips:
            for key, codes in (("gained", flip.gained), ("lost", flip.lost)):
                for code in codes:
                    out.setdefault(code, {"gained": 0, "lost": 0})[key] += 1
        return dict(sorted(out.items()))

    def as_dict(self) -> dict[str, Any]:
        pushed = self.pushed.as_dict() if hasattr(self.pushed, "as_dict") else self.pushed
        return {
            "codebook": {**asdict(self.diff), "summary": self.diff.describe()},
            "labeller": self.labeller,
            "model_before": self.model_before,
            "model_after": self.model_after,
            "retrained": self.retrained,
            "scored": self.scored,
            "flipped": len(self.flips),
            "unchanged": self.scored - len(self.flips),
            "by_code": self.by_code(),
            "flips": [f.as_dict() for f in self.flips],
            "dry_run": self.dry_run,
            "pushed": pushed,
            "message": self.message,
        }


def stored_codebook(store: Store) -> Codebook:
    """The codebook the workspace labels with now (recorded at ingest, replaced by `recode`)."""
    raw = store.get_meta("codebook")
    if raw is None:
        raise CultureCodeError(f"{store.workspace} has no codebook yet: run `culturecode ingest PATH` first")
    return Codebook.model_validate(json.loads(raw))


@contextmanager
def _codebook_in_effect(store: Store, old: Codebook, new: Codebook, keep: bool) -> Iterator[None]:
    """The workspace labels with `new` inside the block; afterwards it keeps `new` (and its history entry) only
    when `keep`, else the old codebook is put back (a dry run)."""
    with store.transaction():
        if codebook_version(store, old.content_hash) is None:  # a workspace from before the history table
            record_codebook_version(store, old)
        store.set_meta("codebook_hash", new.content_hash)
        store.set_meta("codebook", dumps(new.model_dump()))
    restore = not keep
    try:
        yield
    except BaseException:
        restore = True
        raise
    finally:
        with store.transaction():
            if restore:
                store.set_meta("codebook_hash", old.content_hash)
                store.set_meta("codebook", dumps(old.model_dump()))
            else:
                store.record_codebook(new)


def recode(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    labeller: str = "classifier",
    retrain: bool = False,
    dry_run: bool = False,
    adjudicator: str | None = None,
    options: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> RecodeReport:
    """Re-score under `codebook` the segments the current `labeller` model predicted; find and queue the flips."""
    from pipeline.labellers import registry

    old = stored_codebook(store)
    diff = codebook_diff(old, codebook)
    kind = registry.kind_of(registry.check(labeller))
    current = current_model(store, kind)
    if current is None:
        raise CultureCodeError(f"no current {kind} model in {store.workspace}: nothing predicted to compare against")
    report = RecodeReport(diff, labeller, current, dry_run=dry_run)
    if diff.same:
        return _resume(store, settings, codebook, report, adjudicator, show_progress)
    if kind == "classifier" and not retrain:
        raise CultureCodeError(_cannot_reread(current, diff))
    if retrain and kind != "classifier":
        raise CultureCodeError(f"--retrain trains the classifier; '{labeller}' re-reads the codebook without it")
    segments = list(predictions_of(store, current))
    if not dry_run:
        store.back_up_now()  # the codebook switch: restore goes back to just before it (issue 26 #8)
    if retrain:
        before, after = _retrain_both(store, settings, old, codebook, segments, dry_run, show_progress)
        report.retrained = True
    else:
        before, after = _reprompt(store, settings, old, codebook, labeller, options, segments, dry_run)
    report.model_before, report.model_after = before.version, after.version
    report.scored = sum(1 for seg in before.codes if seg in after.codes)
    report.flips = find_flips(before.codes, after.codes)
    if report.flips and not dry_run:
        with store.transaction():  # a push that fails is retried by running the same recode again
            store.set_meta(PENDING, json.dumps(_pending(report, codebook)))
        report.pushed = _push_flips(store, settings, codebook, report, adjudicator, show_progress)
        with store.transaction():
            store.set_meta(PENDING, "")
    report.message = _message(report)
    return report


PENDING = "recode_pending"  # flipped segments a recode has not pushed yet (the push failed)


def _pending(report: RecodeReport, codebook: Codebook) -> dict[str, Any]:
    return {"codebook_hash": codebook.content_hash, "report": report.as_dict()}


def _resume(
    store: Store, settings: Settings, codebook: Codebook, report: RecodeReport, adjudicator: str | None, show: bool
) -> RecodeReport:
    """The codebook is already the workspace's: push the flips of a recode whose push failed, if any."""
    raw = store.get_meta(PENDING)
    pending = json.loads(raw) if raw else None
    if pending is None or pending["codebook_hash"] != codebook.content_hash or report.dry_run:
        report.message = f"the codebook is unchanged ({report.diff.new_hash}): nothing to recode"
        return report
    done = pending["report"]
    report.model_before, report.model_after = done["model_before"], done["model_after"]
    report.retrained, report.scored = done["retrained"], done["scored"]
    report.diff = CodebookDiff(**{k: v for k, v in done["codebook"].items() if k != "summary"})
    report.flips = [Flip(f["segment_id"], f["before"], f["after"]) for f in done["flips"]]
    report.pushed = _push_flips(store, settings, codebook, report, adjudicator, show)
    with store.transaction():
        store.set_meta(PENDING, "")
    report.message = _message(report) + " (left over from the previous recode, whose push had failed)"
    return report


@dataclass
class Scored:
    """One model version's predicted codes per segment."""

    version: str
    codes: dict[str, list[str]]


def _scored(store: Store, version: str) -> Scored:
    return Scored(version, {seg: row.codes for seg, row in predictions_of(store, version).items()})


def _retrain_both(
    store: Store,
    settings: Settings,
    old: Codebook,
    new: Codebook,
    segments: list[str],
    dry_run: bool,
    show_progress: bool,
) -> tuple[Scored, Scored]:
    """Two classifiers on the same gold labels and settings, one under each codebook: what differs between their
    predictions comes from the codebook edit, not from new training data (the current model may have been trained
    on other labels). The new one becomes current unless it is a dry run."""
    quick = settings.model_copy(update={"classifier": settings.classifier.model_copy(update={"export_onnx": False})})
    trials: list[str] = []  # a dry run's classifiers, discarded at the end however it ends
    try:
        base = _retrain(store, quick, old, promote=False, show_progress=show_progress)  # compared, never pushed
        trials.append(base)
        _rescore(store, settings, old, "classifier", base, None, segments)
        with _codebook_in_effect(store, old, new, keep=not dry_run):
            edited = _retrain(store, settings, new, promote=not dry_run, show_progress=show_progress)
            trials.append(edited)
            _rescore(store, settings, new, "classifier", edited, None, segments)
        return _scored(store, base), _scored(store, edited)
    finally:
        if dry_run:
            _discard(store, trials)


def _discard(store: Store, versions: list[str]) -> None:
    """Forget trial classifiers with their predictions, then remove their directories."""
    with store.transaction():
        paths = [forget_model(store, version) for version in versions]
    for path in paths:
        if path:
            shutil.rmtree(path, ignore_errors=True)


def _reprompt(
    store: Store,
    settings: Settings,
    old: Codebook,
    new: Codebook,
    labeller: str,
    options: dict[str, Any] | None,
    segments: list[str],
    dry_run: bool,
) -> tuple[Scored, Scored]:
    """The current version's predictions, and those of the labeller prompted with the edited codebook. A dry run
    leaves the stored predictions and the current model as they were."""
    from pipeline.labellers import registry

    kind = registry.kind_of(labeller)
    current = current_model(store, kind) or ""
    kept = list(predictions_of(store, current).values())
    before = _scored(store, current)
    with _codebook_in_effect(store, old, new, keep=not dry_run):
        version = _rescore(store, settings, new, labeller, None, options, segments)
        after = _scored(store, version)
        if dry_run:
            with store.transaction():
                promote_model(store, current, kind)
                if version == current:  # an LLM keeps its version: put the answers to the old codebook back
                    write_predictions(store, kept, old.content_hash)
    return before, after


def _cannot_reread(version: str, diff: CodebookDiff) -> str:
    new = f"cannot express the new code(s) {', '.join(diff.added)}" if diff.added else "cannot re-read the codebook"
    return (
        f"classifier {version} folded codebook {diff.old_hash} into its weights when it was trained and {new} "
        f"({diff.describe()}); rerun with --retrain, or --with llm to re-prompt"
    )


def _rescore(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    name: str,
    model_version: str | None,
    options: dict[str, Any] | None,
    segment_ids: list[str],
) -> str:
    """Score `segment_ids` under `codebook` with labeller `name`; returns the version its predictions are under."""
    from pipeline.labellers import registry
    from pipeline.labellers.base import LabelContext
    from pipeline.labellers.run import run_labeller

    context = LabelContext(store, settings, codebook, model_version, dict(options or {}), show_progress=False)
    made = registry.create(name, context)
    previous = current_model(store, registry.kind_of(name))
    if made.version == previous and model_version is None and not getattr(made, "relabel", False):
        raise CultureCodeError(
            f"labeller '{name}' keeps version {made.version} under the edited codebook: its labels do not depend on "
            f"the codebook, so there is nothing to re-score (retrain it, or use --with llm)"
        )
    if segment_ids:
        run_labeller(made, store, codebook, segment_ids, show_progress=False, stage="recode")
    return made.version


def _retrain(store: Store, settings: Settings, codebook: Codebook, promote: bool, show_progress: bool) -> str:
    """Train a classifier under `codebook` on the gold labels, without the codes it drops; returns the version."""
    from pipeline.classifier.training import train

    path = _gold_for(store, codebook)
    return train(store, settings, codebook, gold=path, promote=promote, show_progress=show_progress).version


def _gold_for(store: Store, codebook: Codebook) -> Path:
    """The gold table as a training file under `codebook`: codes it no longer has are left out."""
    from pipeline.store.gold import gold_segments

    keep = set(codebook.code_ids)
    rows = [
        {"id": g.segment_id, "text": g.text, "codes": [c for c in g.codes if c in keep], "document": g.document_id}
        for g in gold_segments(store)
    ]
    if not rows:
        raise CultureCodeError(f"{store.workspace} has no gold labels to retrain on: run `culturecode adjudicate`")
    path = store.workspace / "exports" / f"recode-gold-{codebook.content_hash}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _push_flips(
    store: Store, settings: Settings, codebook: Codebook, report: RecodeReport, adjudicator: str | None, show: bool
) -> Any:
    """The flipped segments, and only those, to the review project (its labelling config follows the codebook)."""
    from pipeline import studio

    return studio.push(
        store,
        settings,
        codebook,
        annotators=[adjudicator] if adjudicator else None,
        model_version=report.model_after,
        segment_ids=[f.segment_id for f in report.flips],
        role="review",
        update_config=True,
        show_progress=show,
    )


def _message(report: RecodeReport) -> str:
    flipped, scored = len(report.flips), report.scored
    head = f"codebook {report.diff.old_hash} -> {report.diff.new_hash} ({report.diff.describe()}): "
    head += f"{flipped} of {scored} segment(s) flip between {report.model_before} and {report.model_after}"
    if report.dry_run:
        kept = (
            "its codebook and models (the two trial classifiers were discarded)" if report.retrained else "its codebook"
        )
        return head + f"; dry run: nothing pushed, the workspace keeps {kept}"
    if not flipped:
        return head + "; nothing to review"
    return head + "; the flipped segments went to the review project"
