"""`culturecode findings`: code prevalence, overall and per group, with prediction-powered intervals."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    JsonOpt,
    ModelVersionOpt,
    WorkspaceOpt,
    handle_errors,
    open_workspace,
    out,
    print_result,
    settings_for,
)
from pipeline.commands.render import Column, print_table
from pipeline.errors import CultureCodeError


@handle_errors
def findings_cli(
    by: Annotated[
        str | None,
        typer.Option("--by", help="A speaker or document field (`culturecode meta show`): figures per group."),
    ] = None,
    codes: Annotated[
        str | None, typer.Option("--codes", help="Comma-separated codes (default: every code in the codebook).")
    ] = None,
    level: Annotated[
        float | None, typer.Option("--level", help="Confidence level (default: findings.level, 0.95).")
    ] = None,
    model_version: ModelVersionOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Code prevalence per group, with prediction-powered intervals.

    Three estimates side by side: model only (biased, no interval), the random human sample only, and
    prediction-powered (PPI++: model scores on every segment corrected by the human labels of the random audit
    and blind streams, weighted by inclusion probability); per group of a field with --by, and group
    differences. See docs/findings.md."""
    from pipeline.findings import prevalence

    settings = settings_for(config, workspace, codebook)
    book = settings.load_codebook()
    chosen = [c.strip() for c in codes.split(",") if c.strip()] if codes else list(book.code_ids)
    unknown = [c for c in chosen if c not in book.code_ids]
    if unknown:
        raise CultureCodeError(f"--codes: {', '.join(unknown)} not in the codebook ({', '.join(book.code_ids)})")
    level = settings.findings.level if level is None else level
    if not 0.5 < level < 1:
        raise CultureCodeError(f"--level {level}: give a confidence level between 0.5 and 1, e.g. 0.95")
    with open_workspace(settings) as store:
        result = prevalence(
            store,
            codes=chosen,
            by=by,
            level=level,
            model_version=model_version,
            min_labels=settings.findings.min_labels,
        )
    print_result(result, json_out, _show)


def _ci(figure: dict[str, Any]) -> str:
    if figure.get("ci_low") is None:
        return f"{figure['estimate']:.3f} (biased)"
    return f"{figure['estimate']:.3f} [{figure['ci_low']:.3f}, {figure['ci_high']:.3f}]"


def _rows(per_code: dict[str, Any], group: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for code, f in per_code.items():
        row: dict[str, Any] = {"group": group, "code": code}
        if isinstance(f, str):
            row.update(model=f, human="", ppi="", n="", n_eff="")
        else:
            n_eff = f["ppi"]["n_effective"]
            row.update(
                model=_ci(f["model"]),
                human=_ci(f["human"]),
                ppi=_ci(f["ppi"]),
                n=f["human"]["n"],
                n_eff="-" if n_eff is None else f"{n_eff:.0f}",
            )
        rows.append(row)
    return rows


COLUMNS = [
    Column("code"),
    Column("model only", "model"),
    Column("human sample", "human"),
    Column("prediction-powered", "ppi"),
    Column("labels", "n", justify="right"),
    Column("as if labels", "n_eff", justify="right"),
]


def _show(result: dict[str, Any]) -> None:
    pct = f"{result['level']:.0%}"
    streams = ", ".join(f"{k} {v}" for k, v in sorted(result["streams"].items()))
    out.print(
        f"Prevalence ({pct} CIs) on {result['segments']} segments scored by {result['model_version']}; "
        f"{result['labels']} human-labelled segments from the random streams ({streams})."
    )
    if result["unscored_labels"]:
        out.print(f"{result['unscored_labels']} random human-labelled segment(s) have no score: left out.")
    print_table(_rows(result["codes"]), COLUMNS, title="All segments")
    if result["by"]:
        rows = [r for g, per in result["groups"].items() for r in _rows(per, g)]
        sizes = result["group_sizes"]
        print_table(
            rows,
            [Column(result["by"], lambda r: f"{r['group']} ({sizes[r['group']]['segments']} seg.)"), *COLUMNS],
            title=f"By {result['by']}",
        )
        if result["differences"]:
            print_table(
                result["differences"],
                [
                    Column("code"),
                    Column("difference", lambda d: f"{d['groups'][0]} - {d['groups'][1]}"),
                    Column("human sample", lambda d: _ci(d["human"])),
                    Column("prediction-powered", lambda d: _ci(d["ppi"])),
                ],
                title="Group differences",
            )
        _show_errors(result)
    out.print(
        "Model only: the share the model ticks, biased by its errors (no valid interval). Human sample: the random "
        "streams' labels alone. Prediction-powered: both (docs/findings.md). 'as if labels': the human labels a "
        "human-only interval would need to be as narrow."
    )


def _rate(figure: Any) -> str:
    return figure if isinstance(figure, str) else f"{_ci(figure)} (n={figure['n']})"


def _show_errors(result: dict[str, Any]) -> None:
    """The error-bias audit: the model's error rates per group on the random human labels, and their gaps."""
    rows = [
        {"group": g, "code": c, "fpr": _rate(r["false_positive_rate"]), "fnr": _rate(r["false_negative_rate"])}
        for g, per in result["errors"].items()
        for c, r in per.items()
    ]
    if not rows:
        return
    print_table(
        rows,
        [Column(result["by"], "group"), Column("code"), Column("false positive rate", "fpr"),
         Column("false negative rate", "fnr")],
        title="Model errors by group (random human labels)",
    )  # fmt: skip
    flagged = [d for d in result["error_differences"] if d["excludes_zero"]]
    for d in flagged:
        out.print(
            f"[bold]Error bias[/bold]: {d['code']} {d['rate'].replace('_', ' ')} differs, {d['groups'][0]} - "
            f"{d['groups'][1]} = {_ci(d['difference'])}: the model's errors depend on the group."
        )
    if result["error_differences"] and not flagged:
        out.print("No gap in the model's error rates between groups has an interval that excludes 0.")


def register(app: typer.Typer) -> None:
    app.command("findings")(findings_cli)
