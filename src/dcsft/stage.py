"""Running one stage: skip it when complete, else run it and record its stats and marker."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

from dcsft import console
from dcsft.data.records import DataError, load_records
from dcsft.console import progress
from dcsft.rundir import RunDir, Stage, read_json, read_jsonl_complete, resume_jsonl, unit_finished

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


def batched_jsonl(path: Path, records: list[dict], batch_size: int, stage: str, description: str,
                  scorer: Callable[[], Callable[[list[dict], int], list[dict]]]) -> tuple[list[dict], int]:
    """One output row per record, appended to `path` a batch at a time and flushed to disk, so
    a killed run continues after its last whole batch (batch-indexed seeds make the result the
    same as an uninterrupted run). `scorer()` (e.g. loading a model) is called only if some
    batch is missing. Returns the rows and the index the run resumed from."""
    start = len(resume_jsonl(path, batch_size))
    if start < len(records):
        score_batch = scorer()
        with progress(description, len(records)) as advance, path.open("a") as sink:
            advance(start)
            for first in range(start, len(records), batch_size):
                batch = records[first:first + batch_size]
                sink.write("".join(json.dumps(row) + "\n" for row in score_batch(batch, first // batch_size)))
                sink.flush()
                os.fsync(sink.fileno())
                unit_finished(stage, f"{path}:{first}")
                advance(len(batch))
    return read_jsonl_complete(path), start


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
