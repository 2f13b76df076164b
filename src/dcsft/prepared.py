"""Reading prepare's output: a split's usable records, each skipped one named on one line."""

from __future__ import annotations

from dcsft import console, distributed
from dcsft.data.records import load_records
from dcsft.errors import DataError, StageError
from dcsft.rundir import RunDir, read_json
from dcsft.tasks import get_task

SHOWN_SKIPS = 5


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
    stats_file = rundir.prepare.root / "stats.json"
    stats = read_json(stats_file)
    if "task" not in stats:  # written by every prepare since tasks existed
        raise StageError(
            f"{stats_file}: no task recorded; remove {rundir.prepare.root} and rerun `dcsft prepare`"
        )
    task = get_task(stats["task"])
    try:
        # prepare decoded every image; later stages only check that each still opens (a full
        # decode per read costs minutes per evaluation at ImageNet scale)
        loaded = load_records(rundir.records(split), stats.get("classes"), task.record_problem, decode=False)
    except DataError as err:
        raise StageError(str(err)) from None
    warn_skipped([skip.line() for skip in loaded.skipped], f"in {split}")
    if not loaded.records:
        raise StageError(f"{rundir.records(split)}: no usable records ({len(loaded.skipped)} skipped)")
    return loaded.records, len(loaded.skipped)
