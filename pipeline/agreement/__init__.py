"""Inter-annotator agreement: coefficients, bootstrap intervals, the report, contested segments.

from pipeline.agreement import agreement_report
result = agreement_report(store, settings, codebook)      # writes reports/agreement-<date>.*
result.report["codes"]["mission"]["krippendorff_alpha"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.agreement.admission import current_tables
from pipeline.agreement.anchoring import anchoring_check
from pipeline.agreement.drift import coder_drift
from pipeline.agreement.ratings import Ratings, load_ratings, model_labels, read_input
from pipeline.agreement.render import write_reports
from pipeline.agreement.report import compute_agreement, contested
from pipeline.agreement.versions import agreement_by_version
from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.store import Store, now
from pipeline.store.annotations import stream_segments
from pipeline.store.blind import pushed_blind_subset
from pipeline.store.segments import segment_texts

__all__ = [
    "AgreementResult",
    "agreement_report",
    "agreement_from_file",
    "compute_agreement",
    "disagreements",
    "load_ratings",
    "read_input",
]


@dataclass
class AgreementResult:
    report: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


def _check_codes(codes: list[str] | None, available: list[str]) -> list[str] | None:
    if not codes:
        return None
    unknown = [c for c in codes if c not in available]
    if unknown:
        raise CultureCodeError(f"--codes: unknown code(s) {', '.join(unknown)}; known: {', '.join(available)}")
    return [c for c in available if c in codes]


def _finish(
    ratings: Ratings,
    report: dict[str, Any],
    texts: dict[str, str],
    out_dir: str | Path | None,
    source: str,
    filters: dict[str, Any],
) -> AgreementResult:
    report["generated_at"] = now()
    report["source"] = source
    report["filters"] = filters
    for row in report["disagreements"]:
        row["text"] = texts.get(row["item"])
    paths = {}
    if out_dir is not None:
        stem = f"agreement-{datetime.now(UTC).date().isoformat()}"
        paths = write_reports(report, Path(out_dir), stem)
    return AgreementResult(report, paths)


def agreement_report(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    annotators: list[str] | None = None,
    codes: list[str] | None = None,
    since: str | None = None,
    documents: list[str] | None = None,
    out_dir: Path | None | str = "default",
) -> AgreementResult:
    """Agreement among the workspace's annotators (and each model version), written as HTML/MD/JSON."""
    ratings = load_ratings(store, codebook, annotators, since, documents)
    codes = _check_codes(codes, ratings.codes)
    models = model_labels(store, ratings)
    boot, seed = settings.agreement.bootstrap, settings.agreement.seed
    report = compute_agreement(ratings, codes, boot, seed, models=models)
    report["admission"] = {v: t.as_dict() for v, t in current_tables(store, settings, codebook).items()}
    blind = pushed_blind_subset(store)
    if blind is not None:  # only workspaces pushed with --blind-fraction have the section
        audit = stream_segments(store, "audit")
        report["anchoring"] = anchoring_check(ratings, blind, models, codes, boot, seed, audit=audit)
    report["drift"] = coder_drift(store, codes or ratings.codes)
    by_version = agreement_by_version(
        store, codebook, codes, {"annotators": annotators, "since": since, "documents": documents}, boot, seed
    )
    if by_version is not None:  # only workspaces whose annotations span codebook versions have the section
        report["codebook_versions"] = by_version
    texts = segment_texts(store, [d["item"] for d in report["disagreements"]])
    if out_dir == "default":
        out_dir = store.workspace / "reports"
    with (
        store.transaction(),
        store.run(
            "agreement", {"annotators": annotators, "codes": codes, "since": since, "documents": documents}
        ) as summary,
    ):
        summary.update(items=report["n_items"], annotators=report["n_annotators"])
    filters = {"annotators": annotators, "codes": codes, "since": since, "documents": documents}
    return _finish(ratings, report, texts, out_dir, str(store.workspace), filters)


def agreement_from_file(
    path: str | Path,
    settings: Settings,
    codebook: Codebook | None = None,
    single_choice: bool = False,
    codes: list[str] | None = None,
    annotators: list[str] | None = None,
    out_dir: Path | None = None,
) -> AgreementResult:
    """Agreement for annotations made elsewhere (CSV/JSONL with item, annotator, codes)."""
    ratings = read_input(path, codebook, single_choice)
    if annotators:
        missing = [a for a in annotators if a not in ratings.annotators]
        if missing:
            raise CultureCodeError(
                f"--annotators: {', '.join(missing)} not in {path}; it has {', '.join(ratings.annotators)}"
            )
        ratings = ratings.subset(ratings.rated & [a in annotators for a in ratings.annotators])
    codes = _check_codes(codes, ratings.codes)
    report = compute_agreement(ratings, codes, settings.agreement.bootstrap, settings.agreement.seed)
    return _finish(ratings, report, {}, out_dir, str(path), {"annotators": annotators, "codes": codes})


def disagreements(
    store: Store,
    codebook: Codebook,
    annotators: list[str] | None = None,
    documents: list[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Segments where annotators disagree, most contested first, with document and text."""
    ratings = load_ratings(store, codebook, annotators, None, documents)
    rows = contested(ratings, limit)
    for row in rows:
        seg = store.segment(row["item"])
        if seg is None:  # ratings come from stored annotations, so only a concurrent change gets here
            raise CultureCodeError(f"segment {row['item']} is no longer in the workspace; rerun the command")
        row.update(document=seg.document_id, position=seg.position, speaker=seg.speaker, text=seg.text)
    return rows
