"""Progress bars and one-line stage summaries (rich)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# emoji off: ":X:" in a path or an import path (mypkg.tasks:X: ...) is text, not an emoji code
console = Console(highlight=False, soft_wrap=True, emoji=False)
errors = Console(highlight=False, soft_wrap=True, stderr=True, emoji=False)  # a command's one-line errors
# Live bars redraw their terminal lines: off in worker processes (dcsft.workers), whose
# siblings print to the same terminal; their one-line summaries still show.
live_bars = True


def quiet_libraries() -> None:
    """Our own progress bars and summaries replace the libraries' per-call bars and notices."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar; yields `advance(n)`. Quiet when output is not a terminal."""
    columns = (
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    live = live_bars and console.is_terminal
    with Progress(*columns, console=console, transient=True, disable=not live) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def summary(stage: str, what: str, seconds: float, where: str) -> None:
    console.print(f"[bold green]{stage:>10}[/] {what} [dim]({seconds:.1f} s, {where})[/]")


def skipped(stage: str, where: str) -> None:
    console.print(f"[bold cyan]{stage:>10}[/] already complete, skipped [dim]({where})[/]")


def warn(line: str) -> None:
    console.print(f"[yellow]warning:[/] {line}")
