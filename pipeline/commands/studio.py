"""Label Studio commands: studio start|status|stop, annotators add, push, pull."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipeline.commands.common import (CodebookOpt, ConfigOpt, JsonOpt, WorkspaceOpt, check_labeller, handle_errors,
                                      open_workspace, out, print_json, settings_for)
from pipeline import studio as ls
from pipeline.errors import CultureCodeError
from pipeline.status import current_model
from pipeline.store import DB_NAME, Store

studio_app = typer.Typer(help="Run the embedded Label Studio (or check a team server).", no_args_is_help=True)
annotators_app = typer.Typer(help="Annotator accounts in Label Studio.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(
    "--url", help="A team Label Studio server (key from $LABEL_STUDIO_API_KEY or studio.api_key_file); "
                  "default: the workspace's embedded server.")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port of the embedded server (default 8089).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _settings(config, workspace, codebook=None, url=None, port=None):
    return settings_for(config, workspace, codebook, **{"studio.url": url, "studio.port": port})


@studio_app.command("start")
@handle_errors
def start_cli(workspace: WorkspaceOpt = None, config: ConfigOpt = None, port: PortOpt = None,
              json_out: JsonOpt = False) -> None:
    """Start Label Studio on 127.0.0.1 with its data in <workspace>/studio (telemetry off, signup
    closed, admin and API token created without prompts). A second start finds the running one."""
    settings = _settings(config, workspace, port=port)
    info = ls.start_server(settings)
    creds = ls.server.credentials(settings)
    if json_out:
        print_json({**info.as_dict(), "credentials_file": str(ls.server.data_dir(settings) / ls.server.CREDENTIALS)})
        return
    verb = "Started" if info.started else "Already running:"
    out.print(f"{verb} Label Studio at [bold]{info.url}[/] (pid {info.pid}, data in {info.data_dir})")
    out.print(f"Log in as [bold]{creds['username']}[/] with password [bold]{creds['password']}[/] "
              f"(kept in {ls.server.data_dir(settings) / ls.server.CREDENTIALS}, mode 600). "
              f"Add annotators with `culturecode annotators add NAME...`.", highlight=False)


@studio_app.command("status")
@handle_errors
def status_cli(workspace: WorkspaceOpt = None, config: ConfigOpt = None, url: UrlOpt = None,
               port: PortOpt = None, json_out: JsonOpt = False) -> None:
    """Whether Label Studio is up, and per project the task and annotation counts it reports."""
    settings = _settings(config, workspace, url=url, port=port)
    has_ws = (Path(settings.workspace) / DB_NAME).exists()
    if has_ws:
        with open_workspace(settings) as store:
            report = ls.studio_status(settings, store)
    else:
        report = ls.studio_status(settings)
    if json_out:
        print_json(report)
        return
    state = "[green]running[/]" if report["running"] else "[red]not running[/]"
    out.print(f"Label Studio at {report['url']}: {state}")
    if report["projects"]:
        table = Table()
        for col in ("id", "title", "tasks", "annotations"):
            table.add_column(col)
        for p in report["projects"]:
            table.add_row(str(p["id"]), p["title"], str(p["tasks"]), str(p["annotations"]))
        out.print(table)
    elif not report["running"]:
        out.print("Start it with `culturecode studio start`.")


@studio_app.command("stop")
@handle_errors
def stop_cli(workspace: WorkspaceOpt = None, config: ConfigOpt = None, port: PortOpt = None) -> None:
    """Stop the workspace's embedded Label Studio (its data stays in <workspace>/studio)."""
    settings = _settings(config, workspace, port=port)
    stopped = ls.stop_server(settings)
    out.print("Stopped Label Studio." if stopped else "Label Studio was not running.")


@annotators_app.command("add")
@handle_errors
def annotators_add_cli(
    names: Annotated[list[str], typer.Argument(help="Annotator names (become NAME@<studio.annotator_domain>) or emails.")],
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, url: UrlOpt = None, port: PortOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create Label Studio accounts for annotators and print how each logs in."""
    settings = _settings(config, workspace, url=url, port=port)
    made = ls.add_annotators(ls.connect(settings), settings, names)
    if json_out:
        print_json([a.__dict__ for a in made])
        return
    for a in made:
        if a.created:
            out.print(f"{a.name}: log in at {a.login_url} as [bold]{a.email}[/] with password [bold]{a.password}[/]",
                      highlight=False)
        else:
            out.print(f"{a.name}: {a.email} already has an account (log in at {a.login_url})", highlight=False)
    out.print("Then `culturecode push --annotators " + ",".join(a.name for a in made)
              + "` gives each one their own project.", highlight=False)


def _current_of_kind(store: Store, kind: str) -> str:
    version = current_model(store, check_labeller(kind))
    if version is None:
        how = "culturecode llm label" if kind == "llm" else "culturecode train --gold examples/gold/"
        raise CultureCodeError(f"no {kind} labels in {store.workspace}: run `{how}` first")
    return version


def _names(value: str | None) -> list[str] | None:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


@handle_errors
def push_cli(
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
    url: UrlOpt = None, port: PortOpt = None,
    annotators: Annotated[str | None, typer.Option("--annotators", "-a", help="Comma-separated annotators; each gets their own project over the same segments (independent coding on Community edition). Default: the workspace's existing projects, or one shared project.")] = None,
    model_version: Annotated[str | None, typer.Option("--model-version", help="Pre-label with this model version's predictions (default: the current classifier; with none, the current LLM labels).")] = None,
    with_: Annotated[str | None, typer.Option("--with", help="classifier or llm: pre-label with the current version of that kind. With llm, annotators see the LLM's one-sentence reason beside its pre-selected codes; Label Studio pre-selects one model version per project, so segments the LLM has not labelled show none.")] = None,
    update_config: Annotated[bool, typer.Option("--update-config", help="Apply a changed codebook to existing projects (annotations are kept).")] = False,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Tasks per import request (default 1000).")] = None,
    quiet: QuietOpt = False, json_out: JsonOpt = False,
) -> None:
    """Create or update the Label Studio project(s) and import segments with pre-labels. Rerunning
    creates no duplicates; tasks nobody annotated yet get a newer model's predictions."""
    settings = settings_for(config, workspace, codebook, **{"studio.url": url, "studio.port": port,
                                                            "studio.batch_size": batch_size})
    book = settings.load_codebook()
    with open_workspace(settings) as store:
        if with_ is not None:
            model_version = model_version or _current_of_kind(store, with_)
        report = ls.push(store, settings, book, annotators=_names(annotators), model_version=model_version,
                         update_config=update_config, show_progress=not quiet)
    if json_out:
        print_json(report.as_dict())
        return
    version = report.model_version or "none (no predictions: run `culturecode prelabel` for pre-labels)"
    out.print(f"Pushed {report.segments} segment(s) to {report.url}, pre-labels from model {version}.", highlight=False)
    for p in report.projects:
        notes = [n for n, on in (("new project", p.created and not p.recreated),
                                 ("re-created: it was deleted on the server", p.recreated),
                                 ("labeling config updated", p.config_updated)) if on]
        extra = f" ({'; '.join(notes)})" if notes else ""
        out.print(f"  project {p.id} '{p.title}': {p.imported} imported, {p.tasks} task(s), "
                  f"{p.predictions_updated} pre-label(s) updated, {p.duplicates_removed} duplicate(s) removed"
                  f"{extra}  {report.url}/projects/{p.id}", highlight=False)


@handle_errors
def pull_cli(
    workspace: WorkspaceOpt = None, config: ConfigOpt = None, codebook: CodebookOpt = None,
    url: UrlOpt = None, port: PortOpt = None, quiet: QuietOpt = False, json_out: JsonOpt = False,
) -> None:
    """Fetch every annotation (edited, deleted, skipped, with lead time) into the workspace and
    print what changed since the last pull."""
    settings = _settings(config, workspace, codebook, url=url, port=port)
    book = settings.load_codebook()
    with open_workspace(settings) as store:
        report = ls.pull(store, settings, book, show_progress=not quiet)
    if json_out:
        print_json(report.as_dict())
        return
    out.print(f"Pulled {report.projects} project(s) from {report.url}: {report.new} new, {report.updated} "
              f"edited, {report.deleted} deleted, {report.skipped} skipped, {report.unchanged} unchanged.",
              highlight=False)
    for who, n in sorted(report.per_annotator.items()):
        out.print(f"  {who}: {n} new or changed", highlight=False)
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(studio_app, name="studio")
    app.add_typer(annotators_app, name="annotators")
    app.command("push")(push_cli)
    app.command("pull")(pull_cli)
