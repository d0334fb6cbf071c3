"""`plan`: what an LLM run would do, before anything runs: the rendered prompt for one segment, the
number of calls (cache hits excluded), estimated tokens, time and, for a paid endpoint, cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.config import Codebook, LlmSettings, Settings
from pipeline.labellers.run import select_segments
from pipeline.llm.prompts import load_template
from pipeline.store import Store
from pipeline.store.llm_cache import cached_keys

# Measured on the project's shared 2-core machine (one torch thread, other jobs running) with the
# packaged 0.5B model, int8: the system prompt is read once (~40 tokens/s), then each segment costs
# its own prompt, one batched yes/no pass over the codes, and a short rationale: ~20 s in all.
LOCAL_PROMPT_TOKENS_PER_S = 40.0
LOCAL_SECONDS_PER_SEGMENT = 20.0
HTTP_SECONDS_PER_CALL = 2.0
ANSWER_TOKENS = 60  # a typical JSON answer with a one-sentence rationale


class _Named:
    """Stands in for a backend when only its name and model are needed (no model is loaded)."""

    def __init__(self, name: str, model_id: str):
        self.name, self.model_id = name, model_id


@dataclass
class Plan:
    backend: str
    model: str
    model_version: str
    prompt_version: str
    segments: int
    cached: int
    calls: int
    empty_segments: int
    prompt_tokens: int
    answer_tokens: int
    seconds: float
    cost: float | None
    example_segment: str
    example_system: str
    example_user: str

    def as_dict(self) -> dict:
        return asdict(self)


def approx_tokens(text: str) -> int:
    return max(1, round(len(text) / 4))  # ~4 characters a token for English with BPE tokenizers


def _estimate(
    cfg: LlmSettings, system_tokens: int, user_tokens: int, answer_tokens: int, calls: int
) -> tuple[int, float, float | None]:
    """(prompt tokens, seconds, cost in the settings' prices or None for the local model) of `calls` calls."""
    if cfg.backend == "local":  # the system prompt is read once and reused
        prompt_tokens = user_tokens + (system_tokens if calls else 0)
        seconds = (system_tokens if calls else 0) / LOCAL_PROMPT_TOKENS_PER_S + calls * LOCAL_SECONDS_PER_SEGMENT
        return prompt_tokens, seconds, None
    prompt_tokens = user_tokens + system_tokens * calls
    seconds = calls * HTTP_SECONDS_PER_CALL / cfg.concurrency
    cost = round((prompt_tokens * cfg.price_per_million_input + answer_tokens * cfg.price_per_million_output) / 1e6, 4)
    return prompt_tokens, seconds, cost


def plan(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    segment_ids: list[str] | None = None,
    limit: int | None = None,
    examples_path: str | Path | None = None,
    refresh: bool = False,
) -> Plan:
    from pipeline.llm.backends.local import DEFAULT_LOCAL_MODEL
    from pipeline.llm.run import build_jobs, model_version

    cfg = settings.llm
    template = load_template(cfg.prompt, cfg.prompts_dir)
    backend = _Named(cfg.backend, cfg.model or (DEFAULT_LOCAL_MODEL if cfg.backend == "local" else "?"))
    segments = select_segments(store, segment_ids, limit)
    jobs = build_jobs(store, settings, codebook, backend, template, segments, examples_path)
    asked = [(job, job.prompt) for job in jobs if job.prompt is not None]
    cached = set() if refresh else cached_keys(store, [job.key for job, _ in asked])
    todo = [prompt for job, prompt in asked if job.key not in cached]
    system_tokens = approx_tokens(asked[0][1].system) if asked else 0
    user_tokens = sum(approx_tokens(prompt.user) for prompt in todo)
    answer_tokens = ANSWER_TOKENS * len(todo)
    prompt_tokens, seconds, cost = _estimate(cfg, system_tokens, user_tokens, answer_tokens, len(todo))
    example_job, example = asked[0] if asked else (None, None)
    return Plan(
        backend=cfg.backend,
        model=backend.model_id,
        model_version=model_version(backend, template),
        prompt_version=template.version,
        segments=len(segments),
        cached=len(asked) - len(todo),
        calls=len(todo),
        empty_segments=len(jobs) - len(asked),
        prompt_tokens=prompt_tokens,
        answer_tokens=answer_tokens,
        seconds=round(seconds, 1),
        cost=cost,
        example_segment=example_job.segment_id if example_job else "",
        example_system=example.system if example else "",
        example_user=example.user if example else "",
    )
