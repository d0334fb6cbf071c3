"""Label segments with a backend: render, look up the cache, call (bounded concurrency), validate,
repair once, cache. Every call's raw answer is kept in `llm_cache`, failures included.

Validation includes the checks against the segment (pipeline/llm/parse.py): an evidence quote per
chosen code that occurs in the segment, and a rationale that does not merely repeat the segment or
a neighbouring turn. An answer failing them is a recorded failure: its labels are never stored.

Cache rows are committed one call at a time (they are a ledger of paid-for answers, not stage
output), so a killed run resumes from the cache; predictions are written by the caller in one
transaction.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from pipeline.config import Codebook, LlmSettings
from pipeline.errors import CultureCodeError
from pipeline.llm.backends import Backend, Completion, ModelIdentity
from pipeline.llm.parse import AnswerError, LlmLabel, SourceText, answer_schema, parse_answer, repair_message
from pipeline.llm.prompts import Prompt
from pipeline.progress import progress_bar
from pipeline.store import Store, dumps
from pipeline.store.llm_cache import CachedAnswer, cache_answer, cached_answer


@dataclass
class Job:
    segment_id: str
    prompt: Prompt | None  # None: nothing to ask (an empty segment)
    key: str = ""
    prompt_hash: str = ""
    source: SourceText | None = None  # what the answer is checked against


@dataclass
class Outcome:
    segment_id: str
    label: LlmLabel | None
    raw: str = ""
    error: str | None = None
    cached: bool = False
    attempts: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


def sampling(settings: LlmSettings) -> dict:
    return {
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "seed": settings.seed,
        "json_schema": settings.json_schema,
    }


def make_job(
    segment_id: str,
    prompt: Prompt | None,
    backend: ModelIdentity,
    prompt_version: str,
    settings: LlmSettings,
    source: SourceText | None = None,
) -> Job:
    if prompt is None:
        return Job(segment_id, None)
    prompt_hash = hashlib.sha256(f"{prompt.system}\0{prompt.user}".encode()).hexdigest()[:16]
    material = dumps([backend.name, backend.model_id, prompt_version, prompt_hash, sampling(settings)])
    key = hashlib.sha256(material.encode("utf-8")).hexdigest()[:24]
    return Job(segment_id, prompt, key, prompt_hash, source)


def ask(
    backend: Backend, prompt: Prompt, codebook: Codebook, settings: LlmSettings, source: SourceText | None = None
) -> Outcome:
    """One answer, validated (against `source` when given); one repair round if it is unusable; then a
    recorded failure."""
    schema = answer_schema(codebook)
    messages = prompt.messages()
    raws: list[str] = []
    prompt_tokens = completion_tokens = 0
    started = time.monotonic()
    error: AnswerError | None = None
    for _ in range(2):
        done: Completion = backend.complete(messages, settings.max_tokens, settings.temperature, schema, settings.seed)
        raws.append(done.text)
        prompt_tokens += done.prompt_tokens
        completion_tokens += done.completion_tokens
        try:
            label = parse_answer(done.text, codebook, source)
            return Outcome(
                "", label, done.text, None, False, raws, prompt_tokens, completion_tokens, time.monotonic() - started
            )
        except AnswerError as exc:
            error = exc
            messages = messages + [
                {"role": "assistant", "content": done.text},
                {"role": "user", "content": repair_message(exc)},
            ]
    return Outcome(
        "", None, raws[-1], str(error), False, raws, prompt_tokens, completion_tokens, time.monotonic() - started
    )


def _from_cache(store: Store, job: Job, codebook: Codebook) -> Outcome | None:
    row = cached_answer(store, job.key)
    if row is None:
        return None
    label, error = None, row.error
    if error is None:
        try:
            label = parse_answer(row.response, codebook, job.source)
        except AnswerError as exc:  # cached before the checks of this version: a failure now
            error = str(exc)
    return Outcome(
        job.segment_id,
        label,
        row.response,
        error,
        True,
        row.attempts,
        row.prompt_tokens,
        row.completion_tokens,
        0.0,
    )


def _to_cache(
    store: Store, job: Job, outcome: Outcome, backend: Backend, prompt_version: str, settings: LlmSettings
) -> None:
    with store.transaction():
        cache_answer(
            store,
            CachedAnswer(
                job.key,
                backend.name,
                backend.model_id,
                prompt_version,
                job.segment_id,
                job.prompt_hash,
                sampling(settings),
                outcome.raw,
                outcome.attempts,
                outcome.error,
                outcome.prompt_tokens,
                outcome.completion_tokens,
                round(outcome.seconds, 3),
            ),
        )


def _answered_already(
    store: Store, jobs: list[Job], codebook: Codebook, refresh: bool
) -> tuple[dict[str, Outcome], list[tuple[Job, Prompt]]]:
    """({segment: outcome} of the jobs answered without a call (empty segments, cache hits), the jobs to ask)."""
    outcomes: dict[str, Outcome] = {}
    todo: list[tuple[Job, Prompt]] = []
    for job in jobs:
        if job.prompt is None:
            outcomes[job.segment_id] = Outcome(job.segment_id, None, "", "empty segment: nothing to label")
            continue
        hit = None if refresh else _from_cache(store, job, codebook)
        if hit is not None:
            outcomes[job.segment_id] = hit
        else:
            todo.append((job, job.prompt))
    return outcomes, todo


def run_jobs(
    store: Store,
    jobs: list[Job],
    backend: Backend,
    codebook: Codebook,
    settings: LlmSettings,
    prompt_version: str,
    refresh: bool = False,
    show_progress: bool = True,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Answer every job, from the cache where possible; transport errors become failed outcomes."""
    outcomes, todo = _answered_already(store, jobs, codebook, refresh)
    workers = settings.concurrency if backend.supports_concurrency else 1
    started = time.monotonic()
    with (
        progress_bar(f"LLM ({backend.name})", len(todo), show_progress) as bar,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        futures = {pool.submit(ask, backend, prompt, codebook, settings, job.source): job for job, prompt in todo}
        for done_count, future in enumerate(as_completed(futures), start=1):
            job = futures[future]
            try:
                outcome = future.result()
            except CultureCodeError as exc:
                if "refused the API key" in str(exc):
                    for other in futures:
                        other.cancel()
                    raise
                outcome = Outcome(job.segment_id, None, "", str(exc))
            else:
                _to_cache(store, job, outcome, backend, prompt_version, settings)
            outcome.segment_id = job.segment_id
            outcomes[job.segment_id] = outcome
            if on_outcome:
                on_outcome(outcome)
            bar.update(
                description=f"LLM ({backend.name}) {done_count / max(time.monotonic() - started, 1e-9):.2f} calls/s"
            )
            bar.advance()
    return [outcomes[job.segment_id] for job in jobs]
