"""Progress bars (rich) for long loops; silent when output is not a terminal or disabled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class Bar:
    """One task of a live rich Progress, or a no-op (`Bar()`) when no bar is shown."""

    def __init__(self, live: tuple[Progress, TaskID] | None = None):
        self._live = live

    def advance(self, n: float = 1) -> None:
        if self._live is not None:
            progress, task = self._live
            progress.advance(task, n)

    def update(self, *, description: str | None = None, total: float | None = None) -> None:
        if self._live is not None:
            progress, task = self._live
            progress.update(task, description=description, total=total)


@contextmanager
def progress_bar(label: str, total: float | None, enabled: bool = True) -> Iterator[Bar]:
    if not enabled or not console.is_terminal:
        yield Bar()
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=True) as progress:
        yield Bar((progress, progress.add_task(label, total=total)))
