"""Running one stage: skip it when complete (or link a sweep sibling's copy), else run it and record
its stats, peak memory and marker; under a launcher, on every rank of a data-parallel stage.

What stages read and write in between lives elsewhere: the prepared splits in dcsft.prepared,
batch-at-a-time resumable outputs in dcsft.resumable, the files themselves in dcsft.rundir."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dcsft import console, distributed
from dcsft.errors import StageError
from dcsft.rundir import Stage, read_json
from dcsft.stages import BY_NAME

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


def run_stage_ranks(
    name: str, stage: Stage, current: str, body: Callable[[Path], tuple[str, dict]], data_parallel: bool
) -> dict:
    """run_stage on every rank of a launcher: rank 0 decides whether the stage is done (every
    rank skips, or none does), prepares the folder and writes stats.json and DONE."""
    main = distributed.is_main()
    if distributed.from_main(lambda: stage.is_done(current)):
        if main:
            console.skipped(name, str(stage.root))
        return read_json(stage.root / "stats.json")
    if not data_parallel:
        raise StageError(
            f"`dcsft {name}` does not run across processes (WORLD_SIZE={distributed.world_size()}): "
            f"run it without torchrun / accelerate launch; profile and evaluate run data-parallel"
        )
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
