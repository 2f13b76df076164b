"""Progress bars and one-line stage summaries (rich)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(highlight=False, soft_wrap=True)
errors = Console(highlight=False, soft_wrap=True, stderr=True)  # a command's one-line errors go to stderr


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar; yields `advance(n)`. Quiet when output is not a terminal."""
    columns = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def summary(stage: str, what: str, seconds: float, where: str) -> None:
    console.print(f"[bold green]{stage:>10}[/] {what} [dim]({seconds:.1f} s, {where})[/]")


def skipped(stage: str, where: str) -> None:
    console.print(f"[bold cyan]{stage:>10}[/] already complete, skipped [dim]({where})[/]")


def warn(line: str) -> None:
    console.print(f"[yellow]warning:[/] {line}")
