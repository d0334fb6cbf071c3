"""LLM commands: `llm plan`, `llm label`, `llm evaluate`, `llm test-server` (was `llm serve`), and `distill`.

The LLM stage (and with it torch for the local model) is imported inside each command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    ModelVersionOpt,
    QuietOpt,
    WorkspaceOpt,
    check_device,
    command_alias,
    handle_errors,
    open_workspace,
    out,
    print_result,
    settings_for,
)
from pipeline.commands.render import Column, admission_summary, print_metrics, print_table

llm_app = typer.Typer(help="LLM labelling: plan, label, evaluate; a test server.", no_args_is_help=True)

LlmOpt = Annotated[
    str | None,
    typer.Option(
        "--llm", help="local (in-process CPU model) or openai (any OpenAI-compatible server). Default: llm.backend."
    ),
]
LlmModelOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-model",
        help="local: a .gguf file or model folder (default: the packaged Qwen2.5-Coder-0.5B-Instruct); "
        "openai: the served model name.",
    ),
]
BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="openai: the endpoint, e.g. http://127.0.0.1:8000/v1.")
]
PromptOpt = Annotated[str | None, typer.Option("--prompt", help="Prompt template in prompts/: zero_shot or few_shot.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Only the first N segments.")]
SegmentOpt = Annotated[list[str] | None, typer.Option("--segment", help="Only this segment id (repeatable).")]
ExamplesOpt = Annotated[
    Path | None,
    typer.Option("--examples", help="few_shot: gold JSONL to pick examples from (default: the workspace gold table)."),
]


def _settings(config, workspace, codebook, llm=None, llm_model=None, base_url=None, prompt=None, **extra):
    return settings_for(
        config,
        workspace,
        codebook,
        **{"llm.backend": llm, "llm.model": llm_model, "llm.base_url": base_url, "llm.prompt": prompt, **extra},
    )


@handle_errors
def plan_cli(
    llm: LlmOpt = None,
    llm_model: LlmModelOpt = None,
    base_url: BaseUrlOpt = None,
    prompt: PromptOpt = None,
    limit: LimitOpt = None,
    segment: SegmentOpt = None,
    examples: ExamplesOpt = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Count cached answers as calls too.")] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the prompt, the calls and their cost before anything runs.

    Shows, before anything runs, the rendered prompt for one segment, the number of calls, and the
    estimated tokens, time and (for a paid endpoint) cost. Loads no model and calls nothing.
    """
    from pipeline.llm import plan

    settings = _settings(config, workspace, codebook, llm, llm_model, base_url, prompt)
    with open_workspace(settings) as store:
        result = plan(store, settings, settings.load_codebook(), segment, limit, examples, refresh)
    print_result(result, json_out, _show_plan)


def _show_plan(result: dict[str, Any]) -> None:
    out.rule(f"system prompt ({len(result['example_system'])} characters)")
    out.print(result["example_system"], highlight=False, markup=False)
    out.rule(f"user prompt for segment {result['example_segment']}")
    out.print(result["example_user"], highlight=False, markup=False)
    out.rule("plan")
    cost = "n/a (local)" if result["cost"] is None else f"${result['cost']:.4f}"
    if result["cost"] == 0:
        cost += " (set llm.price_per_million_input/_output in the settings for a paid endpoint)"
    out.print(
        f"{result['backend']} / {result['model']} -> model version {result['model_version']}\n"
        f"segments {result['segments']}: {result['calls']} call(s), {result['cached']} cached, "
        f"{result['empty_segments']} empty (not sent)\n"
        f"~{result['prompt_tokens']} prompt + ~{result['answer_tokens']} answer tokens; "
        f"~{result['seconds']:.0f} s; cost {cost}",
        highlight=False,
    )


@handle_errors
def label_cli(
    llm: LlmOpt = None,
    llm_model: LlmModelOpt = None,
    base_url: BaseUrlOpt = None,
    prompt: PromptOpt = None,
    limit: LimitOpt = None,
    segment: SegmentOpt = None,
    examples: ExamplesOpt = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ask again even where the cache has an answer.")] = False,
    show: Annotated[
        int,
        typer.Option("--show", help="Print the labels (codes, reason) of the first N segments of this model version."),
    ] = 0,
    device: DeviceOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Label segments with the LLM (as `prelabel --with llm`).

    Stores per segment the codes, a confidence per code and a one-sentence rationale under a
    model version naming the model and prompt version. Answers are cached in the workspace: a
    rerun makes no calls (--refresh forces them) and a killed run resumes where it stopped.
    """
    from pipeline.flows import label_with_llm
    from pipeline.llm import labels_of

    settings = _settings(config, workspace, codebook, llm, llm_model, base_url, prompt)
    if check_device(device):  # the local model's device (llm.device)
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"device": device})})
    book = settings.load_codebook()
    with open_workspace(settings) as store:
        report = label_with_llm(
            store,
            settings,
            book,
            segment_ids=segment,
            limit=limit,
            refresh=refresh,
            examples_path=examples,
            show_progress=not quiet,
        )
        shown = labels_of(store, report.model_version, show) if show and not json_out else []
    print_result(report, json_out, lambda r: _show_labels(r, shown))


def _show_labels(report: dict[str, Any], shown: list[dict[str, Any]]) -> None:
    if shown:
        print_table(
            shown,
            [
                Column("segment", lambda r: r["segment_id"][:8], overflow="fold"),
                Column("speaker", missing="", overflow="fold"),
                Column("text", lambda r: _excerpt(r["text"], 70), overflow="fold"),
                Column("codes (confidence)", _codes_with_scores, overflow="fold"),
                Column("reason", "rationale", missing="", overflow="fold"),
            ],
            title=f"LLM labels ({report['model_version']})",
        )
    out.print(
        f"LLM-labelled {report['labelled']} of {report['segments']} segment(s) as {report['model_version']}: "
        f"{report['calls']} call(s), {report['from_cache']} from the cache, {report['seconds']:.1f} s"
        + (f" on {report['device']}." if report.get("device") else ".")
    )
    failures = report["failures"]
    for failure in failures[:10]:
        out.print(f"[yellow]failed[/] {failure['segment_id']}: {failure['error']}", highlight=False)
    if len(failures) > 10:
        out.print(f"... and {len(failures) - 10} more failures (see --json)")
    if report.get("admission"):
        out.print(admission_summary(report["admission"]), highlight=False)
        out.print("`culturecode admission --model-version VERSION` shows the measured kappa per code.", highlight=False)
    if report.get("measured"):
        out.print(_measured_line(report["measured"], report.get("admission")), highlight=False)


def _measured_line(measured: dict[str, Any], admission: dict[str, Any] | None) -> str:
    """What the model and prompt scored on the example gold, and whether that clears the admission bar."""
    line = (
        f"Measured quality of {measured['model']} ({measured['prompt']}) on {measured['gold']}: "
        f"micro-F1 {measured['micro_f1']:.2f}, macro-F1 {measured['macro_f1']:.2f}, "
        f"mean kappa {measured['mean_kappa']:.2f}"
    )
    from pipeline.classifier.provenance import data_note

    if note := data_note(measured["gold"]):
        line += f" ({note})"
    if admission and admission.get("enabled") and measured["mean_kappa"] < admission["min_kappa"]:
        line += (
            f". That is below admission (kappa >= {admission['min_kappa']:.2f}): treat these labels as a demonstration"
            " of the prompts and the cache, not as suggestions"
        )
    return line + "."


def _codes_with_scores(row: dict[str, Any]) -> str:
    return ", ".join(f"{c} ({row['scores'][c]:.2f})" for c in row["codes"]) or "-"


def _excerpt(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@handle_errors
def evaluate_cli(
    model_version: ModelVersionOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare the LLM labels with human gold.

    F1 and Cohen's kappa per code.
    """
    from pipeline.llm import evaluate_llm

    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        report = evaluate_llm(store, settings.load_codebook(), model_version)
    print_result(report, json_out, lambda r: print_metrics(r, f"{r['model_version']} vs gold"))


@handle_errors
def llm_test_server_cli(
    llm_model: LlmModelOpt = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Require the key held in this environment variable.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Test double: the local LLM on a small OpenAI-compatible API.

    Its routes: /v1/chat/completions and /v1/models, one request at a time per thread, no batching.
    For tests and a quick look; to share a model across a team, run a real serving engine (vLLM,
    llama.cpp's llama-server, Ollama) and point `--llm openai` at it (docs/llm.md).
    """
    from pipeline.llm import make_server
    from pipeline.llm.backends.local import make_backend as make_local_backend

    settings = settings_for(config, None, None, **{"llm.model": llm_model, "llm.backend": "local"})
    backend = make_local_backend(settings.llm)
    backend.load()  # before the first request, not during it
    server = make_server(backend, host, port, os.environ.get(api_key_env) if api_key_env else None)
    out.print(f"serving {backend.model_id} on http://{host}:{server.server_port}/v1 (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()


@handle_errors
def distill_cli(
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="LLM model version to learn from (default: the current one).")
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option("--min-confidence", help="Leave out segments with a chosen code below this confidence."),
    ] = None,
    method: Annotated[str | None, typer.Option("--method", help="finetune or head (see classifier.method).")] = None,
    no_promote: Annotated[
        bool, typer.Option("--no-promote", help="Register the model without making it current.")
    ] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train the classifier on LLM labels when there is no gold.

    For a cold start, before any human gold exists: the LLM's silver labels, filtered by confidence.
    """
    from pipeline.flows import distill

    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        report = distill(
            store, settings, settings.load_codebook(), model_version, min_confidence, method, not no_promote, not quiet
        )
    print_result(report, json_out, _show_distill)


def _show_distill(report: dict[str, Any]) -> None:
    train = report["train"]
    out.print(
        f"Distilled {train['version']} from {report['silver_from']}: {report['segments']} silver segment(s), "
        f"{report['left_out']} left out below confidence {report['min_confidence']}; held-out "
        f"micro F1 {train['test'].get('micro_f1')} (against silver labels).",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    llm_app.command("plan")(plan_cli)
    llm_app.command("label")(label_cli)
    llm_app.command("evaluate")(evaluate_cli)
    llm_app.command("test-server")(llm_test_server_cli)
    llm_app.command("serve", hidden=True)(command_alias("llm serve", "llm test-server", llm_test_server_cli))
    app.add_typer(llm_app, name="llm")
    app.command("distill")(distill_cli)
