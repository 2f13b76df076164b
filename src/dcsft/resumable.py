"""Outputs written a batch at a time, so that a killed stage continues after its last whole batch.

profile and evaluate score their records this way; under torchrun / accelerate launch the
batches are shared between the processes (dcsft.distributed.sharded_jsonl), with the same rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from dcsft import distributed
from dcsft.console import progress
from dcsft.rundir import read_jsonl_complete, resume_jsonl, unit_finished


def batched_jsonl(
    path: Path,
    records: list[dict],
    batch_size: int,
    stage: str,
    description: str,
    scorer: Callable[[], Callable[[list[dict], int], list[dict]]],
) -> tuple[list[dict], int]:
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
                batch = records[first : first + batch_size]
                sink.write("".join(json.dumps(row) + "\n" for row in score_batch(batch, first // batch_size)))
                sink.flush()
                os.fsync(sink.fileno())
                unit_finished(stage, f"{path}:{first}")
                advance(len(batch))
    return read_jsonl_complete(path), start
