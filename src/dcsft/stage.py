"""Running one stage: skip it when complete, else run it and record its stats and marker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from dcsft import console
from dcsft.data.records import DataError, load_records
from dcsft.rundir import RunDir, Stage, read_json

SHOWN_SKIPS = 5


class StageError(RuntimeError):
    """A stage cannot run; the message is one line telling the user what to do."""


def upstream(stage: Stage, verb: str) -> str:
    """Fingerprint of a finished upstream stage, or a clear error if it has not finished."""
    current = stage.done_fingerprint()
    if current is None:
        raise StageError(f"{stage.root} is not complete: run `dcsft {verb}` (or `dcsft study`) first")
    return current


def run_stage(name: str, stage: Stage, current: str, body: Callable[[Path], tuple[str, dict]]) -> dict:
    """Run `body(folder)` unless the stage is complete for fingerprint `current`.

    `body` returns a one-line description of what it did and its stats."""
    if stage.is_done(current):
        console.skipped(name, str(stage.root))
        return read_json(stage.root / "stats.json")
    stage.begin(current)
    started = time.time()
    what, stats = body(stage.root)
    stats["seconds"] = round(time.time() - started, 1)
    stage.finish(current, stats)
    console.summary(name, what, stats["seconds"], str(stage.root))
    return stats


def read_split(rundir: RunDir, split: str) -> tuple[list[dict], int]:
    """Usable records of a prepared split, and how many were skipped (each named on one line)."""
    classes = read_json(rundir.prepare.root / "stats.json")["classes"]
    try:
        loaded = load_records(rundir.records(split), classes)
    except DataError as err:
        raise StageError(str(err)) from None
    for skip in loaded.skipped[:SHOWN_SKIPS]:
        console.warn(f"skipped {skip.line()}")
    if len(loaded.skipped) > SHOWN_SKIPS:
        console.warn(f"... and {len(loaded.skipped) - SHOWN_SKIPS} more skipped records in {split}")
    if not loaded.records:
        raise StageError(f"{rundir.records(split)}: no usable records ({len(loaded.skipped)} skipped)")
    return loaded.records, len(loaded.skipped)
