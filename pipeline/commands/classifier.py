"""Classifier commands: train, prelabel, evaluate, models list|show|promote, retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipeline import classifier
from pipeline.commands.common import (CodebookOpt, ConfigOpt, JsonOpt, WorkspaceOpt, check_labeller, handle_errors,
                                      open_workspace, out, print_json, settings_for)

models_app = typer.Typer(help="List, inspect and promote classifier versions.", no_args_is_help=True)

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model version (default: the current one).")]
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", help="torch, or onnx for the int8 ONNX Runtime copy (about 1.5x faster).")]
MethodOpt = Annotated[str | None, typer.Option(
    "--method", help="finetune (whole network; best with a few hundred labelled segments) or head "
                     "(frozen encoder + logistic regression per code; about a minute to train).")]


def metrics_table(result: dict, title: str, thresholds: dict[str, float] | None = None) -> Table:
    table = Table(title=title)
    columns = ["code", "support", "precision", "recall", "F1", "kappa"] + (["threshold"] if thresholds else [])
    for col in columns:
        table.add_column(col, justify="left" if col == "code" else "right")
    for code, m in result["per_code"].items():
        kappa = "-" if m["cohen_kappa"] is None else f"{m['cohen_kappa']:.2f}"
        row = [code, str(m["support"]), f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}", kappa]
        table.add_row(*row, *([f"{thresholds[code]:.2f}"] if thresholds else []))
    table.caption = (f"micro F1 {result['micro_f1']:.3f}   macro F1 {result['macro_f1']:.3f}   "
                     f"({result['segments']} segments)")
    return table


@handle_errors
def train_cli(
    gold: Annotated[Path | None, typer.Option("--gold", "-g", help="Gold JSONL file or folder (lines with text, codes, document). Default: the workspace's adjudicated gold labels.")] = None,
    method: MethodOpt = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Maximum fine-tuning epochs (early stopping may end sooner).")] = None,
    base_model: Annotated[str | None, typer.Option("--base-model", help="'minilm' (packaged), a local model folder, or a hub name.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed; same data and seed give the same model.")] = None,
    onnx: Annotated[bool | None, typer.Option("--onnx/--no-onnx", help="Also export the int8 ONNX copy used by --backend onnx.")] = None,
    promote: Annotated[bool, typer.Option("--promote/--no-promote", help="Make the new version the current model.")] = True,
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
    quiet: QuietOpt = False, json_out: JsonOpt = False,
) -> None:
    """Train a classifier and register it as a new model version, with held-out per-code figures.

    The split holds out whole documents; per-code thresholds are tuned on the validation split and
    the table shows the test split.
    """
    settings = settings_for(config, workspace, codebook, **{
        "classifier.method": method, "classifier.epochs": epochs, "classifier.base_model": base_model,
        "classifier.seed": seed, "classifier.export_onnx": onnx})
    with open_workspace(settings, create=True) as store:
        report = classifier.train(store, settings, settings.load_codebook(), gold=gold, promote=promote,
                                  show_progress=not quiet)
    if json_out:
        print_json(report.as_dict())
        return
    out.print(metrics_table(report.test, f"{report.version} ({report.method}) on held-out documents",
                            report.thresholds))
    if report.too_few_positives:
        few = ", ".join(f"{c} ({n})" for c, n in report.too_few_positives.items())
        out.print(f"[yellow]too few training positives to learn reliably:[/] {few}")
    if report.onnx_int8:
        o = report.onnx_int8
        out.print(f"int8 ONNX copy: macro F1 {o['macro_f1']:.3f} vs {o['fp32_macro_f1']:.3f} full precision "
                  f"({o['same_decisions']:.1%} identical decisions)")
    state = "now the current model" if report.promoted else f"promote it with `culturecode models promote {report.version}`"
    out.print(f"Saved [bold]{report.version}[/] in {report.path} in {report.seconds:.0f} s; {state}.")


@handle_errors
def prelabel_cli(
    model: ModelOpt = None, backend: BackendOpt = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Segments per forward pass.")] = None,
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
    quiet: QuietOpt = False, json_out: JsonOpt = False,
    with_: Annotated[str, typer.Option("--with", help="classifier (default), or llm: label with the LLM instead (see `culturecode llm label`).")] = "classifier",
) -> None:
    """Score every segment the model has not scored yet; `culturecode push` sends the predictions.

    Stores a probability per code and the codes that reach their per-code thresholds. Reruns
    only score new segments; an interrupted run resumes where it stopped. `--with llm` labels
    with the LLM instead (codes, confidence and a rationale per segment; cached in the workspace).
    """
    if check_labeller(with_) == "llm":  # the LLM stage's branch (pipeline/commands/llm.py)
        from pipeline.commands.llm import label_cli
        return label_cli(workspace=workspace, config=config, codebook=codebook, quiet=quiet, json_out=json_out)
    settings = settings_for(config, workspace, codebook, **{"classifier.inference_batch_size": batch_size})
    with open_workspace(settings) as store:
        report = classifier.prelabel(store, settings, settings.load_codebook(), model_version=model,
                                     backend=backend, show_progress=not quiet)
    if json_out:
        print_json(report.as_dict())
        return
    out.print(f"Pre-labelled {report.scored} segment(s) with {report.model_version} ({report.backend}, "
              f"{report.segments_per_second} segments/s); {report.already_scored} were already scored.")
    if report.scored:
        out.print("predicted: " + ", ".join(f"{c} {n}" for c, n in report.per_code.items()))


@handle_errors
def evaluate_cli(
    model: ModelOpt = None,
    gold: Annotated[Path | None, typer.Option("--gold", "-g", help="Evaluate on an outside JSONL file (text, codes) instead of the workspace's gold labels.")] = None,
    include_training: Annotated[bool, typer.Option("--include-training", help="Also count segments the model was trained on.")] = False,
    backend: Annotated[str, typer.Option("--backend", help="torch or onnx.")] = "torch",
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare a model version with human labels: per-code P/R/F1, Cohen's kappa, micro and macro F1."""
    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        result = classifier.evaluate(store, settings, settings.load_codebook(), model_version=model,
                                     gold_file=gold, include_training=include_training, backend=backend)
    if json_out:
        print_json(result)
        return
    out.print(metrics_table(result, f"{result['model_version']} vs {result['source']}"))
    if result["excluded_training"]:
        out.print(f"left out {result['excluded_training']} segment(s) the model was trained on (--include-training counts them)")
    if result.get("annotators"):
        table = Table(title="Model vs each annotator")
        for col in ("annotator", "segments", "micro F1", "macro F1", "mean kappa"):
            table.add_column(col, justify="left" if col == "annotator" else "right")
        for name, m in result["annotators"].items():
            kappa = "-" if m["mean_kappa"] is None else f"{m['mean_kappa']:.2f}"
            table.add_row(name, str(m["segments"]), f"{m['micro_f1']:.3f}", f"{m['macro_f1']:.3f}", kappa)
        out.print(table)


@models_app.command("list")
@handle_errors
def models_list_cli(workspace: WorkspaceOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """List classifier versions with their held-out figures; * marks the current one."""
    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        rows = classifier.list_models(store)
    if json_out:
        print_json(rows)
        return
    table = Table()
    for col in ("", "version", "method", "macro F1", "micro F1", "test segments", "created"):
        table.add_column(col)
    for r in rows:
        m = r["metrics"]
        table.add_row("*" if r["is_current"] else "", r["version"], m.get("method", ""),
                      f"{m.get('macro_f1', 0):.3f}", f"{m.get('micro_f1', 0):.3f}",
                      str(m.get("test_segments", "")), r["created_at"])
    out.print(table if rows else "No classifier versions yet: `culturecode train --gold examples/gold/`.")


@models_app.command("show")
@handle_errors
def models_show_cli(version: Annotated[str | None, typer.Argument(help="Version (default: the current one).")] = None,
                    workspace: WorkspaceOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Show one version: settings, training data, thresholds, held-out metrics, model card path."""
    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        info = classifier.show_model(store, version)
    info.get("training", {}).pop("train_texts", None)
    if json_out:
        print_json(info)
        return
    manifest, training = info.get("classifier", {}), info.get("training", {})
    out.print(f"[bold]{info['version']}[/]{' (current)' if info['is_current'] else ''}: {manifest.get('method')} on "
              f"{manifest.get('base_model')}, codebook {manifest.get('codebook_id')} ({info['codebook_hash']})")
    out.print(f"trained on {training.get('segments')} segments from {training.get('documents')} documents "
              f"({training.get('source')}); model card: {info['model_card']}")
    test = info.get("metrics", {}).get("test")
    if test:
        out.print(metrics_table(test, "held-out test split", dict(zip(manifest["codes"], manifest["thresholds"]))))


@models_app.command("promote")
@handle_errors
def models_promote_cli(version: Annotated[str, typer.Argument(help="Version to make current.")],
                       workspace: WorkspaceOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Make a version the current model (used by prelabel, push and evaluate by default)."""
    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        row = classifier.promote(store, version)
    if json_out:
        print_json(row)
    else:
        out.print(f"{row['version']} is now the current classifier.")


@handle_errors
def retrain_cli(
    force: Annotated[bool, typer.Option("--force", help="Promote the new version even if it is not better.")] = False,
    method: MethodOpt = None,
    gold: Annotated[Path | None, typer.Option("--gold", "-g", help="Extra gold JSONL to train on besides the workspace's labels.")] = None,
    push: Annotated[bool, typer.Option("--push/--no-push", help="Push updated predictions to Label Studio at the end.")] = True,
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
    quiet: QuietOpt = False, json_out: JsonOpt = False,
) -> None:
    """Pull -> gold labels (majority) -> train -> evaluate new vs current -> promote if better -> prelabel -> push."""
    settings = settings_for(config, workspace, codebook, **{"classifier.method": method})
    with open_workspace(settings) as store:
        report = classifier.retrain(store, settings, settings.load_codebook(), force=force, extra_gold=gold,
                                    push=push, show_progress=not quiet)
    if json_out:
        print_json(report)
        return
    table = Table(title=f"Before / after on {report['held_out_segments']} held-out segments")
    for col in ("", "version", "micro F1", "macro F1"):
        table.add_column(col)
    for label, key in (("before", "current"), ("after", "new")):
        m = report[key]
        if m:
            table.add_row(label, m["model_version"], f"{m['micro_f1']:.3f}", f"{m['macro_f1']:.3f}")
    out.print(table)
    out.print(report["message"])


def register(app: typer.Typer) -> None:
    app.command("train")(train_cli)
    app.command("prelabel")(prelabel_cli)
    app.command("evaluate")(evaluate_cli)
    app.command("retrain")(retrain_cli)
    app.add_typer(models_app, name="models")
