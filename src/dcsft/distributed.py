"""Data parallelism across processes for the stages that score records a batch at a time
(profile and evaluate), under `torchrun` or `accelerate launch`.

A launcher starts WORLD_SIZE processes and gives each a RANK. Batch i of a stage's records goes
to rank i % WORLD_SIZE, so every batch keeps the records and the batch-indexed seed it has in a
one-process run: the merged output is identical to a one-process run's.

Files, for an output `<stem>.jsonl` (profile.jsonl, <split>.jsonl):
- each rank appends its batches, in batch order, to its own partial file
  `<stem>.rank<r>-of-<w>.jsonl`, flushed and fsync'ed per batch. A rerun keeps every whole
  batch of it (a torn line or a batch cut short is dropped), so a killed or lost rank loses at
  most the batch it was writing and the other ranks lose nothing;
- a batch already on disk in any file of the stage (a partial file of another world size, or
  `<stem>.jsonl` left by a killed one-process run) is copied, not recomputed, so a rerun with
  another number of processes, or with none, reuses the work too;
- after a barrier, rank 0 writes `<stem>.jsonl` (atomically) from the batches in batch order,
  byte for byte what a one-process run writes, then deletes the partial files; a barrier later
  every rank reads it.
Rank 0 alone prepares the stage folder, writes stats.json and the DONE marker (dcsft.stage.
run_stage) and holds the run directory's lock (dcsft.cli.setup); the decision to skip a
finished stage is rank 0's, broadcast, so every rank skips or none does.

The process group is initialised once, unless the launcher's code (accelerate) already did: nccl
when every local rank has its own GPU, else gloo. dcsft's own waits (barriers, rank 0's skip
decision) go through a separate gloo group whose timeout is DCSFT_DIST_TIMEOUT seconds (default
one day): a rank that resumes with most of its batches done waits long for the others, while the
launcher's group (the Trainer's collectives) keeps its usual timeout.
"""

from __future__ import annotations

import atexit
import json
import os
import re
from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

from dcsft.console import progress
from dcsft.rundir import atomic_path, unit_finished

DEFAULT_TIMEOUT_S = 24 * 3600


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE") or 1)


def rank() -> int:
    return int(os.environ.get("RANK") or 0) if world_size() > 1 else 0


def is_main() -> bool:
    """Whether this process writes the run directory's lock, config, stats and markers."""
    return rank() == 0


def init() -> None:
    """Join the launcher's process group (once; no-op for one process or if already joined,
    e.g. by accelerate): nccl when every local rank has its own GPU, else gloo."""
    import torch
    import torch.distributed as dist

    if world_size() == 1 or dist.is_initialized():
        return
    local_rank = int(os.environ.get("LOCAL_RANK") or rank())
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE") or world_size())
    backend = "gloo"
    if torch.cuda.is_available() and torch.cuda.device_count() >= local_world:
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    try:
        dist.init_process_group(backend)
    except (ValueError, RuntimeError) as err:
        from dcsft.errors import StageError

        raise StageError(
            f"WORLD_SIZE={world_size()} but this process cannot join its process group ({err}); "
            f"start dcsft with torchrun or accelerate launch, or unset WORLD_SIZE"
        ) from None
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())


# dcsft's own gloo group: its waits get DCSFT_DIST_TIMEOUT, the launcher's group keeps its own
_group: list = []


def group():
    import torch.distributed as dist

    init()
    if not _group:  # a collective: every rank gets here at the same point (its first dcsft wait)
        timeout = timedelta(seconds=float(os.environ.get("DCSFT_DIST_TIMEOUT") or DEFAULT_TIMEOUT_S))
        _group.append(dist.new_group(backend="gloo", timeout=timeout))
    return _group[0]


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier(group=group())


def from_main(value: Callable[[], object]) -> object:
    """`value()` as rank 0 computes it, on every rank (computed on rank 0 only)."""
    if world_size() == 1:
        return value()
    import torch.distributed as dist

    box = [value() if is_main() else None]
    dist.broadcast_object_list(box, src=0, group=group())
    return box[0]


def total(count: int) -> int:
    """The sum of `count` over all ranks."""
    if world_size() == 1:
        return count
    import torch.distributed as dist

    counts: list = [None] * world_size()
    dist.all_gather_object(counts, count, group=group())
    return sum(counts)


# --- the batch files of one output ---


def part_path(path: Path, rank_: int, world: int) -> Path:
    return path.with_name(f"{path.stem}.rank{rank_}-of-{world}{path.suffix}")


def part_files(path: Path) -> list[tuple[Path, int, int]]:
    """The partial files of output `path` on disk, as (file, rank, world size)."""
    pattern = re.compile(rf"{re.escape(path.stem)}\.rank(\d+)-of-(\d+){re.escape(path.suffix)}")
    found = []
    for file in sorted(path.parent.glob(f"{path.stem}.rank*-of-*{path.suffix}")):
        match = pattern.fullmatch(file.name)
        if match and int(match[1]) < int(match[2]):
            found.append((file, int(match[1]), int(match[2])))
    return found


class Batches:
    """The batches of `records` (batch i = records[i * size:(i + 1) * size]) and which of them
    a file written by rank r of w holds: a file holds r, r + w, r + 2w, ... in that order, each
    batch as its rows' JSON lines, checked against the batch's record ids."""

    def __init__(self, records: list[dict], size: int):
        self.ids = [r.get("id") for r in records]
        self.size = size
        self.count = -(-len(records) // size)

    def span(self, index: int) -> range:
        return range(index * self.size, min((index + 1) * self.size, len(self.ids)))

    def read(self, file: Path, rank_: int, world: int) -> dict[int, list[str]]:
        """{batch index: its lines} for the whole batches at the start of `file` (what follows
        them is a torn line or a batch cut short by a kill)."""
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return {}
        lines = [line.decode(errors="replace") + "\n" for line in raw.split(b"\n")[:-1] if line.strip()]
        found: dict[int, list[str]] = {}
        used = 0
        for index in range(rank_, self.count, world):
            span = self.span(index)
            batch = lines[used : used + len(span)]
            if len(batch) < len(span) or not self.matches(batch, span):
                break
            found[index] = batch
            used += len(span)
        return found

    def matches(self, lines: list[str], span: range) -> bool:
        try:
            return all(json.loads(line).get("id") == self.ids[i] for line, i in zip(lines, span))
        except (json.JSONDecodeError, AttributeError):
            return False

    def on_disk(self, path: Path, skip: Path | None = None) -> dict[int, list[str]]:
        """Every whole batch of output `path` in any of its files (the output itself, as left by
        a one-process run, and every partial file), except file `skip`."""
        found: dict[int, list[str]] = {}
        for file, rank_, world in [(path, 0, 1), *part_files(path)]:
            if file != skip:
                for index, lines in self.read(file, rank_, world).items():
                    found.setdefault(index, lines)
        return found


def write_lines(file: Path, lines: list[str]) -> None:
    with atomic_path(file) as tmp, tmp.open("w") as out:
        out.write("".join(lines))
        out.flush()
        os.fsync(out.fileno())


def sharded_jsonl(
    path: Path,
    records: list[dict],
    batch_size: int,
    stage: str,
    description: str,
    scorer: Callable[[], Callable[[list[dict], int], list[dict]]],
) -> tuple[list[dict], int]:
    """dcsft.resumable.batched_jsonl across the ranks of a launcher (or, in one process, reusing the
    partial files a launched run left): this rank scores batches rank, rank + world, ... into
    its own partial file; rank 0 merges every batch into `path`. Every rank returns all rows and
    the number of records that were already on disk when it started."""
    me, world = rank(), world_size()
    batches = Batches(records, batch_size)
    own = path if world == 1 else part_path(path, me, world)
    kept = batches.read(own, me, world)
    whole = [line for index in sorted(kept) for line in kept[index]]
    if own.exists() and own.read_bytes() != "".join(whole).encode():
        write_lines(own, whole)  # drop a torn line or a batch cut short
    barrier()  # every rank's own file is whole batches before any rank reads it

    elsewhere = batches.on_disk(path, skip=own)
    mine = [index for index in range(me, batches.count, world) if index not in kept]
    resumed = total(
        sum(len(batches.span(i)) for i in range(me, batches.count, world) if i in kept or i in elsewhere)
    )
    todo = [index for index in mine if index not in elsewhere]
    if mine:
        score_batch = scorer() if todo else None
        share = sum(len(batches.span(i)) for i in range(me, batches.count, world))
        label = description if world == 1 else f"{description} (rank {me} of {world})"
        bar = progress(label, share) if is_main() else nullcontext(lambda n=1: None)  # one bar per terminal
        with bar as advance, own.open("a") as sink:
            advance(share - sum(len(batches.span(i)) for i in mine))
            for index in mine:
                span = batches.span(index)
                if index in elsewhere:  # finished by a run with another number of processes
                    lines = elsewhere[index]
                else:
                    rows = score_batch([records[i] for i in span], index)
                    lines = [json.dumps(row) + "\n" for row in rows]
                sink.write("".join(lines))
                sink.flush()
                os.fsync(sink.fileno())
                if index not in elsewhere:
                    unit_finished(stage, f"{path}:{span.start}")
                advance(len(span))
    barrier()  # every batch is on disk

    if is_main():
        merged = batches.on_disk(path)
        missing = [i for i in range(batches.count) if i not in merged]
        if missing:
            raise RuntimeError(
                f"{path}: batches {missing[:5]} are in no partial file after every rank finished"
            )
        lines = [line for index in range(batches.count) for line in merged[index]]
        write_lines(path, lines)
        for file, _, _ in part_files(path):
            file.unlink()
    barrier()  # `path` is complete
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()], resumed
