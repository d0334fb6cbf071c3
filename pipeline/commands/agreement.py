"""Commands for agreement and gold data: agreement, disagreements, adjudicate, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    JsonOpt,
    WorkspaceOpt,
    annotator_emails,
    handle_errors,
    open_workspace,
    out,
    print_result,
    settings_for,
    split_list,
)
from pipeline.commands.render import Column, print_admission, print_table

AnnotatorsOpt = Annotated[
    str | None,
    typer.Option(
        "--annotators",
        help="Only these annotators (comma-separated names, as `annotators add` takes them, or e-mails).",
    ),
]
DocumentsOpt = Annotated[
    str | None, typer.Option("--documents", help="Only segments of these documents (comma-separated document names).")
]


def _cell(value: float | None) -> str:
    return "[dim]undefined[/]" if value is None else f"{value:.3f}"


def _coefficient(header: str, key: str) -> Column:
    return Column(header, key, fmt=_cell, missing=_cell(None), justify="right")


AGREEMENT_COLUMNS = [
    Column("code"),
    _coefficient("% agr.", "percent_agreement"),
    _coefficient("Cohen κ", "cohen_kappa_mean"),
    _coefficient("Fleiss κ", "fleiss_kappa"),
    _coefficient("Kripp. α", "krippendorff_alpha"),
    Column(
        "α 95% CI", "krippendorff_alpha_ci", fmt=lambda ci: f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "-", justify="right"
    ),
    _coefficient("AC1", "gwet_ac1"),
    Column("units", "n_units", justify="right"),
    Column("α band", lambda s: s["interpretation"]["krippendorff_alpha"]),
]


def _show_agreement(report: dict[str, Any]) -> None:
    rows = [{"code": code, **s} for code, s in report["codes"].items()]
    print_table(
        rows, AGREEMENT_COLUMNS, title=f"Agreement: {report['n_items']} items, {report['n_annotators']} annotators"
    )
    o = report["overall"]
    line = ", ".join(
        f"{k} {_cell(o[k])}" for k in o if isinstance(o[k], float) or (o[k] is None and k in o["undefined_reasons"])
    )
    out.print(f"Whole label set: {line}")
    for code, s in report["codes"].items():
        if s["undefined_reason"]:
            out.print(f"[yellow]{code}[/]: {s['undefined_reason']}")
    out.print(report["summary"]["text"])
    for table in report.get("admission", {}).values():
        print_admission(table)
    if anchoring := report.get("anchoring"):
        _show_anchoring(anchoring)
    for path in report["paths"].values():
        out.print(f"wrote {path}")


def _show_anchoring(check: dict[str, Any]) -> None:
    """One line: which codes the pre-labels moved (blind against assisted segments; details in the report)."""
    groups = f"{check['groups']['blind']['n_items']} blind / {check['groups']['assisted']['n_items']} assisted segments"
    if check.get("reason"):
        out.print(f"Anchoring check ({groups}): not computed: {check['reason']}.", highlight=False)
        return
    from pipeline.agreement.render import shift_summary

    out.print(
        f"Anchoring check ({groups}, assisted: {check.get('assisted_sample', 'every assisted segment')}): "
        f"{shift_summary(check)} Details in section 'Anchoring check' of the report.",
        highlight=False,
    )


@handle_errors
def agreement_cli(
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="Annotations made elsewhere: CSV or JSONL with columns item, annotator, codes "
            "(a list or ';'-separated; empty = no code). Codes are checked against --codebook "
            "when given, else taken from the data.",
        ),
    ] = None,
    single_choice: Annotated[
        bool,
        typer.Option(
            "--single-choice", help="With --input: each item has exactly one code (adds multi-category coefficients)."
        ),
    ] = False,
    annotators: AnnotatorsOpt = None,
    codes: Annotated[
        str | None, typer.Option("--codes", help="Only these codes in the per-code table (comma-separated ids).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only annotations made or updated on/after this date (YYYY-MM-DD or ISO time, UTC)."
        ),
    ] = None,
    documents: DocumentsOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for agreement-<date>.{html,md,json} (default: <workspace>/reports; with --input and no "
            "--workspace: ./reports).",
        ),
    ] = None,
    bootstrap: Annotated[
        int | None, typer.Option("--bootstrap", help="Bootstrap replicates for the confidence intervals (0 = none).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for the bootstrap (same seed, same intervals).")
    ] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Inter-annotator agreement per code and overall, with CIs.

    Writes the report as HTML, Markdown and JSON. Per code (a yes/no decision): percent agreement,
    Cohen's kappa (each pair and mean), Fleiss' kappa, Krippendorff's alpha (nominal, missing data
    allowed) and Gwet's AC1. Over the label set: alpha with MASI and Jaccard distance and exact match.
    Each model version is compared with the annotators as an extra rater. Undefined coefficients are
    reported with the reason.
    """
    from pipeline.agreement import agreement_from_file, agreement_report
    from pipeline.config import load_codebook
    from pipeline.outputs import writable_folder

    settings = settings_for(config, workspace, codebook, **{"agreement.bootstrap": bootstrap, "agreement.seed": seed})
    if out_dir is not None:  # a bad --out fails before anything is computed or recorded
        writable_folder(out_dir, "agreement report")
    if input_file is not None:
        book = load_codebook(settings.codebook_path()) if codebook else None
        reports = out_dir or (Path(settings.workspace) / "reports" if workspace else Path("reports"))
        result = agreement_from_file(
            input_file,
            settings,
            book,
            single_choice or bool(book and book.single_choice),
            split_list(codes),
            split_list(annotators),
            reports,
        )
    else:
        with open_workspace(settings) as store:
            result = agreement_report(
                store,
                settings,
                settings.load_codebook(),
                annotator_emails(annotators, settings),
                split_list(codes),
                since,
                split_list(documents),
                out_dir or store.workspace / "reports",
            )
    print_result({**result.report, "paths": result.paths}, json_out, _show_agreement)


@handle_errors
def disagreements_cli(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many segments.")] = 20,
    push: Annotated[
        bool,
        typer.Option(
            "--push",
            help="Send the listed segments to a separate Label Studio review project for an adjudicator "
            "(then `culturecode pull` and `culturecode adjudicate --method adjudicator`).",
        ),
    ] = False,
    adjudicator: Annotated[
        str | None,
        typer.Option(
            "--adjudicator",
            help="With --push: the Label Studio user (name or e-mail) who adjudicates; gets a "
            "review project of their own.",
        ),
    ] = None,
    annotators: AnnotatorsOpt = None,
    documents: DocumentsOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Segments where annotators disagree, most contested first.

    --push sends them to a review project. Score: per code the smaller of the yes and no counts,
    summed over codes, divided by the number of annotators.
    """
    from pipeline.agreement import disagreements
    from pipeline.flows import push_disagreements

    settings = settings_for(config, workspace, codebook)
    book = settings.load_codebook()
    with open_workspace(settings) as store:
        rows = disagreements(store, book, annotator_emails(annotators, settings), split_list(documents), limit)
        pushed = push_disagreements(store, settings, book, rows, adjudicator, not json_out) if push else None
    print_result({"disagreements": rows, "pushed": pushed}, json_out, _show_disagreements)


def _split_votes(row: dict[str, Any]) -> str:
    return ", ".join(f"{c} {n}/{row['n_annotators']}" for c, n in row["split_votes"].items())


def _show_disagreements(result: dict[str, Any]) -> None:
    rows = result["disagreements"]
    print_table(
        rows,
        [
            Column("segment", lambda r: escape(r["item"])),
            Column("doc", lambda r: escape(r["document"])),
            Column("#", "position"),
            Column("score", fmt=".2f"),
            Column("split votes", _split_votes),
            Column("text", lambda r: escape(r["text"][:200]), overflow="fold"),
        ],
        title=f"{len(rows)} most contested segment(s)",
    )
    pushed = result["pushed"]
    if pushed is not None:
        out.print(
            f"pushed {len(rows)} segment(s) to review project(s) "
            f"{', '.join(str(p['id']) for p in pushed['projects'])} on {pushed['url']}"
        )


@handle_errors
def adjudicate_cli(
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            help="majority: more than half ticked the code (a tie means absent); dawid-skene: "
            "crowd-kit's Dawid-Skene per code, weighting annotators by estimated accuracy; "
            "adjudicator: the decision made in the review project (`disagreements --push`), "
            "majority where there is none.",
        ),
    ] = "majority",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Turn annotations into gold labels per segment and code.

    Records the method and the votes. Rewrites the whole gold table in one transaction: rerunning gives
    the same result.
    """
    from pipeline.gold import adjudicate

    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        report = adjudicate(store, settings.load_codebook(), method)
    print_result(report, json_out, _show_adjudication)


def _show_adjudication(report: dict[str, Any]) -> None:
    out.print(f"Gold labels for {report['segments']} segment(s) by {report['method']}.")
    if report["method"] == "majority" and report["ties"]:
        out.print(
            f"{report['ties']} tied (segment, code) vote(s) were resolved as 'absent'; "
            f"see `culturecode disagreements` or use --method adjudicator."
        )
    if report["method"] == "adjudicator":
        out.print(f"{report['adjudicated']} decided in the review project, {report['fallback_majority']} by majority.")
    out.print("Per code: " + ", ".join(f"{c} {n}" for c, n in report["per_code"].items()))


@handle_errors
def export_cli(
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            "-f",
            help="hf (datasets.DatasetDict saved to disk), parquet, jsonl or csv; repeat for several (default: all).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: <workspace>/exports/gold-<date>).")
    ] = None,
    keep_annotator_ids: Annotated[
        bool,
        typer.Option("--keep-annotator-ids", help="Keep annotator e-mails instead of pseudonyms (annotator_1, ...)."),
    ] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the gold dataset and its dataset card (README.md).

    Split into train/validation/test by document. Columns: text, document, speaker, gold codes (ids,
    names, multi-hot), every annotator's codes, per-item agreement, whether each annotator changed the
    pre-label, the pre-label's model version.
    """
    from pipeline.gold import export

    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        report = export(store, settings, settings.load_codebook(), formats, out_dir, keep_annotator_ids)
    print_result(report, json_out, _show_export)


def _show_export(report: dict[str, Any]) -> None:
    out.print(
        f"Exported {report['rows']} gold segment(s) to {report['out_dir']}: "
        + ", ".join(f"{s} {n} ({report['documents'][s]} doc)" for s, n in report["splits"].items())
    )
    for kind, path in report["files"].items():
        out.print(f"  {kind}: {path}")


@handle_errors
def admission_cli(
    model_version: Annotated[
        str | None,
        typer.Option("--model-version", help="The model version (default: the current classifier, else the LLM)."),
    ] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Which codes annotators see pre-ticked, and why.

    For a model version, per code: Cohen's kappa between the model and human labels on segments it
    did not train on, with a 95% bootstrap CI.

    The evidence is the project's own human labels once a code has admission.min_evidence positives
    and negatives there, else the held-out predictions saved at training time. A code is admitted
    when its kappa reaches admission.min_kappa; the others are shown to annotators only as a hint.
    The table is stored with the model version; `push` uses it.
    """
    from pipeline.agreement.admission import measure_admission

    settings = settings_for(config, workspace, codebook)
    with open_workspace(settings) as store:
        table = measure_admission(store, settings, settings.load_codebook(), model_version)
    print_result(table, json_out, print_admission)


def register(app: typer.Typer) -> None:
    app.command("admission")(admission_cli)
    app.command("agreement")(agreement_cli)
    app.command("disagreements")(disagreements_cli)
    app.command("adjudicate")(adjudicate_cli)
    app.command("export")(export_cli)
