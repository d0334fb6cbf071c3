"""LLM commands: `llm plan`, `llm label`, `llm evaluate`, `llm serve`, and `distill`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipeline import llm
from pipeline.commands.common import (CodebookOpt, ConfigOpt, JsonOpt, WorkspaceOpt, handle_errors,
                                      open_workspace, out, print_json, settings_for)

llm_app = typer.Typer(help="Label with an LLM: plan, label, evaluate, serve the local model.",
                      no_args_is_help=True)

BackendOpt = Annotated[str | None, typer.Option("--backend", help="local (in-process CPU model) or openai (any OpenAI-compatible server).")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="local: a .gguf file or model folder (default: the packaged Qwen2.5-Coder-0.5B-Instruct); openai: the served model name.")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="openai: the endpoint, e.g. http://127.0.0.1:8000/v1.")]
PromptOpt = Annotated[str | None, typer.Option("--prompt", help="Prompt template in prompts/: zero_shot or few_shot.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", "-n", help="Only the first N segments.")]
SegmentOpt = Annotated[list[str] | None, typer.Option("--segment", help="Only this segment id (repeatable).")]
ExamplesOpt = Annotated[Path | None, typer.Option("--examples", help="few_shot: gold JSONL to pick examples from (default: the workspace gold table).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _settings(config, workspace, codebook, backend=None, model=None, base_url=None, prompt=None, **extra):
    return settings_for(config, workspace, codebook, **{"llm.backend": backend, "llm.model": model,
                                                         "llm.base_url": base_url, "llm.prompt": prompt, **extra})


@handle_errors
def plan_cli(backend: BackendOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None,
             prompt: PromptOpt = None, limit: LimitOpt = None, segment: SegmentOpt = None,
             examples: ExamplesOpt = None,
             refresh: Annotated[bool, typer.Option("--refresh", help="Count cached answers as calls too.")] = False,
             workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
             json_out: JsonOpt = False) -> None:
    """Show, before anything runs, the rendered prompt for one segment, the number of calls, and the
    estimated tokens, time and (for a paid endpoint) cost. Loads no model and calls nothing."""
    settings = _settings(config, workspace, codebook, backend, model, base_url, prompt)
    with open_workspace(settings) as store:
        result = llm.plan(store, settings, settings.load_codebook(), segment, limit, examples, refresh)
    if json_out:
        print_json(result.as_dict())
        return
    out.rule(f"system prompt ({len(result.example_system)} characters)")
    out.print(result.example_system, highlight=False, markup=False)
    out.rule(f"user prompt for segment {result.example_segment}")
    out.print(result.example_user, highlight=False, markup=False)
    out.rule("plan")
    cost = "n/a (local)" if result.cost is None else f"${result.cost:.4f}"
    if result.cost == 0:
        cost += " (set llm.price_per_million_input/_output in the settings for a paid endpoint)"
    out.print(f"{result.backend} / {result.model} -> model version {result.model_version}\n"
              f"segments {result.segments}: {result.calls} call(s), {result.cached} cached, "
              f"{result.empty_segments} empty (not sent)\n"
              f"~{result.prompt_tokens} prompt + ~{result.answer_tokens} answer tokens; "
              f"~{result.seconds:.0f} s; cost {cost}", highlight=False)


@handle_errors
def label_cli(backend: BackendOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None,
              prompt: PromptOpt = None, limit: LimitOpt = None, segment: SegmentOpt = None,
              examples: ExamplesOpt = None,
              refresh: Annotated[bool, typer.Option("--refresh", help="Ask again even where the cache has an answer.")] = False,
              show: Annotated[int, typer.Option("--show", help="Print the labels (codes, reason) of the first N segments of this model version.")] = 0,
              workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
              quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Label segments with the LLM (the same as `culturecode prelabel --with llm`).

    Stores per segment the codes, a confidence per code and a one-sentence rationale under a
    model version naming the model and prompt version. Answers are cached in the workspace: a
    rerun makes no calls (--refresh forces them) and a killed run resumes where it stopped.
    """
    settings = _settings(config, workspace, codebook, backend, model, base_url, prompt)
    with open_workspace(settings) as store:
        report = llm.prelabel_llm(store, settings, settings.load_codebook(), segment_ids=segment, limit=limit,
                                  refresh=refresh, examples_path=examples, show_progress=not quiet)
        shown = llm.labels_of(store, report.model_version, show) if show and not json_out else []
    if json_out:
        print_json(report.as_dict())
        return
    if shown:
        table = Table(title=f"LLM labels ({report.model_version})", show_lines=False)
        for col in ("segment", "speaker", "text", "codes (confidence)", "reason"):
            table.add_column(col, overflow="fold")
        for row in shown:
            codes = ", ".join(f"{c} ({row['scores'][c]:.2f})" for c in row["codes"]) or "-"
            table.add_row(row["segment_id"][:8], row["speaker"] or "", _excerpt(row["text"], 70), codes, row["rationale"] or "")
        out.print(table)
    out.print(f"LLM-labelled {report.labelled} of {report.segments} segment(s) as {report.model_version}: "
              f"{report.calls} call(s), {report.from_cache} from the cache, {report.seconds:.1f} s.")
    for failure in report.failures[:10]:
        out.print(f"[yellow]failed[/] {failure['segment_id']}: {failure['error']}", highlight=False)
    if len(report.failures) > 10:
        out.print(f"... and {len(report.failures) - 10} more failures (see --json)")


def _excerpt(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


@handle_errors
def evaluate_cli(version: Annotated[str | None, typer.Option("--version", help="LLM model version (default: the current one).")] = None,
                 workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
                 json_out: JsonOpt = False) -> None:
    """Agreement of the LLM labels with human gold: F1 and Cohen's kappa per code."""
    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        report = llm.evaluate_llm(store, settings.load_codebook(), version)
    if json_out:
        print_json(report)
        return
    table = Table(title=f"{report['model_version']} vs gold ({report['segments']} segments)")
    for col in ("code", "precision", "recall", "F1", "kappa", "support"):
        table.add_column(col, justify="left" if col == "code" else "right")
    for code, m in report["per_code"].items():
        kappa = "-" if m["cohen_kappa"] is None else f"{m['cohen_kappa']:.2f}"
        table.add_row(code, f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}", kappa, str(m["support"]))
    out.print(table)
    out.print(f"micro F1 {report['micro_f1']:.3f}, macro F1 {report['macro_f1']:.3f}")


@handle_errors
def serve_cli(model: ModelOpt = None,
              host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
              port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
              api_key_env: Annotated[str | None, typer.Option("--api-key-env", help="Require the key held in this environment variable.")] = None,
              config: ConfigOpt = None) -> None:
    """Serve the local model on an OpenAI-compatible API (/v1/chat/completions, /v1/models)."""
    settings = settings_for(config, None, None, **{"llm.model": model, "llm.backend": "local"})
    backend = llm.make_backend(settings.llm)
    backend.load()  # before the first request, not during it
    server = llm.make_server(backend, host, port, os.environ.get(api_key_env) if api_key_env else None)
    out.print(f"serving {backend.model_id} on http://{host}:{server.server_port}/v1 (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()


@handle_errors
def distill_cli(version: Annotated[str | None, typer.Option("--from", help="LLM model version to learn from (default: the current one).")] = None,
                min_confidence: Annotated[float | None, typer.Option("--min-confidence", help="Leave out segments with a chosen code below this confidence.")] = None,
                method: Annotated[str | None, typer.Option("--method", help="finetune or head (see classifier.method).")] = None,
                no_promote: Annotated[bool, typer.Option("--no-promote", help="Register the model without making it current.")] = False,
                workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
                quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Train the classifier on LLM silver labels (confidence-filtered) when no human gold exists yet."""
    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        report = llm.distill(store, settings, settings.load_codebook(), version, min_confidence, method,
                             not no_promote, not quiet)
    if json_out:
        print_json(report)
        return
    train = report["train"]
    out.print(f"Distilled {train['version']} from {report['silver_from']}: {report['segments']} silver segment(s), "
              f"{report['left_out']} left out below confidence {report['min_confidence']}; held-out "
              f"micro F1 {train['test'].get('micro_f1')} (against silver labels).", highlight=False)


def register(app: typer.Typer) -> None:
    llm_app.command("plan")(plan_cli)
    llm_app.command("label")(label_cli)
    llm_app.command("evaluate")(evaluate_cli)
    llm_app.command("serve")(serve_cli)
    app.add_typer(llm_app, name="llm")
    app.command("distill")(distill_cli)
