"""Label Studio commands: studio start|status|stop, annotators add, push, pull.

`pipeline.studio` (label_studio_sdk, httpx) is imported inside each command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    WorkspaceOpt,
    handle_errors,
    open_workspace,
    out,
    print_result,
    settings_for,
    split_list,
)
from pipeline.commands.render import print_table

studio_app = typer.Typer(help="Run the embedded Label Studio (or check a team server).", no_args_is_help=True)
annotators_app = typer.Typer(help="Annotator accounts in Label Studio.", no_args_is_help=True)

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="A team Label Studio server (key from $LABEL_STUDIO_API_KEY or studio.api_key_file); "
        "default: the workspace's embedded server.",
    ),
]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port of the embedded server (default 8089).")]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Keep Label Studio's data in PostgreSQL: postgresql://user@host:5432/dbname (password from "
        "$PGPASSWORD or ~/.pgpass, or in the URL; never printed). Default: studio.database, else SQLite.",
    ),
]


def _settings(config, workspace, codebook=None, url=None, port=None):
    return settings_for(config, workspace, codebook, **{"studio.url": url, "studio.port": port})


@studio_app.command("start")
@handle_errors
def start_cli(
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    port: PortOpt = None,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start the workspace's Label Studio (or find the running one).

    Starts Label Studio on 127.0.0.1 with its data in <workspace>/studio (telemetry off, signup
    closed, admin and API token created without prompts), or in PostgreSQL with --database.
    A second start finds the running one.
    """
    from pipeline.studio import server, start_server

    settings = settings_for(config, workspace, None, **{"studio.port": port, "studio.database": database})
    info = start_server(settings)
    creds = server.credentials(settings)
    assert creds is not None  # start_server writes them before the server starts
    creds_file = server.data_dir(settings) / server.CREDENTIALS
    # the password is printed once (the first start shown as text), then only the file that keeps it
    password = None if json_out or server.password_shown(settings) else creds["password"]
    report = {**info.as_dict(), "credentials_file": str(creds_file), "model_server": None}
    if settings.loop.start_with_studio:
        from pipeline.loop.process import start_background_server

        report["model_server"] = start_background_server(settings, config).as_dict()
    print_result(report, json_out, lambda r: _show_start(r, creds["username"], password))
    if password is not None:
        server.mark_password_shown(settings)


def _show_start(info: dict[str, Any], username: str, password: str | None) -> None:
    verb = "Started" if info["started"] else "Already running:"
    where = f"data in {info['data_dir']}" if info["database"] == "sqlite" else f"database {info['database']}"
    out.print(f"{verb} Label Studio at [bold]{info['url']}[/] (pid {info['pid']}, {where})", highlight=False)
    secret = (
        f"with password [bold]{password}[/] (shown this once; kept in {info['credentials_file']}, mode 600)"
        if password is not None
        else f"with the password kept in {info['credentials_file']} (mode 600)"
    )
    out.print(
        f"Log in as [bold]{username}[/] {secret}. Add annotators with `culturecode annotators add NAME...`.",
        highlight=False,
    )
    if info.get("model_server"):
        served = info["model_server"]
        verb = f"Started (pid {served['pid']})" if served["started"] else "Already running:"
        out.print(f"{verb} the model server at {served['url']} (loop.start_with_studio; log {served['log']}).")


@studio_app.command("status")
@handle_errors
def status_cli(
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    port: PortOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Whether Label Studio is up, with its task and annotation counts.

    Per project, the counts Label Studio reports.
    """
    from pipeline.store import DB_NAME
    from pipeline.studio import studio_status

    settings = _settings(config, workspace, url=url, port=port)
    if (Path(settings.workspace) / DB_NAME).exists():
        with open_workspace(settings) as store:
            report = studio_status(settings, store)
    else:
        report = studio_status(settings)
    print_result(report, json_out, _show_studio_status)


def _show_studio_status(report: dict[str, Any]) -> None:
    state = "[green]running[/]" if report["running"] else "[red]not running[/]"
    database = f" (database: {report['database']})" if report.get("database") else ""
    out.print(f"Label Studio at {report['url']}: {state}{database}", highlight=False)
    if report["projects"]:
        print_table(report["projects"], ["id", "title", "tasks", "annotations"])
    elif not report["running"]:
        out.print("Start it with `culturecode studio start`.")


@studio_app.command("stop")
@handle_errors
def stop_cli(workspace: WorkspaceOpt = None, config: ConfigOpt = None, port: PortOpt = None) -> None:
    """Stop the workspace's Label Studio and the model server it started.

    Stops the embedded Label Studio (its data stays in <workspace>/studio), and the model server
    `studio start` started with it (loop.start_with_studio).
    """
    from pipeline.loop.process import stop_background_server
    from pipeline.studio import stop_server

    settings = _settings(config, workspace, port=port)
    if stop_background_server(settings):
        out.print("Stopped the model server.")
    stopped = stop_server(settings)
    out.print("Stopped Label Studio." if stopped else "Label Studio was not running.")


@annotators_app.command("add")
@handle_errors
def annotators_add_cli(
    names: Annotated[
        list[str], typer.Argument(help="Annotator names (become NAME@<studio.annotator_domain>) or emails.")
    ],
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    port: PortOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create Label Studio accounts for annotators; print how each logs in."""
    from pipeline.studio import add_annotators, connect

    settings = _settings(config, workspace, url=url, port=port)
    made = add_annotators(connect(settings), settings, names)
    print_result(made, json_out, _show_annotators)


def _show_annotators(made: list[dict[str, Any]]) -> None:
    for a in made:
        if a["created"]:
            out.print(
                f"{a['name']}: log in at {a['login_url']} as [bold]{a['email']}[/] with password "
                f"[bold]{a['password']}[/]",
                highlight=False,
            )
        else:
            out.print(f"{a['name']}: {a['email']} already has an account (log in at {a['login_url']})", highlight=False)
    out.print(
        "Then `culturecode push --annotators "
        + ",".join(a["name"] for a in made)
        + "` gives each one their own project.",
        highlight=False,
    )


@handle_errors
def push_cli(
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    url: UrlOpt = None,
    port: PortOpt = None,
    annotators: Annotated[
        str | None,
        typer.Option(
            "--annotators",
            "-a",
            help="Comma-separated annotators; each gets their own project over the same segments "
            "(independent coding on Community edition). Default: the workspace's existing "
            "projects, or one shared project.",
        ),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(
            "--model-version",
            help="Pre-label with this model version's predictions (default: the current "
            "classifier; with none, the current LLM labels).",
        ),
    ] = None,
    with_: Annotated[
        str | None,
        typer.Option(
            "--with",
            help="A labeller (classifier, llm, llm-local, llm-openai or a plugin's): pre-label with the current "
            "version of its kind. With llm, annotators "
            "see the LLM's one-sentence reason beside its pre-selected codes; Label Studio pre-selects "
            "one model version per project, so segments the LLM has not labelled show none.",
        ),
    ] = None,
    update_config: Annotated[
        bool,
        typer.Option("--update-config", help="Apply a changed codebook to existing projects (annotations are kept)."),
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Tasks per import request (default 1000).")
    ] = None,
    blind_fraction: Annotated[
        float | None,
        typer.Option(
            "--blind-fraction",
            min=0.0,
            max=1.0,
            help="Share of segments every annotator codes with no pre-labels and no model text (the anchoring "
            "check in `culturecode agreement`); the same stable subset on every push. Default: the fraction "
            "last pushed (setting studio.blind_fraction), 0 at first.",
        ),
    ] = None,
    audit_fraction: Annotated[
        float | None,
        typer.Option(
            "--audit-fraction",
            min=0.0,
            max=1.0,
            help="Share of segments in the audit stream: a stable uniformly random sample coded with pre-labels, "
            "spread through the label stream at random places, so model figures need not rest on the model's own "
            "choice. Independent of the blind subset (a segment drawn for both goes blind). Default: the fraction "
            "last pushed (setting studio.audit_fraction), 0 at first.",
        ),
    ] = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Send segments and their pre-labels to Label Studio.

    Creates or updates the Label Studio project(s) and imports segments with pre-labels. Rerunning
    creates no duplicates; tasks nobody annotated yet get a newer model's predictions.

    Only the codes that pass admission (`culturecode admission`, measured again first) are
    pre-ticked; the model's other suggestions appear under the choices as an unticked hint.
    With --blind-fraction, a stable random subset of segments goes to every annotator blind; with
    --audit-fraction another goes pre-labelled; both sit at random places through each annotator's stream.
    """
    from pipeline.flows import push_to_studio

    overrides = {
        "studio.url": url,
        "studio.port": port,
        "studio.batch_size": batch_size,
        "studio.blind_fraction": blind_fraction,
        "studio.audit_fraction": audit_fraction,
    }
    settings = settings_for(config, workspace, codebook, **overrides)
    book = settings.load_codebook()
    with open_workspace(settings) as store:
        result = push_to_studio(
            store,
            settings,
            book,
            annotators=split_list(annotators),
            model_version=model_version,
            labeller=with_,
            update_config=update_config,
            show_progress=not quiet,
        )
    print_result(result.push, json_out, _show_push)
    if result.connected and not json_out:
        out.print(result.connected, highlight=False)


def _project_notes(p: dict[str, Any]) -> list[str]:
    """What else happened to one project in a push, a few words each (only what did happen)."""
    return [
        n
        for n, on in (
            ("new project", p["created"] and not p["recreated"]),
            ("re-created: it was deleted on the server", p["recreated"]),
            ("labeling config updated", p["config_updated"]),
            (f"{p.get('blind')} blind task(s)", p.get("blind")),
            (f"{p.get('audit')} audit task(s)", p.get("audit")),
            (f"{p.get('reordered')} unannotated task(s) given a new place in the stream", p.get("reordered")),
            (f"pre-labels removed from {p.get('blind_stripped')} blind task(s)", p.get("blind_stripped")),
            (
                f"WARNING: {p.get('blind_exposed')} blind task(s) were annotated while showing pre-labels; "
                "they count as assisted, not blind",
                p.get("blind_exposed"),
            ),
            (
                f"tab(s) {', '.join(map(str, p.get('tabs_kept') or []))} keep the order someone chose by hand, "
                "not the model's (studio.sampling)",
                p.get("tabs_kept"),
            ),
        )
        if on
    ]


def _show_push(report: dict[str, Any]) -> None:
    version = report["model_version"] or "none (no predictions: run `culturecode prelabel` for pre-labels)"
    url = report["url"]
    out.print(f"Pushed {report['segments']} segment(s) to {url}, pre-labels from model {version}.", highlight=False)
    gate = report.get("admission") or {}
    if report["model_version"] and gate.get("enabled"):
        ticked = ", ".join(gate["admitted"]) or "none"
        out.print(
            f"  Pre-ticked (admitted) codes: {ticked}; other suggested codes are shown as an unticked hint "
            "(`culturecode admission` says why).",
            highlight=False,
        )
    if report.get("blind_fraction"):
        out.print(
            f"  Blind subset ({report['blind_fraction']:.0%} of segments): {report['blind_segments']} pushed "
            "segment(s) go to every annotator with no pre-labels (the anchoring check in `culturecode agreement`).",
            highlight=False,
        )
    if report.get("audit_fraction"):
        out.print(
            f"  Audit stream ({report['audit_fraction']:.0%} drawn, blind ones excepted): {report['audit_segments']} "
            "pushed segment(s) chosen at random, with pre-labels.",
            highlight=False,
        )
    if report.get("order_rule"):
        out.print(
            f"  Order: {report['order_rule']}; the rest follow studio.sampling ({report.get('sampling')}).",
            highlight=False,
        )
    for p in report["projects"]:
        notes = _project_notes(p)
        extra = f" ({'; '.join(notes)})" if notes else ""
        out.print(
            f"  project {p['id']} '{p['title']}': {p['imported']} imported, {p['tasks']} task(s), "
            f"{p['predictions_updated']} pre-label(s) updated, {p['duplicates_removed']} duplicate(s) removed"
            f"{extra}  {url}/projects/{p['id']}",
            highlight=False,
        )


@handle_errors
def pull_cli(
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    url: UrlOpt = None,
    port: PortOpt = None,
    full: Annotated[
        bool, typer.Option("--full", help="Export every project whole instead of only the tasks changed since.")
    ] = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Fetch the annotations changed since the last pull.

    Fetches the annotations created, edited, deleted or skipped since the last pull (with lead time)
    into the workspace and prints what changed; tasks deleted or duplicated on the server are listed.

    Only the tasks Label Studio stamped as changed since the last pull are exported; a project's first
    pull, or --full, exports it whole. Once the project has enough human labels
    (classifier.calibration_min_labels), the current classifier's thresholds are re-tuned on them and the
    pre-labels of unannotated tasks refreshed (as `culturecode calibrate`).
    """
    from pipeline.flows import pull_and_calibrate

    settings = _settings(config, workspace, codebook, url=url, port=port)
    book = settings.load_codebook()
    with open_workspace(settings) as store:
        report = pull_and_calibrate(store, settings, book, show_progress=not quiet, full=full)
    print_result(report, json_out, _show_pull)


def _show_pull(report: dict[str, Any]) -> None:
    how = "whole" if report["full"] else "changes only"
    out.print(
        f"Pulled {report['projects']} project(s) from {report['url']} ({how}, {report['fetched_tasks']} task(s) "
        f"fetched): {report['new']} new, {report['updated']} edited, {report['deleted']} deleted, "
        f"{report['skipped']} skipped, {report['unchanged']} unchanged.",
        highlight=False,
    )
    for task in report["deleted_tasks"]:
        out.print(
            f"  task {task['task_id']} of project {task['project_id']} was deleted on the server "
            f"(segment {str(task['segment_id'])[:12]}, {task['annotations']} annotation(s) marked deleted)",
            highlight=False,
        )
    for who, n in sorted(report["per_annotator"].items()):
        out.print(f"  {who}: {n} new or changed", highlight=False)
    _show_superseded_annotations(report["superseded"], report["unknown_segment"])
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)
    calibration = report.get("calibration") or {}
    if calibration.get("status") in ("calibrated", "unchanged"):
        out.print(f"Calibration: {calibration['message']}", highlight=False)
    for warning in calibration.get("warnings", []):
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _show_superseded_annotations(superseded: list[dict[str, Any]], unknown: list[dict[str, Any]]) -> None:
    if superseded:
        carried = sum(1 for a in superseded if a["carried_to"])
        changed = sum(1 for a in superseded if a["changed"])
        out.print(
            f"[yellow]{len(superseded)} annotation(s) are on segments a re-ingest superseded[/] ({changed} new or "
            f"edited): {carried} count on the edited text they were carried to, {len(superseded) - carried} count "
            f"nowhere but are kept; see `culturecode segments --superseded`",
            highlight=False,
        )
        for a in [a for a in superseded if a["changed"]][:10]:
            where = f"carried to {a['carried_to'][:8]}" if a["carried_to"] else "kept on the old text"
            out.print(
                f"  annotation {a['annotation_id']} by {a['annotator']} (project {a['project_id']}, task "
                f"{a['task_id']}): segment {str(a['segment_id'])[:8]}, {where}",
                highlight=False,
            )
    if unknown:
        out.print(
            f"[yellow]warning:[/] {len(unknown)} annotation(s) are on tasks whose segment is not in the workspace "
            f"(deleted by an older culturecode's re-ingest); they stay in Label Studio only (--json lists them)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(studio_app, name="studio")
    app.add_typer(annotators_app, name="annotators")
    app.command("push")(push_cli)
    app.command("pull")(pull_cli)
