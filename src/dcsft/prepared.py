"""Reading what prepare and curate wrote, as the later stages and the exports need it: a split's
usable records (each skipped one named on one line), and the records curate put in a bucket."""

from __future__ import annotations

from dcsft import console, distributed
from dcsft.data.records import load_records, read_json_list
from dcsft.errors import DataError, StageError
from dcsft.rundir import RunDir, read_json
from dcsft.stage import upstream
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


def curated_records(rundir: RunDir, bucket: str) -> list[dict]:
    """The training records curate put in `bucket` ("all": every curated record), in curate's order."""
    upstream(rundir.curate)
    path = rundir.assignments_file
    assignments = read_json_list(path)
    if not all(isinstance(a, dict) and "id" in a for a in assignments):
        raise StageError(f"{path}: expected one {{id, bucket, ...}} object per line; rerun `dcsft curate`")
    by_id = {r["id"]: r for r in read_split(rundir, "train")[0]}
    chosen = [a["id"] for a in assignments if bucket == "all" or a.get("bucket") == bucket]
    unknown = [i for i in chosen if i not in by_id]
    if unknown:
        raise StageError(
            f"{rundir.curate.root}: {len(unknown)} curated ids are not in {rundir.records('train')} "
            f"(first: {unknown[0]}); rerun `dcsft curate`"
        )
    return [by_id[i] for i in chosen]
