"""Every error type dcsft raises, and how a command ends: a known problem is one line on stderr
and exit code 2, never a traceback.

Known problems are a bad config (ConfigError), a stage that cannot run (StageError), an unusable
data file (DataError), a run directory held by another dcsft (RunDirBusy), and the operating
system's refusals (a full disk, a read-only folder). Finished work stays on disk in every case.
This module imports nothing of dcsft but the console, so every module can raise its errors.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.markup import escape

from dcsft.console import console, errors

USAGE = 2  # exit code of a known problem
INTERRUPTED = 130


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message is one line for the user."""


class DataError(ValueError):
    """A data file that cannot be used at all; the message is one line naming the file."""


class StageError(RuntimeError):
    """A stage cannot run; the message is one line telling the user what to do."""


class RunDirBusy(RuntimeError):
    """Another live process is writing to the run directory."""


class ExactUnsupported(ValueError):
    """The model's generation config changes sampling in a way `profile.method=exact` does not model
    (caught by profiling, which turns it into a StageError)."""


class AlreadyReported(Exception):
    """A problem whose one line was already printed (by a worker process); only its exit code is left."""

    def __init__(self, code: int):
        super().__init__(f"exit code {code}")
        self.code = code


def run_guarded(action: Callable[[], None]) -> int:
    """Run `action`; its exit code: 0, or USAGE after printing a known problem's one line."""
    try:
        action()
    except AlreadyReported as err:
        return err.code
    except (ConfigError, StageError, DataError, RunDirBusy) as err:
        # escaped: messages quote [x1, y1, x2, y2] and the like, which rich would read as markup
        errors.print(f"[bold red]error:[/] {escape(str(err))}")
        return USAGE
    except OSError as err:  # disk full, read-only run directory, ...: finished work stays on disk
        where = f"{err.filename}: " if err.filename else ""
        reason = escape(where + str(err.strerror or err))
        errors.print(f"[bold red]error:[/] {reason}; finished work is kept, rerun to continue")
        return USAGE
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished work is kept; rerun the same command to continue")
        return INTERRUPTED
    return 0
