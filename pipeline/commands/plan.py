"""`culturecode reliability` (was `plan`, a twin in name of `llm plan`): how many segments to double-code,
how far the double coding has got, and the next segments for the second coder (`--push` sends them)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    JsonOpt,
    ModelVersionOpt,
    WorkspaceOpt,
    annotator_emails,
    command_alias,
    handle_errors,
    open_workspace,
    out,
    print_result,
    settings_for,
    split_list,
)
from pipeline.commands.render import Column, print_table
from pipeline.errors import CultureCodeError


def _shares(value: str | None) -> dict[str, float]:
    """'mission=0.1,violence=0.02' -> {code: share}."""
    given: dict[str, float] = {}
    for item in split_list(value) or []:
        code, sep, share = item.partition("=")
        try:
            given[code.strip()] = float(share)
        except ValueError:
            raise CultureCodeError(f"--prevalence '{item}': write CODE=SHARE, e.g. violence=0.02") from None
        if not sep:
            raise CultureCodeError(f"--prevalence '{item}': write CODE=SHARE, e.g. violence=0.02")
    return given


@handle_errors
def plan_cli(
    alpha_min: Annotated[float, typer.Option("--alpha-min", help="Smallest acceptable Krippendorff's alpha.")] = 0.8,
    significance: Annotated[
        float, typer.Option("--significance", help="One-tailed significance level of the test alpha >= --alpha-min.")
    ] = 0.05,
    coders: Annotated[
        int,
        typer.Option(
            "--coders", help="Coders per double-coded segment (the two-coder figure is kept for more: it suffices)."
        ),
    ] = 2,
    smallest_share: Annotated[
        float | None,
        typer.Option(
            "--smallest-share",
            help="One variable: the expected share of its least frequent value (0.25 for four equally likely "
            "values); prints the units it needs and reads no workspace.",
        ),
    ] = None,
    prevalence: Annotated[
        str | None,
        typer.Option(
            "--prevalence",
            help="Expected shares of codes, e.g. 'violence=0.02,mission=0.1' (default: the model's predictions).",
        ),
    ] = None,
    min_share: Annotated[
        float,
        typer.Option(
            "--min-share",
            help="Oversample rarer codes (top model scores first) until they are this share of the sample.",
        ),
    ] = 0.1,
    model_version: ModelVersionOpt = None,
    annotators: Annotated[
        str | None,
        typer.Option(
            "--annotators",
            help="Only these annotators' annotations count (comma-separated names or e-mails).",
        ),
    ] = None,
    coder: Annotated[
        str | None,
        typer.Option("--coder", help="The second coder (name or e-mail): their segments are not chosen again."),
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", min=0, help="Choose this many segments (default: what the plan needs).")
    ] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Send the chosen segments (only those) to --coder's Label Studio project.")
    ] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Reliability sampling: which segments to double-code.

    The segments to double-code per code and for the codebook (Bloch and Kraemer's
    formula as Krippendorff 2019 applies it), each code's alpha so far with its bootstrap CI, how many more
    double-coded segments its lower bound needs, a stop rule, and the next segments for the second coder.
    """
    from pipeline.agreement.planner import Target, record_plan, reliability_plan, single_variable

    target = Target(alpha_min, significance, coders)
    if smallest_share is not None:
        if push or prevalence:
            raise CultureCodeError("--smallest-share plans one variable; drop --push and --prevalence with it")
        print_result(single_variable(target, smallest_share), json_out, _show_units)
        return
    if push and not coder:
        raise CultureCodeError("--push needs --coder NAME: the second coder whose project gets the sample")
    settings = settings_for(config, workspace, codebook)
    book = settings.load_codebook()
    with open_workspace(settings) as store:
        email = _email(coder, settings) if coder else None
        plan = reliability_plan(
            store,
            book,
            target,
            _shares(prevalence),
            model_version,
            min_share,
            annotator_emails(annotators, settings),
            email,
            size,
            settings.agreement.bootstrap,
            settings.agreement.seed,
        )
        if push:
            from pipeline.flows import push_reliability_sample

            plan.pushed = push_reliability_sample(store, settings, book, plan, not json_out)
        record_plan(store, plan)
    print_result(plan, json_out, _show_plan)


def _email(coder: str, settings: Any) -> str:
    from pipeline.studio.users import annotator_email

    return annotator_email(coder, settings)


def _show_units(data: dict[str, Any]) -> None:
    out.print(
        f"{data['units']} units to double-code for alpha >= {data['alpha_min']:.3f} at p = {data['significance']:g} "
        f"(one-tailed z {data['z']:.3f}) when the least frequent value's share is {data['smallest_share']:g} "
        f"({data['coders']} coders; Bloch and Kraemer's formula as Krippendorff 2019 applies it).",
        highlight=False,
    )


def _num(value: Any, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


BEFORE_COLUMNS = [
    Column("code"),
    Column("expected share", "share", fmt=".3f", justify="right"),
    Column("from", "source"),
    Column("units", justify="right"),
    Column("oversampled", "units_oversampled", justify="right"),
    Column("note", "reason", overflow="fold"),
]
DURING_COLUMNS = [
    Column("code"),
    Column("double-coded", "double_coded", justify="right"),
    Column("share", fmt=".3f", justify="right"),
    Column("α", "alpha", fmt=".3f", justify="right"),
    Column("α 95% CI", "ci", fmt=lambda ci: f"{ci[0]:.3f}–{ci[1]:.3f}", justify="right"),
    Column("lower bound", "lower_bound", fmt=".3f", justify="right"),
    Column("planned", justify="right"),
    Column("more", "more_needed", justify="right"),
    Column("status"),
]


def _show_plan(plan: dict[str, Any]) -> None:
    t = plan["target"]
    goal = f"alpha >= {t['alpha_min']:.3f} at p = {t['significance']:g}, {t['coders']} coders"
    print_table(plan["codes"], BEFORE_COLUMNS, title=f"Segments to double-code per code ({goal})")
    source = f"expected shares from {plan['model_version']}" if plan["model_version"] else "given expected shares"
    if plan["units"] is None:
        out.print("Whole codebook: unknown until codes have an expected share (pre-label, or --prevalence).")
    else:
        out.print(
            f"Whole codebook: {plan['units']} segment(s), rare codes oversampled "
            f"(random sampling: {_num(plan['units_random_sampling'], 'd')}); {plan['segments']} in the workspace; "
            f"{source}.",
            highlight=False,
        )
    if plan["progress"]:
        caption = f"lower bound: one-sided at p = {t['significance']:g}; planned: the formula at the observed share"
        print_table(plan["progress"], DURING_COLUMNS, title="Double-coded so far", caption=caption)
        for row in plan["progress"]:
            if row["reason"]:
                out.print(f"[yellow]{row['code']}[/]: {row['reason']}", highlight=False)
    out.print(plan["stop_reason"].capitalize() + ".", highlight=False)
    _show_selection(plan)


def _show_selection(plan: dict[str, Any]) -> None:
    sel = plan["selection"]
    if sel is None or not sel["segment_ids"]:
        return
    who = f" for {plan['coder']}" if plan["coder"] else ""
    extra = ", ".join(f"{code} {n}" for code, n in sel["oversampled"].items() if n)
    out.print(
        f"Chose {len(sel['segment_ids'])} of {sel['candidates']} candidate segment(s){who}"
        + (f"; by high model score for rare codes: {extra}" if extra else "")
        + (f"; the plan asks for {sel['wanted']}: ingest more transcripts" if sel["wanted"] > sel["candidates"] else "")
        + ".",
        highlight=False,
    )
    pushed = plan["pushed"]
    if pushed:
        ids = ", ".join(str(p["id"]) for p in pushed["projects"])
        out.print(f"Pushed them to project {ids} on {pushed['url']} ({pushed['imported']} new task(s)).")
    elif plan["coder"]:
        out.print("Send them with --push.")


def register(app: typer.Typer) -> None:
    app.command("reliability")(plan_cli)
    app.command("plan", hidden=True)(command_alias("plan", "reliability", plan_cli))
