"""Running one stage: skip it when complete, else run it and record its stats and marker."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable

from dcsft import console, distributed
from dcsft.data.records import load_records
from dcsft.errors import DataError, StageError
from dcsft.console import progress
from dcsft.stages import BY_NAME
from dcsft.rundir import RunDir, Stage, read_json, read_jsonl_complete, resume_jsonl, unit_finished
from dcsft.tasks import get_task

SHOWN_SKIPS = 5


# Run directories whose finished stages a run may take over (run root -> sibling roots), set by
# `dcsft sweep`: a stage whose fingerprint a sibling already finished is linked, not redone.
REUSE: dict[Path, list[Path]] = {}


def reused(stage: Stage, current: str) -> Stage | None:
    """The sibling's copy of `stage` finished with fingerprint `current`, linked into place; else None."""
    for root, siblings in REUSE.items():
        if not stage.root.is_relative_to(root):
            continue
        for sibling in siblings:
            candidate = Stage(sibling / stage.root.relative_to(root), stage.name)
            if candidate.is_done(current) and not candidate.root.is_symlink():
                stage.link_to(candidate)
                return candidate
    return None


def upstream(stage: Stage) -> str:
    """Fingerprint of a finished upstream stage, or a clear error if it has not finished."""
    current = stage.done_fingerprint()
    if current is None:
        raise StageError(f"{stage.root} is not complete: run `dcsft {stage.name}` (or `dcsft study`) first")
    return current


def run_stage(stage: Stage, current: str, body: Callable[[Path], tuple[str, dict]]) -> dict:
    """Run `body(folder)` unless the stage is complete for fingerprint `current`.

    `body` returns a one-line description of what it did and its stats. Under a launcher
    (WORLD_SIZE > 1, see dcsft.distributed) the body of a data-parallel stage (dcsft.stages)
    runs on every rank and shares the work itself (batched_jsonl); other stages refuse to run there."""
    name = stage.name
    if distributed.world_size() > 1:
        return run_stage_ranks(name, stage, current, body, BY_NAME[name].data_parallel)
    if stage.is_done(current):
        console.skipped(name, str(stage.root))
        return read_json(stage.root / "stats.json")
    source = reused(stage, current)
    if source is not None:
        console.skipped(name, f"{stage.root} -> {source.root}")
        return read_json(stage.root / "stats.json")
    stage.begin(current)
    reset_peak_memory()
    started = time.time()
    what, stats = body(stage.root)
    stats.update(seconds=round(time.time() - started, 1), peak_rss_mb=peak_memory_mb())
    stage.finish(current, stats)
    console.summary(name, what, stats["seconds"], str(stage.root))
    return stats


def reset_peak_memory() -> None:
    """Start this process's peak resident memory afresh, so that a stage's stats.json holds its
    own peak (Linux, /proc/self/clear_refs); elsewhere peak_rss_mb is the process's peak so far."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb() -> float:
    """Peak resident memory of this process, in MiB, since the last reset_peak_memory()."""
    try:
        status = Path("/proc/self/status").read_text().splitlines()
        peak = next(line for line in status if line.startswith("VmHWM:"))  # "VmHWM:   1234 kB"
        return round(int(peak.split()[1]) / 1024, 1)
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)


def run_stage_ranks(name: str, stage: Stage, current: str, body: Callable[[Path], tuple[str, dict]],
                    data_parallel: bool) -> dict:
    """run_stage on every rank of a launcher: rank 0 decides whether the stage is done (every
    rank skips, or none does), prepares the folder and writes stats.json and DONE."""
    main = distributed.is_main()
    if distributed.from_main(lambda: stage.is_done(current)):
        if main:
            console.skipped(name, str(stage.root))
        return read_json(stage.root / "stats.json")
    if not data_parallel:
        raise StageError(f"`dcsft {name}` does not run across processes (WORLD_SIZE={distributed.world_size()}): "
                         f"run it without torchrun / accelerate launch; profile and evaluate run data-parallel")
    if main:
        stage.begin(current)
    distributed.barrier()  # the folder is ready before any rank writes to it
    reset_peak_memory()
    started = time.time()
    what, stats = body(stage.root)
    stats.update(seconds=round(time.time() - started, 1), peak_rss_mb=peak_memory_mb())
    if main:
        stage.finish(current, stats)
        console.summary(name, what, stats["seconds"], str(stage.root))
    distributed.barrier()  # the stage is DONE on every rank before any moves on
    return stats


def batched_jsonl(path: Path, records: list[dict], batch_size: int, stage: str, description: str,
                  scorer: Callable[[], Callable[[list[dict], int], list[dict]]]) -> tuple[list[dict], int]:
    """One output row per record, appended to `path` a batch at a time and flushed to disk, so
    a killed run continues after its last whole batch (batch-indexed seeds make the result the
    same as an uninterrupted run). `scorer()` (e.g. loading a model) is called only if some
    batch is missing. Returns the rows and the index the run resumed from.

    Under a launcher, batch i is scored by rank i % WORLD_SIZE into its own partial file and
    rank 0 merges them into `path` (dcsft.distributed.sharded_jsonl): the same rows as here."""
    if distributed.world_size() > 1 or distributed.part_files(path):
        return distributed.sharded_jsonl(path, records, batch_size, stage, description, scorer)
    start = len(resume_jsonl(path, batch_size, len(records)))
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


def warn_skipped(lines: list[str], rest: str) -> None:
    """Name the first SHOWN_SKIPS skipped records, one line each, and count the rest; on rank 0
    only, so a launcher's ranks do not repeat them."""
    if not distributed.is_main():
        return
    for line in lines[:SHOWN_SKIPS]:
        console.warn(f"skipped {line}")
    if len(lines) > SHOWN_SKIPS:
        console.warn(f"... and {len(lines) - SHOWN_SKIPS} more skipped records {rest}")


def read_split(rundir: RunDir, split: str) -> tuple[list[dict], int]:
    """Usable records of a prepared split, and how many were skipped (each named on one line)."""
    stats = read_json(rundir.prepare.root / "stats.json")
    task = get_task(stats.get("task", "classification"))
    try:
        # prepare decoded every image; later stages only check that each still opens (a full
        # decode per read costs minutes per evaluation at ImageNet scale)
        loaded = load_records(rundir.records(split), stats.get("classes"), getattr(task, "record_problem", None),
                              decode=False)
    except DataError as err:
        raise StageError(str(err)) from None
    warn_skipped([skip.line() for skip in loaded.skipped], f"in {split}")
    if not loaded.records:
        raise StageError(f"{rundir.records(split)}: no usable records ({len(loaded.skipped)} skipped)")
    return loaded.records, len(loaded.skipped)
