"""The LLM stage as a labeller: pre-label segments (`prelabel_llm`, `LlmLabeller`).

LLM labels are `predictions` rows (codes, a confidence per code, a one-sentence rationale) under
a model version naming the backend's model and the prompt version, registered in `models` with
kind='llm'. They go through the same path as every labeller (pipeline/labellers/run.py); every
selected segment is offered on each run, since answers come from the workspace's cache when the
prompt has not changed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.labellers.base import LabelContext, ModelRecord
from pipeline.labellers.run import LabelRun, run_labeller, select_segments
from pipeline.llm.backends import Backend, ModelIdentity, make_backend
from pipeline.llm.examples import gold_examples, pick_examples
from pipeline.llm.label import Job, Outcome, make_job, run_jobs
from pipeline.llm.parse import SourceText
from pipeline.llm.prompts import Example, PromptTemplate, load_template
from pipeline.store import Segment, Store
from pipeline.store.predictions import PredictionRow, predicted_segments

__all__ = [
    "LlmLabeller",
    "LlmPrelabelReport",
    "build_jobs",
    "labels_of",
    "model_version",
    "prelabel_llm",
    "select_segments",
]


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
    admission: dict | None = None  # the version's admission table, when the caller measured it
    measured: dict | None = None  # the model and prompt's shipped quality on the example gold (`pipeline.llm.measured`)
    device: str | None = None  # where a local model ran (cpu or cuda); None: a remote endpoint, or no call made

    def as_dict(self) -> dict:
        return asdict(self)


def model_version(backend: ModelIdentity, template: PromptTemplate) -> str:
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(backend.model_id).name).strip("-")
    return f"llm-{model}-{template.name}-{template.version}"


def _example_pool(
    store: Store, codebook: Codebook, template: PromptTemplate, examples_path: str | Path | None
) -> list[Example]:
    if not template.few_shot:
        return []
    pool = gold_examples(store, codebook, examples_path)
    if not pool:
        raise CultureCodeError(
            f"prompt '{template.name}' needs labelled examples: adjudicate some gold "
            f"first or pass --examples GOLD.jsonl"
        )
    return pool


def build_jobs(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    backend: ModelIdentity,
    template: PromptTemplate,
    segments: list[Segment],
    examples_path: str | Path | None = None,
    pool: list[Example] | None = None,
) -> list[Job]:
    """One job per segment: its rendered prompt (with context turns and few-shot examples), or None if empty."""
    cfg = settings.llm
    if pool is None:
        pool = _example_pool(store, codebook, template, examples_path)
    shots = pick_examples(segments, pool, cfg.few_shot_examples) if template.few_shot else {}
    jobs = []
    for seg in segments:
        if not seg.text.strip():
            jobs.append(Job(seg.id, None))
            continue
        # the answer is checked against at least the turn before and after, shown or not
        before, after = store.neighbours(seg, max(cfg.context_before, 1), max(cfg.context_after, 1))
        shown_before, shown_after = before[len(before) - cfg.context_before :], after[: cfg.context_after]
        prompt = template.render(codebook, seg, shown_before, shown_after, shots.get(seg.id, []))
        source = SourceText(seg.text, tuple(t.text for t in before + after), prompt.system)
        jobs.append(make_job(seg.id, prompt, backend, template.version, cfg, source))
    return jobs


class LlmLabeller:
    """An LLM backend and a prompt template as a labeller; keeps the run's cache and failure figures."""

    kind = "llm"
    relabel = True  # every selected segment is offered again: unchanged prompts are answered from the cache

    def __init__(self, context: LabelContext, backend: Backend):
        self.context, self.backend = context, backend
        cfg = context.settings.llm
        self.template = load_template(cfg.prompt, cfg.prompts_dir)
        self.template.render_system(context.codebook)  # fail on a broken template before loading a model
        self.refresh = bool(context.options.get("refresh", False))
        self.pool = _example_pool(context.store, context.codebook, self.template, context.options.get("examples_path"))
        self.name = f"llm-{backend.name}"
        self.version = model_version(backend, self.template)
        # small batches: each is written when done, so the progress bar moves and a killed run keeps them
        self.batch_size = cfg.concurrency * 4 if backend.supports_concurrency else 8
        self.labelled = self.from_cache = self.calls = 0
        self.failures: list[dict] = []

    def label(self, segments: list[Segment]) -> list[PredictionRow]:
        ctx = self.context
        jobs = build_jobs(ctx.store, ctx.settings, ctx.codebook, self.backend, self.template, segments, pool=self.pool)
        outcomes = run_jobs(
            ctx.store,
            jobs,
            self.backend,
            ctx.codebook,
            ctx.settings.llm,
            self.template.version,
            self.refresh,
            show_progress=False,
        )
        self._count(outcomes)
        return [
            PredictionRow(o.segment_id, self.version, o.label.scores, o.label.codes, o.label.shown_rationale())
            for o in outcomes
            if o.label is not None
        ]

    def _count(self, outcomes: list[Outcome]) -> None:
        self.labelled += sum(o.label is not None for o in outcomes)
        self.from_cache += sum(o.cached for o in outcomes)
        self.calls += sum(len(o.attempts) for o in outcomes if not o.cached)
        self.failures += [
            {"segment_id": o.segment_id, "error": o.error, "raw": o.raw} for o in outcomes if o.label is None
        ]

    def model_record(self) -> ModelRecord:
        metrics = {
            "backend": self.backend.name,
            "model": self.backend.model_id,
            "prompt": self.template.name,
            "prompt_version": self.template.version,
            "labelled": self.labelled,
            "failures": len(self.failures),
        }
        return ModelRecord("llm", str(self.template.directory), metrics)

    def report(self, run: LabelRun) -> LlmPrelabelReport:
        return LlmPrelabelReport(
            self.version,
            self.template.version,
            run.segments,
            run.labelled,
            self.from_cache,
            self.calls,
            self.failures,
            run.seconds,
            device=getattr(self.backend, "device", None) if self.calls else None,
        )


def prelabel_llm(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    backend: Backend | None = None,
    segment_ids: list[str] | None = None,
    limit: int | None = None,
    refresh: bool = False,
    examples_path: str | Path | None = None,
    show_progress: bool = True,
) -> LlmPrelabelReport:
    """Label segments with the LLM (the backend in the settings unless one is given)."""
    context = LabelContext(
        store, settings, codebook, None, {"refresh": refresh, "examples_path": examples_path}, show_progress
    )
    labeller = LlmLabeller(context, backend or make_backend(settings.llm))
    run = run_labeller(
        labeller,
        store,
        codebook,
        segment_ids,
        limit,
        show_progress,
        stage="prelabel-llm",
        run_args={"refresh": refresh},
    )
    return labeller.report(run)


def labels_of(store: Store, version: str, limit: int) -> list[dict]:
    """The stored labels of an LLM version, in document order: for showing, not for computing."""
    return [
        {
            "segment_id": p.segment_id,
            "speaker": p.speaker,
            "text": p.text,
            "codes": p.codes,
            "scores": p.scores,
            "rationale": p.rationale,
        }
        for p in predicted_segments(store, version, limit=limit)
    ]
