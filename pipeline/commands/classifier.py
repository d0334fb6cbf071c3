"""Classifier commands: train, prelabel, evaluate, models list|show|promote|prune, retrain.

The classifier stage (torch, transformers) is imported inside each command, never at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
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
    RuntimeOpt,
    WorkspaceOpt,
    check_device,
    handle_errors,
    open_workspace,
    out,
    print_result,
    settings_for,
)
from pipeline.commands.render import Column, print_json, print_metrics, print_table
from pipeline.errors import CultureCodeError

models_app = typer.Typer(help="List, inspect, promote and prune classifier versions.", no_args_is_help=True)

MethodOpt = Annotated[
    str | None,
    typer.Option(
        "--method",
        help="finetune (whole network; best with a few hundred labelled segments) or head "
        "(frozen encoder + logistic regression per code; about a minute to train).",
    ),
]


GoldOpt = Annotated[
    Path | None,
    typer.Option(
        "--gold",
        "-g",
        help="Gold JSONL file or folder (lines with text, codes, document). "
        "Default: the workspace's adjudicated gold labels.",
    ),
]
BaseModelOpt = Annotated[
    str | None,
    typer.Option("--base-model", help="'mpnet' or 'minilm' (packaged), a local model folder, or a hub name."),
]


@handle_errors
def train_cli(
    gold: GoldOpt = None,
    method: MethodOpt = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Maximum fine-tuning epochs (early stopping may end sooner).")
    ] = None,
    base_model: BaseModelOpt = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed; same data and seed give the same model.")
    ] = None,
    onnx: Annotated[
        bool | None, typer.Option("--onnx/--no-onnx", help="Also export the int8 ONNX copy used by --runtime onnx.")
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote/--no-promote", help="Make the new version the current model.")
    ] = True,
    device: DeviceOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train a classifier and register it as a new model version.

    Prints held-out per-code figures. The split holds out whole documents; per-code thresholds are
    tuned on the validation split and the table shows the test split.
    """
    from pipeline import classifier

    settings = settings_for(
        config,
        workspace,
        codebook,
        **{
            "classifier.method": method,
            "classifier.epochs": epochs,
            "classifier.base_model": base_model,
            "classifier.seed": seed,
            "classifier.export_onnx": onnx,
            "classifier.device": check_device(device),
        },
    )
    with open_workspace(settings, create=True) as store:
        report = classifier.train(
            store, settings, settings.load_codebook(), gold=gold, promote=promote, show_progress=not quiet
        )
    print_result(report, json_out, _show_train)


def _device(report: dict[str, Any]) -> str:
    device = report.get("fit", {}).get("device") or {"device": "cpu", "precision": "fp32"}
    name = f" {device['name']}" if device.get("name") else ""
    return f"{device['device']}{name} ({device['precision']})"


def _show_train(report: dict[str, Any]) -> None:
    from pipeline.classifier.provenance import data_note, onnx_line

    source = report.get("source") or "the training data"
    print_metrics(
        report["test"],
        f"{report['version']} ({report['method']}) on held-out documents of {source}",
        report["thresholds"],
    )
    if note := data_note(report.get("source")):
        out.print(f"[yellow]Measured on {note}.[/]", highlight=False)
    if report["too_few_positives"]:
        few = ", ".join(f"{c} ({n})" for c, n in report["too_few_positives"].items())
        out.print(f"[yellow]too few training positives to learn reliably:[/] {few}")
    if report["onnx_int8"]:
        out.print(onnx_line(report["onnx_int8"]), highlight=False)
    version = report["version"]
    state = (
        "now the current model"
        if report["promoted"]
        else f"promote it with `culturecode models promote --model-version {version}`"
    )
    out.print(
        f"Saved [bold]{version}[/] in {report['path']} in {report['seconds']:.0f} s on {_device(report)}; {state}."
    )


@handle_errors
def prelabel_cli(
    model_version: ModelVersionOpt = None,
    runtime: RuntimeOpt = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Segments per forward pass.")] = None,
    device: DeviceOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
    with_: Annotated[
        str,
        typer.Option(
            "--with",
            help="An installed labeller: classifier (default); llm (the LLM backend named in the settings, "
            "see `culturecode llm label`), llm-local or llm-openai; or a plugin's (docs/labellers.md). "
            "An unknown name lists the installed ones.",
        ),
    ] = "classifier",
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local (this process) or ray: the int8 ONNX scorer in a Ray actor pool, on a local Ray started "
            "for the run or the cluster at ray.address (docs/scaling.md).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="--engine ray: a Ray cluster (auto, ray://host:10001). Default: ray.address."
        ),
    ] = None,
    num_cpus: Annotated[
        int | None,
        typer.Option("--num-cpus", min=1, help="--engine ray: CPUs of the local Ray. Default: ray.num_cpus (all)."),
    ] = None,
) -> None:
    """Score every segment the model has not scored yet.

    `culturecode push` sends the predictions. Stores a probability per code and the codes that reach
    their per-code thresholds. Reruns only score new segments; an interrupted run resumes where it
    stopped. `--with llm` labels with the LLM instead (codes, confidence and a rationale per segment;
    cached in the workspace).
    """
    from pipeline.flows import check_prelabel, prelabel

    labeller = check_prelabel(with_, engine)  # option errors before the workspace is opened
    overrides: dict[str, Any] = {}
    if engine == "ray":
        if runtime not in (None, "onnx") or check_device(device) == "cuda":
            raise CultureCodeError("--engine ray runs the int8 ONNX copy on CPUs: drop --runtime torch / --device cuda")
        overrides = {"ray.address": ray_address, "ray.num_cpus": num_cpus}
    elif labeller == "classifier":
        overrides = {
            "classifier.inference_batch_size": batch_size,
            "classifier.runtime": runtime,
            "classifier.device": check_device(device),
        }
    settings = settings_for(config, workspace, codebook, **overrides)
    book = settings.load_codebook()
    with open_workspace(settings) as store:
        result = prelabel(
            store,
            settings,
            book,
            labeller=labeller,
            engine=engine,
            model_version=model_version,
            show_progress=not quiet,
        )
    print_result(result.report, json_out, _prelabel_renderer(result.kind))


def _prelabel_renderer(kind: str) -> Callable[[dict[str, Any]], None]:
    """How `prelabel` shows each kind of report: the classifier's, the LLM's (as `llm label`), a labeller run's."""
    if kind == "llm":
        from pipeline.commands.llm import _show_labels

        return lambda report: _show_labels(report, [])
    return _show_prelabel if kind == "classifier" else _show_label_run


def _show_label_run(report: dict[str, Any]) -> None:
    if "labelled" not in report:  # a plugin's own report
        print_json(report)
        return
    out.print(
        f"Pre-labelled {report['labelled']} segment(s) with {report['model_version']} "
        f"({report['labeller']}); {report['already']} were already labelled.",
        highlight=False,
    )
    if report["labelled"]:
        out.print("predicted: " + ", ".join(f"{c} {n}" for c, n in report["per_code"].items()), highlight=False)


def _show_prelabel(report: dict[str, Any]) -> None:
    runtime = report.get("runtime") or report.get("backend")
    out.print(
        f"Pre-labelled {report['scored']} segment(s) with {report['model_version']} ({runtime} on {report['device']}, "
        f"{report['segments_per_second']} segments/s); {report['already_scored']} were already scored."
    )
    if report["scored"]:
        out.print("predicted: " + ", ".join(f"{c} {n}" for c, n in report["per_code"].items()))


@handle_errors
def evaluate_cli(
    model_version: ModelVersionOpt = None,
    gold: Annotated[
        Path | None,
        typer.Option(
            "--gold",
            "-g",
            help="Evaluate on an outside JSONL file (text, codes) instead of the workspace's gold labels.",
        ),
    ] = None,
    include_training: Annotated[
        bool, typer.Option("--include-training", help="Also count segments the model was trained on.")
    ] = False,
    runtime: RuntimeOpt = None,
    device: DeviceOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare a model version with human labels.

    Per-code P/R/F1, Cohen's kappa, micro and macro F1.
    """
    from pipeline import classifier

    settings = settings_for(
        config, workspace, codebook, **{"classifier.runtime": runtime, "classifier.device": check_device(device)}
    )
    with open_workspace(settings) as store:
        result = classifier.evaluate(
            store,
            settings,
            settings.load_codebook(),
            model_version=model_version,
            gold_file=gold,
            include_training=include_training,
            backend=settings.classifier.runtime,
        )
    print_result(result, json_out, _show_evaluation)


def _show_evaluation(result: dict[str, Any]) -> None:
    print_metrics(result, f"{result['model_version']} vs {result['source']} (on {result.get('device', 'cpu')})")
    if result["excluded_training"]:
        out.print(
            f"left out {result['excluded_training']} segment(s) the model was trained on "
            f"(--include-training counts them)"
        )
    if result.get("annotators"):
        rows = [{"annotator": name, **m} for name, m in result["annotators"].items()]
        print_table(
            rows,
            [
                "annotator",
                Column("segments", justify="right"),
                Column("micro F1", "micro_f1", fmt=".3f", justify="right"),
                Column("macro F1", "macro_f1", fmt=".3f", justify="right"),
                Column("mean kappa", "mean_kappa", fmt=".2f", justify="right"),
            ],
            title="Model vs each annotator",
        )


@models_app.command("list")
@handle_errors
def models_list_cli(workspace: WorkspaceOpt = None, config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """List classifier versions with their held-out figures.

    The current one is marked with a star.
    """
    from pipeline import classifier

    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        rows = classifier.list_models(store)
    print_result(rows, json_out, _show_models)


def _show_models(rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print("No classifier versions yet: `culturecode train --gold examples/gold/`.")
        return
    print_table(
        rows,
        [
            Column("", lambda r: "*" if r["is_current"] else ""),
            "version",
            Column("method", _metric("method"), missing=""),
            Column("macro F1", _metric("macro_f1"), fmt=".3f"),
            Column("micro F1", _metric("micro_f1"), fmt=".3f"),
            Column("test segments", _metric("test_segments"), missing=""),
            Column("created", "created_at"),
        ],
    )


def _metric(key: str):
    """A column key reading one held-out figure from a model row's metrics."""
    return lambda row: row["metrics"].get(key)


@models_app.command("show")
@handle_errors
def models_show_cli(
    model_version: ModelVersionOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one model version in detail.

    Its settings, training data, thresholds, held-out metrics and model card path.
    """
    from pipeline import classifier

    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        info = classifier.show_model(store, model_version)
    info.get("training", {}).pop("train_texts", None)
    print_result(info, json_out, _show_model)


def _show_model(info: dict[str, Any]) -> None:
    manifest, training = info.get("classifier", {}), info.get("training", {})
    out.print(
        f"[bold]{info['version']}[/]{' (current)' if info['is_current'] else ''}: {manifest.get('method')} on "
        f"{manifest.get('base_model')}, codebook {manifest.get('codebook_id')} ({info['codebook_hash']})"
    )
    out.print(
        f"trained on {training.get('segments')} segments from {training.get('documents')} documents "
        f"({training.get('source')}); model card: {info['model_card']}"
    )
    test = info.get("metrics", {}).get("test")
    if test:
        print_metrics(test, "held-out test split", dict(zip(manifest["codes"], manifest["thresholds"], strict=True)))


@models_app.command("promote")
@handle_errors
def models_promote_cli(
    model_version: Annotated[str, typer.Option("--model-version", help="The version to make current.")],
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Make a version the current model.

    prelabel, push and evaluate use the current model by default.
    """
    from pipeline import classifier

    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        row = classifier.promote(store, model_version)
    print_result(row, json_out, lambda r: out.print(f"{r['version']} is now the current classifier."))


@models_app.command("prune")
@handle_errors
def models_prune_cli(
    keep: Annotated[
        int | None,
        typer.Option("--keep", min=0, help="Unused versions to keep, newest first (default: loop.keep_unpromoted)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove classifier versions nothing uses, but the newest few.

    Never removed: the current version, one ever promoted, one a Label Studio task names, one annotations were
    made against, one with stored predictions. Each kept version is listed with why.
    """
    from pipeline import classifier

    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        report = classifier.prune_versions(
            store, settings.loop.keep_unpromoted if keep is None else keep, dry_run=dry_run
        )
    print_result(report, json_out, _show_prune)


def _show_prune(report: dict[str, Any]) -> None:
    print_table(
        [*({**r, "why": ", ".join(r["reasons"])} for r in report["kept"])],
        ["version", Column("kept because", "why")],
        title="Kept",
    )
    verb = "Would remove" if report["dry_run"] else "Removed"
    names = ", ".join(r["version"] for r in report["removed"]) or "none"
    out.print(f"{verb}: {names} ({report['freed_bytes'] / 2**20:.0f} MB).", highlight=False)


@handle_errors
def retrain_cli(
    force: Annotated[bool, typer.Option("--force", help="Promote the new version even if it is not better.")] = False,
    method: MethodOpt = None,
    gold: Annotated[
        Path | None,
        typer.Option(
            "--gold",
            "-g",
            help="Example gold JSONL the workspace's labels are added to (default: the gold the current model was "
            "trained on, else examples/gold when it fits the codebook).",
        ),
    ] = None,
    push: Annotated[
        bool, typer.Option("--push/--no-push", help="Push updated predictions to Label Studio at the end.")
    ] = True,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Retrain on the project's labels; promote if better.

    Pull -> gold labels (majority) -> train -> evaluate new vs current -> promote if better -> prelabel ->
    calibrate -> push. The workspace's labels are added to the example gold (each weighing
    classifier.project_weight examples), not put in its place.
    """
    from pipeline.flows import retrain

    settings = settings_for(config, workspace, codebook, **{"classifier.method": method})
    with open_workspace(settings) as store:
        report = retrain(
            store, settings, settings.load_codebook(), force=force, extra_gold=gold, push=push, show_progress=not quiet
        )
    print_result(report, json_out, _show_retrain)


def _show_retrain(report: dict[str, Any]) -> None:
    rows = [{"": label, **report[key]} for label, key in (("before", "current"), ("after", "new")) if report[key]]
    print_table(
        rows,
        [
            "",
            Column("version", "model_version"),
            Column("micro F1", "micro_f1", fmt=".3f"),
            Column("macro F1", "macro_f1", fmt=".3f"),
        ],
        title=f"Before / after on {report['held_out_segments']} held-out segments",
    )
    out.print(report["message"])
    prior = report.get("prior")
    out.print(f"Trained on the workspace's labels with {prior}" if prior else "Trained on the workspace's labels alone")
    calibration = report.get("calibration") or {}
    if calibration.get("message"):
        out.print(f"Calibration: {calibration['message']}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train_cli)
    app.command("prelabel")(prelabel_cli)
    app.command("evaluate")(evaluate_cli)
    app.command("retrain")(retrain_cli)
    app.add_typer(models_app, name="models")
