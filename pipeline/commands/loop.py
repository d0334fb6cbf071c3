"""The live loop: `culturecode serve` (the model server Label Studio calls) and `culturecode loop status`.

`pipeline.loop` (and through it the classifier and label_studio_sdk) is imported inside each command.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from pipeline.commands.common import (
    CodebookOpt,
    ConfigOpt,
    JsonOpt,
    WorkspaceOpt,
    handle_errors,
    out,
    print_result,
    settings_for,
)
from pipeline.commands.render import print_table

loop_app = typer.Typer(help="The live loop: what `serve` has trained and counted.", no_args_is_help=True)


@handle_errors
def serve_cli(
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    codebook: CodebookOpt = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port of the model server (default: loop.port, 9090).")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default: loop.host, 127.0.0.1: this machine only).")
    ] = None,
    every: Annotated[
        int | None,
        typer.Option("--every", help="Retrain after this many new, edited or deleted annotations (default 20)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="A team Label Studio server (default: the workspace's embedded server)."),
    ] = None,
    no_connect: Annotated[
        bool, typer.Option("--no-connect", help="Do not register the server and its webhook on the projects.")
    ] = False,
) -> None:
    """Serve the model to Label Studio; retrain as annotators work.

    Serves the workspace's model to Label Studio (its ML-backend protocol: /health, /setup, /predict,
    /webhook) and retrains as annotators work: after every N annotations (debounced, one retrain at a
    time, in the background) pull -> adjudicate -> train (head method) -> promote only if better on
    held-out documents -> re-score and push the tasks nobody annotated. Connects itself to every
    culturecode project of the workspace. Ctrl-C stops.
    """
    from pipeline.loop.service import start_loop

    settings = settings_for(
        config, workspace, codebook, **{"loop.host": host, "loop.port": port, "loop.every": every, "studio.url": url}
    )
    running = start_loop(
        settings, settings.load_codebook(), port=port, connect=not no_connect, on_retrain=_show_retrain
    )
    _show_started(running.as_dict(), settings.loop.method)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.close()
    out.print("Model server stopped; the annotation count is kept in the workspace.", highlight=False)


def _show_started(info: dict[str, Any], method: str) -> None:
    out.print(f"Model server at [bold]{info['url']}[/] (Label Studio's ML-backend protocol).", highlight=False)
    for c in info["connections"]:
        what = "connected" if c["backend_created"] else "already connected"
        out.print(f"  project {c['project_id']}: {what} (ML backend {c['ml_backend_id']}, webhook {c['webhook_id']})")
    out.print(
        f"Retrains ({method} method) after every {info['every']} annotations; {info['pending']} counted so far. "
        "Ctrl-C stops.",
        highlight=False,
    )


def _show_retrain(record: dict[str, Any]) -> None:
    if record.get("error"):
        out.print(f"[red]retrain failed:[/] {record['error']}", highlight=False)
    else:
        out.print(
            f"retrain after {record.get('annotations', 0)} annotation(s): {record.get('message', '')}", highlight=False
        )


@loop_app.command("status")
@handle_errors
def status_cli(
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Model versions and the count toward the next retrain.

    Model versions (when each was trained, on how many labels, its held-out macro F1), the model server's
    annotation count toward the next retrain, and what the last retrains did.
    """
    from pipeline.commands.common import open_workspace
    from pipeline.loop.status import loop_status

    settings = settings_for(config, workspace)
    with open_workspace(settings) as store:
        report = loop_status(store, settings)
    print_result(report, json_out, _show_status)


def _show_status(report: dict[str, Any]) -> None:
    server = report["server"]
    state = "[green]up[/]" if server["up"] else "[red]not running[/] (`culturecode serve`)"
    out.print(f"Model server at {server['url']}: {state}", highlight=False)
    out.print(
        f"{report['pending']} of {report['every']} annotations toward the next retrain; "
        f"{report['retrains']} retrain(s) so far" + (" (one running)" if report["in_retrain"] else "") + ".",
        highlight=False,
    )
    rows = [{**v, "current": "*" if v["current"] else ""} for v in report["versions"]]
    if rows:
        print_table(rows, ["version", "current", "trained_at", "method", "labels", "macro_f1", "micro_f1"])
    else:
        out.print("No classifier yet: `culturecode train --gold examples/gold/`.")
    for h in report["history"][-5:]:
        line = h.get("error") or h.get("message") or ""
        out.print(
            f"  {h.get('finished_at', '?')}: after {h.get('annotations', 0)} annotation(s): {line}", highlight=False
        )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cli)
    app.add_typer(loop_app, name="loop")
