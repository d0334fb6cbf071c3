"""What every command shares: option types, settings/store loading, error handling, output.

Only light modules are imported here (typer, rich, the error type): `culturecode --help` loads
this module, and each command imports its stage inside the function that runs it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from pipeline.commands.render import out, print_json, print_result, print_table  # noqa: F401  (re-exported)
from pipeline.errors import MAX_MESSAGE, CultureCodeError, shorten

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.store import Store

err = Console(stderr=True)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace directory (default: 'workspace' in configs/pipeline.yaml)."),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Settings file (default: configs/pipeline.yaml).")
]
CodebookOpt = Annotated[
    Path | None, typer.Option("--codebook", help="Codebook YAML (default: the one named in the settings).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts instead of tables.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
ModelVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--model-version", help="Model version, as `culturecode models list` shows it (default: the current one)."
    ),
]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        help="torch, or onnx for the int8 ONNX Runtime copy (about 1.5x faster). "
        "Default: classifier.runtime in the settings.",
    ),
]

DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto (the GPU when torch sees one), cpu or cuda; mixed precision on a GPU. "
        "Default: the device setting (auto).",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """User errors become one line on stderr and exit code 2; bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CultureCodeError as exc:
            message = shorten(exc, MAX_MESSAGE)  # a value quoted whole somewhere must not flood the terminal
            print(f"Error: {message}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("Interrupted: nothing from the unfinished step was saved; rerun to resume.", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def settings_for(
    config: Path | None = None, workspace: Path | None = None, codebook: Path | None = None, **overrides: Any
) -> Settings:
    """Settings from the file with flags applied on top (None means 'not given')."""
    from pipeline.config import load_settings

    extra = {
        "workspace": str(workspace) if workspace else None,
        "codebook": str(codebook) if codebook else None,
        **overrides,
    }
    settings = load_settings(config, extra)
    folder = Path(settings.workspace)
    if folder.exists() and not folder.is_dir():
        raise CultureCodeError(f"{folder}: is a file, not a workspace folder; give the folder the workspace lives in")
    return settings


def open_workspace(settings: Settings, create: bool = False) -> Store:
    """The workspace's store; a command that writes (`store.lock.is_exclusive`) holds the workspace lock
    until the store closes, so a second writer waits `busy_wait` seconds, then fails "workspace busy"."""
    from pipeline.store import Store
    from pipeline.store.lock import is_exclusive

    command = current_command()
    lock_as = command if is_exclusive(command) else None
    return Store(
        Path(settings.workspace), create=create, backups=settings.backups, lock_as=lock_as, busy_wait=settings.busy_wait
    )


def current_command() -> str | None:
    """The running command without the program name ('push', 'models promote'); None outside the CLI."""
    names: list[str] = []
    ctx = _click_context()
    while ctx is not None and ctx.parent is not None:  # the root's name is the program's, however it was started
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(names) or None


def check_labeller(name: str) -> str:
    """The value of a `--with` option: a labeller installed under the entry-point group
    `culturecode.labellers` (an unknown name is a one-line error listing the installed ones)."""
    from pipeline.labellers.registry import check

    return check(name, "--with")


def old_spelling(old: str, new: str, old_value: Any, value: Any) -> Any:
    """`value`, unless the old spelling `old` of an option was given: then its value, after one line on stderr that
    names the new spelling `new`. Each old spelling is a hidden option kept for one release (issue 24 #4)."""
    if old_value is None or old_value is False:
        return value
    print(f"Note: {old} is now {new}; {old} still works for this release.", file=sys.stderr)
    return old_value


def command_alias(old: str, new: str, fn: F) -> F:
    """`fn` under its old command name `old` (registered hidden): it runs as before after one line on stderr that
    names the new command `new`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        print(
            f"Note: `culturecode {old}` is now `culturecode {new}`; the old name still works for this release.",
            file=sys.stderr,
        )
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def annotator_emails(value: str | None, settings: Settings) -> list[str] | None:
    """A comma-separated `--annotators` list as the stored e-mails: a name becomes NAME@<studio.annotator_domain>
    (as `push` and `annotators add` make it), an e-mail stays as it is."""
    from pipeline.studio.users import annotator_email

    names = split_list(value)
    return [n if "@" in n else annotator_email(n, settings) for n in names] if names else None


def split_list(value: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when empty)."""
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def _click_context() -> Any:
    """The running command's click context (typer >= 0.20 runs on its own copy of click)."""
    import importlib

    for module in ("typer._click.globals", "click"):
        try:
            return importlib.import_module(module).get_current_context(silent=True)
        except ImportError:
            continue
    return None


def check_device(device: str | None) -> str | None:
    """`--device cuda` on a machine without a GPU fails here, before any work starts (torch is imported only
    then; auto and cpu are resolved where the model loads)."""
    from pipeline.device import DEVICES, resolve_device

    if device is None:
        return None
    device = device.strip().lower()
    if device not in DEVICES:
        raise CultureCodeError(f"--device {device}: use {', '.join(DEVICES)}")
    if device == "cuda":
        resolve_device(device)
    return device
