"""The LLM stage: codebook prompts, a local model by default or any OpenAI-compatible server,
validated JSON answers, a response cache in the workspace, and silver labels for a cold start.

Library entry points (each CLI command calls one): `prelabel_llm`, `plan`, `evaluate_llm`,
`make_backend`, `make_server`; the LLM registers as the labellers `llm`, `llm-local` and
`llm-openai` (pipeline/llm/labeller.py). Distilling the classifier from LLM labels is a flow
(`pipeline.flows.distill`). Names load on first use, so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import lazy_names

# eager: the submodule `plan` would otherwise shadow the function `plan` once anything imports it
from pipeline.llm.plan import Plan, plan

if TYPE_CHECKING:
    from pipeline.llm.backends import Backend, Completion, OpenAIBackend, make_backend
    from pipeline.llm.distill import evaluate_llm, llm_version, silver_rows
    from pipeline.llm.parse import AnswerError, LlmLabel, parse_answer
    from pipeline.llm.prompts import load_template
    from pipeline.llm.run import LlmLabeller, LlmPrelabelReport, labels_of, prelabel_llm
    from pipeline.llm.serve import make_server

_WHERE = {
    "Backend": "backends",
    "Completion": "backends",
    "OpenAIBackend": "backends",
    "make_backend": "backends",
    "evaluate_llm": "distill",
    "llm_version": "distill",
    "silver_rows": "distill",
    "AnswerError": "parse",
    "LlmLabel": "parse",
    "parse_answer": "parse",
    "load_template": "prompts",
    "LlmLabeller": "run",
    "LlmPrelabelReport": "run",
    "labels_of": "run",
    "prelabel_llm": "run",
    "make_server": "serve",
}

__all__ = [
    "AnswerError",
    "Backend",
    "Completion",
    "LlmLabel",
    "LlmLabeller",
    "LlmPrelabelReport",
    "OpenAIBackend",
    "Plan",
    "evaluate_llm",
    "labels_of",
    "llm_version",
    "load_template",
    "make_backend",
    "make_server",
    "parse_answer",
    "plan",
    "prelabel_llm",
    "silver_rows",
]

__getattr__ = lazy_names(__name__, _WHERE)
