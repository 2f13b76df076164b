"""Units of a study (a task's data stages, one training run, one model's evaluation, a report)
run in a few worker processes, each unit as soon as the units it needs have finished.

Why: the embedded model's operations are too small for torch's threads to share (an SFT step
takes the same time on one thread as on two, `benchmarks/study_speed.py`), so two processes of
one thread each do twice the work of one process of two threads on a 2-core machine. Units are
cut at methods and models, not only at tasks, so that both cores stay busy to the end even
when one task is longer than the other. Results do not depend on where or in which order a
unit runs: each is a stage with its own folder and fingerprint (checked bit for bit on the
default study, and by the kill test).

The workers are spawned once per command, each with `threads` torch threads and no live
progress bars; they print their stages' one-line summaries as a sequential run does. How they
end:
- a unit that ends with a known problem prints its one line; the units that need it are
  skipped, the others still run, and the command then exits 2;
- a worker killed by a signal (a pre-emption, the OOM killer, the kill tests): the command kills
  the other workers and then itself with the same signal, as if it had been killed whole, and
  a rerun resumes every unit from the run directory;
- a worker whose command died kills itself at once: it must not write into a run directory
  that a rerun may already hold.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, NoReturn

PARENT_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Unit:
    """call(arg), once every unit named in `after` has finished. Of the units ready at once the
    heaviest starts first, so that a long run does not start last."""

    key: str
    call: Callable[[Any], None]  # a module-level function: it travels to the worker by name
    arg: Any = None
    after: tuple[str, ...] = ()
    weight: float = 1.0


@dataclass
class Worker:
    process: Any
    conn: Connection
    unit: Unit | None = None


@dataclass
class Schedule:
    """Which units wait, which finished and which cannot run because a unit they need failed."""

    waiting: dict[str, Unit]
    finished: set[str] = field(default_factory=set)
    failed: dict[str, int] = field(default_factory=dict)  # key -> exit code

    def ready(self) -> list[Unit]:
        """The units whose needs have all finished, heaviest first; a unit that needs a failed
        unit fails with it."""
        blocked = [u for u in self.waiting.values() if any(key in self.failed for key in u.after)]
        while blocked:
            for unit in blocked:
                del self.waiting[unit.key]
                self.failed[unit.key] = max(self.failed[key] for key in unit.after if key in self.failed)
            blocked = [u for u in self.waiting.values() if any(key in self.failed for key in u.after)]
        ready = [u for u in self.waiting.values() if all(key in self.finished for key in u.after)]
        return sorted(ready, key=lambda u: -u.weight)

    def take(self, unit: Unit) -> Unit:
        return self.waiting.pop(unit.key)

    def record(self, unit: Unit, code: int) -> None:
        if code:
            self.failed[unit.key] = code
        else:
            self.finished.add(unit.key)


def run_units(units: list[Unit], jobs: int, threads: int, setup: tuple[Callable, Any] | None = None) -> None:
    """Every unit in at most `jobs` worker processes (setup = (call, arg) runs first in each)."""
    from dcsft.errors import AlreadyReported

    schedule = Schedule({u.key: u for u in units})
    spawn = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools mid-use
    workers = [start_worker(spawn, threads, setup) for _ in range(min(jobs, len(units)))]
    try:
        while True:
            for worker, unit in zip([w for w in workers if w.unit is None], schedule.ready()):
                worker.unit = schedule.take(unit)
                worker.conn.send((unit.call, unit.arg))
            busy = [w for w in workers if w.unit is not None]
            if not busy:
                if schedule.waiting:
                    raise ValueError(f"units wait for units that are not there: {sorted(schedule.waiting)}")
                break
            wait([w.conn for w in busy] + [w.process.sentinel for w in workers])
            for worker in workers:
                if not worker.process.is_alive():
                    end_like(worker, workers)
            for worker in busy:
                if worker.conn.poll():
                    schedule.record(worker.unit, answer(worker, workers))
                    worker.unit = None
    except KeyboardInterrupt:  # the workers got the same SIGINT from the terminal and stop by themselves
        for worker in workers:
            worker.process.join()
        raise
    for worker in workers:
        worker.conn.send(None)
        worker.process.join()
    if schedule.failed:
        raise AlreadyReported(max(schedule.failed.values()))


def start_worker(spawn, threads: int, setup: tuple[Callable, Any] | None) -> Worker:
    ours, theirs = spawn.Pipe()
    process = spawn.Process(target=serve, args=(theirs, threads, os.getpid(), setup), daemon=False)
    process.start()
    theirs.close()
    return Worker(process, ours)


def answer(worker: Worker, workers: list[Worker]) -> int:
    """The exit code of the unit `worker` ran; its pipe closes unanswered if it died mid-unit."""
    try:
        return worker.conn.recv()
    except (EOFError, OSError):
        worker.process.join()
        end_like(worker, workers)


def end_like(ended: Worker, workers: list[Worker]) -> NoReturn:
    """A worker ended outside a unit's one-line errors (killed by a signal, or crashed): stop the
    others and end this process the same way."""
    from dcsft.errors import AlreadyReported

    for worker in workers:
        if worker is not ended:
            worker.process.kill()
            worker.process.join()
    exitcode = ended.process.exitcode
    if exitcode < 0:
        os.kill(os.getpid(), -exitcode)
    raise AlreadyReported(128 - exitcode if exitcode < 0 else exitcode or 1)  # a signal this process survives


def serve(conn: Connection, threads: int, parent: int, setup: tuple[Callable, Any] | None) -> None:
    """A worker process: runs the units it is sent, answering each with its exit code."""
    import torch

    from dcsft import console
    from dcsft.errors import run_guarded

    die_with(parent)
    console.live_bars = False
    console.quiet_libraries()
    torch.set_num_threads(threads)
    if setup is not None:
        setup[0](setup[1])
    while (job := conn.recv()) is not None:
        call, arg = job
        conn.send(run_guarded(functools.partial(call, arg)))


def die_with(parent: int) -> None:
    """Kill this process as soon as its parent is gone (polled: portable, unlike Linux's PDEATHSIG)."""

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()
