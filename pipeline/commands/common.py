"""What every command shares: option types, settings/store loading, error handling, output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from pipeline.config import Settings, load_settings
from pipeline.errors import CultureCodeError
from pipeline.store import Store

out = Console(soft_wrap=True)
if not out.is_terminal:
    out.width = 140  # piped output: room for tables instead of the 80-column default
err = Console(stderr=True)

WorkspaceOpt = Annotated[Path | None, typer.Option(
    "--workspace", "-w", help="Workspace directory (default: 'workspace' in configs/pipeline.yaml).")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Settings file (default: configs/pipeline.yaml).")]
CodebookOpt = Annotated[Path | None, typer.Option(
    "--codebook", help="Codebook YAML (default: the one named in the settings).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts instead of tables.")]

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """User errors become one line on stderr and exit code 2; bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CultureCodeError as exc:
            message = " ".join(str(exc).split())
            print(f"Error: {message}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("Interrupted: nothing from the unfinished step was saved; rerun to resume.", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def settings_for(config: Path | None = None, workspace: Path | None = None, codebook: Path | None = None,
                 **overrides: Any) -> Settings:
    """Settings from the file with flags applied on top (None means 'not given')."""
    extra = {"workspace": str(workspace) if workspace else None,
             "codebook": str(codebook) if codebook else None, **overrides}
    return load_settings(config, extra)


def open_workspace(settings: Settings, create: bool = False) -> Store:
    return Store(Path(settings.workspace), create=create)


LABELLER_KINDS = ("classifier", "llm")


def check_labeller(kind: str) -> str:
    """The value of a `--with` option: which kind of model labels."""
    if kind not in LABELLER_KINDS:
        raise CultureCodeError(f"--with '{kind}': use {' or '.join(LABELLER_KINDS)}")
    return kind


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
