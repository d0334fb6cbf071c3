"""The model card (README.md in each version directory), written for a researcher."""

from __future__ import annotations

from pathlib import Path

from pipeline.classifier.provenance import data_note, onnx_line
from pipeline.config import Codebook


def write_model_card(path: Path, manifest: dict, training: dict, metrics: dict, codebook: Codebook) -> None:
    test = metrics["test"]
    lines = [
        f"# Classifier {manifest['version']}",
        "",
        f"A multi-label classifier for the codebook **{codebook.name}** (`{codebook.id}`, hash "
        f"`{manifest['codebook_hash']}`): for each segment it gives a probability per code and ticks "
        f"the codes whose probability reaches that code's threshold.",
        "",
        "## How it was trained",
        f"- Method: `{manifest['method']}` "
        + (
            "(the encoder was fine-tuned together with the output layer)."
            if manifest["method"] == "finetune"
            else "(the encoder was frozen; one logistic regression per code on its embeddings)."
        ),
        f"- Base encoder: `{manifest['base_model']}`"
        + (" (L2-normalised embeddings)" if manifest.get("normalize") else "")
        + (
            ", with each segment's similarity to every code's codebook text"
            if manifest.get("codebook_features")
            else ""
        )
        + f"; texts cut at {manifest['max_length']} tokens; "
        f"seed {manifest['seed']}.",
        f"- Data: {training['segments']} labelled segments from {training['documents']} documents "
        f"(source: `{training['source']}`).",
        f"- Split grouped by document (no document on two sides): train {training['split']['train']['segments']}, "
        f"validation {training['split']['validation']['segments']}, "
        f"test {training['split']['test']['segments']} segments.",
        _thresholds_line(manifest, training),
        *_device_line(metrics),
        "",
        "## Held-out results",
        f"Micro F1 **{test['micro_f1']:.3f}**, macro F1 **{test['macro_f1']:.3f}** "
        f"over {test['segments']} test segments of `{training['source']}`"
        + (f" ({note})." if (note := data_note(training["source"])) else "."),
        *(
            [
                "These are the figures of the model fitted without the test documents; the saved version then "
                "learned from them too (`classifier.refit_on_all`), so they slightly understate it.",
            ]
            if training.get("fit", {}).get("refit_on_all")
            else []
        ),
        "",
        "| code | threshold | train positives | test support | precision | recall | F1 | kappa |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for code, threshold in zip(manifest["codes"], manifest["thresholds"], strict=True):
        m = test["per_code"][code]
        kappa = "n/a" if m["cohen_kappa"] is None else f"{m['cohen_kappa']:.2f}"
        lines.append(
            f"| {code} | {threshold:.2f} | {training['positives'][code]} | {m['support']} | "
            f"{m['precision']:.2f} | {m['recall']:.2f} | {m['f1']:.2f} | {kappa} |"
        )
    lines += ["", "## Limitations"]
    if training["too_few_positives"]:
        few = ", ".join(f"`{c}` ({n})" for c, n in training["too_few_positives"].items())
        lines.append(
            f"- Codes with too few training positives to learn reliably: {few}. Treat their "
            f"predictions as suggestions only, and label more examples of them."
        )
    lines += [
        "- Pre-labels are suggestions for annotators to correct, not codes to report as findings.",
        "- Trained on the texts above only; expect lower accuracy on other settings, speakers or styles.",
    ]
    if "onnx_int8" in metrics:
        lines.append(f"- {onnx_line(metrics['onnx_int8'])}")
    lines += [
        "",
        "## Use",
        "```",
        f"culturecode models promote --model-version {manifest['version']}",
        "culturecode prelabel",
        "```",
        "",
    ]
    (path / "README.md").write_text("\n".join(lines), encoding="utf-8")


def _thresholds_line(manifest: dict, training: dict) -> str:
    if manifest.get("thresholds_from") == "grouped_cv":
        folds = training.get("fit", {}).get("cv_folds", "k")
        return (
            f"- The validation split joined training; per-code thresholds were tuned on out-of-fold scores of a "
            f"{folds}-fold cross-validation grouped by document. The figures below are on the test split, "
            f"which the model never saw."
        )
    return (
        "- Per-code thresholds were tuned on the validation split; the figures below are on the test split,"
        " which the model never saw."
    )


def _device_line(metrics: dict) -> list[str]:
    device = metrics.get("device")  # versions trained before devices were recorded have none
    if not device:
        return []
    name = f" ({device['name']})" if device.get("name") else ""
    return [f"- Trained on: {device['device']}{name}, {device['precision']} precision."]
