"""The LLM stage: pre-label segments (`prelabel_llm`), show the plan before spending (`plan`).

LLM labels are `predictions` rows (codes, a confidence per code, a one-sentence rationale) under
a model version naming the backend's model and the prompt version, registered in `models` with
kind='llm'.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.llm.backends import Backend, make_backend
from pipeline.llm.examples import gold_examples, pick_examples
from pipeline.llm.label import Job, Outcome, make_job, run_jobs
from pipeline.llm.prompts import PromptTemplate, load_template
from pipeline.store import Segment, Store, dumps, now


@dataclass
class LlmPrelabelReport:
    model_version: str
    prompt_version: str
    segments: int
    labelled: int
    from_cache: int
    calls: int
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def model_version(backend: Backend, template: PromptTemplate) -> str:
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(backend.model_id).name).strip("-")
    return f"llm-{model}-{template.name}-{template.version}"


def select_segments(store: Store, segment_ids: list[str] | None = None, limit: int | None = None) -> list[Segment]:
    if segment_ids:
        found = [s for s in (store.segment(i) for i in segment_ids) if s is not None]
        missing = sorted(set(segment_ids) - {s.id for s in found})
        if missing:
            raise CultureCodeError(f"segment(s) {', '.join(missing[:5])} are not in {store.workspace}")
        return found
    segments = store.segments(limit=limit)
    if not segments:
        raise CultureCodeError(f"{store.workspace} has no segments: run `culturecode ingest PATH` first")
    return segments


def build_jobs(store: Store, settings: Settings, codebook: Codebook, backend: Backend,
               template: PromptTemplate, segments: list[Segment],
               examples_path: str | Path | None = None) -> list[Job]:
    cfg = settings.llm
    shots = {}
    if template.few_shot:
        pool = gold_examples(store, codebook, examples_path)
        if not pool:
            raise CultureCodeError(f"prompt '{template.name}' needs labelled examples: adjudicate some gold "
                                   f"first or pass --examples GOLD.jsonl")
        shots = pick_examples(segments, pool, cfg.few_shot_examples)
    jobs = []
    for seg in segments:
        if not seg.text.strip():
            jobs.append(Job(seg.id, None))
            continue
        before, after = store.neighbours(seg, cfg.context_before, cfg.context_after)
        prompt = template.render(codebook, seg, before, after, shots.get(seg.id, []))
        jobs.append(make_job(seg.id, prompt, backend, template.version, cfg))
    return jobs


def _register(store: Store, version: str, codebook: Codebook, backend: Backend, template: PromptTemplate,
              report: LlmPrelabelReport) -> None:
    metrics = {"backend": backend.name, "model": backend.model_id, "prompt": template.name,
               "prompt_version": template.version, "labelled": report.labelled,
               "failures": len(report.failures)}
    store.conn.execute("UPDATE models SET is_current = 0 WHERE kind = 'llm'")
    store.conn.execute(
        "INSERT INTO models(version, kind, path, codebook_hash, is_current, metrics, created_at) "
        "VALUES(?, 'llm', ?, ?, 1, ?, ?) ON CONFLICT(version) DO UPDATE SET is_current = 1, "
        "metrics = excluded.metrics",
        (version, str(template.directory), codebook.content_hash, dumps(metrics), now()))


def _write(store: Store, version: str, codebook: Codebook, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        if o.label is None:
            continue
        store.conn.execute(
            "INSERT INTO predictions(segment_id, model_version, scores, codes, rationale, codebook_hash, "
            "created_at) VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(segment_id, model_version) DO UPDATE SET "
            "scores = excluded.scores, codes = excluded.codes, rationale = excluded.rationale, "
            "codebook_hash = excluded.codebook_hash, created_at = excluded.created_at",
            (o.segment_id, version, dumps(o.label.scores), dumps(o.label.codes), o.label.rationale,
             codebook.content_hash, now()))


def prelabel_llm(store: Store, settings: Settings, codebook: Codebook, backend: Backend | None = None,
                 segment_ids: list[str] | None = None, limit: int | None = None, refresh: bool = False,
                 examples_path: str | Path | None = None, show_progress: bool = True) -> LlmPrelabelReport:
    """Label segments with the LLM; predictions are written in one transaction at the end."""
    template = load_template(settings.llm.prompt, settings.llm.prompts_dir)
    template.render_system(codebook)  # fail on a broken template before loading a model
    segments = select_segments(store, segment_ids, limit)
    backend = backend or make_backend(settings.llm)
    version = model_version(backend, template)
    jobs = build_jobs(store, settings, codebook, backend, template, segments, examples_path)
    with store.run("prelabel-llm", {"model_version": version, "refresh": refresh}) as summary:
        started = time.monotonic()
        outcomes = run_jobs(store, jobs, backend, codebook, settings.llm, template.version, refresh, show_progress)
        failures = [{"segment_id": o.segment_id, "error": o.error, "raw": o.raw} for o in outcomes if o.label is None]
        report = LlmPrelabelReport(version, template.version, len(segments),
                                   sum(o.label is not None for o in outcomes), sum(o.cached for o in outcomes),
                                   sum(len(o.attempts) for o in outcomes if not o.cached), failures,
                                   round(time.monotonic() - started, 2))
        with store.transaction():
            _write(store, version, codebook, outcomes)
            _register(store, version, codebook, backend, template, report)
        summary.update({"model_version": version, "labelled": report.labelled, "from_cache": report.from_cache,
                        "failures": len(failures)})
    return report


def labels_of(store: Store, version: str, limit: int) -> list[dict]:
    """The stored labels of an LLM version, in document order: for showing, not for computing."""
    rows = store.conn.execute(
        "SELECT p.segment_id, s.speaker, s.text, p.codes, p.scores, p.rationale FROM predictions p "
        "JOIN segments s ON s.id = p.segment_id WHERE p.model_version = ? "
        "ORDER BY s.document_id, s.position LIMIT ?", (version, limit)).fetchall()
    return [{**dict(r), "codes": json.loads(r["codes"]), "scores": json.loads(r["scores"])} for r in rows]
