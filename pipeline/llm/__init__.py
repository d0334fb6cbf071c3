"""The LLM stage: codebook prompts, a local model by default or any OpenAI-compatible server,
validated JSON answers, a response cache in the workspace, and silver labels for a cold start.

Library entry points (each CLI command calls one): `prelabel_llm`, `plan`, `distill`,
`evaluate_llm`, `make_backend`, `make_server`.
"""

from pipeline.llm.backends import Backend, Completion, OpenAIBackend, make_backend
from pipeline.llm.distill import distill, evaluate_llm
from pipeline.llm.parse import AnswerError, LlmLabel, parse_answer
from pipeline.llm.plan import Plan, plan
from pipeline.llm.prompts import load_template
from pipeline.llm.run import LlmPrelabelReport, labels_of, prelabel_llm
from pipeline.llm.serve import make_server

__all__ = ["AnswerError", "Backend", "Completion", "LlmLabel", "LlmPrelabelReport", "OpenAIBackend", "Plan",
           "distill", "evaluate_llm", "load_template", "make_backend", "make_server", "parse_answer", "plan",
           "labels_of", "prelabel_llm"]
