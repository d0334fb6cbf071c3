"""Progress bars (rich) for long loops; silent when output is not a terminal or disabled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True)


class Bar:
    def __init__(self, progress: Progress | None, task_id: int | None):
        self._progress, self._task = progress, task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update(self, **fields: object) -> None:
        if self._progress is not None:
            self._progress.update(self._task, **fields)


@contextmanager
def progress_bar(label: str, total: float | None, enabled: bool = True) -> Iterator[Bar]:
    if not enabled or not console.is_terminal:
        yield Bar(None, None)
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        yield Bar(progress, progress.add_task(label, total=total))
