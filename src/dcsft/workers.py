"""Independent pieces of work (the tasks of a study) side by side in processes.

Why: the embedded model's operations are too small for torch's threads to share (an SFT step
takes the same time on one thread as on two, `benchmarks/study_speed.py`), so two processes of
one thread each do twice the work of one process of two threads on a 2-core machine. Results do
not depend on the thread count (checked bit for bit on the default study).

Each worker is a fresh (spawned) process with `threads` torch threads and no live progress bars;
it prints its stages' one-line summaries as a sequential run does. How they end:
- a known problem: the worker prints its one line and exits 2; the other workers finish their
  work, then the command exits 2;
- killed by a signal (a pre-emption, the OOM killer, the kill tests): the command kills the
  other workers and then itself with the same signal, as if it had been killed whole, and a
  rerun resumes every piece from the run directory;
- a worker whose parent died kills itself at once: it must not write into a run directory
  that a rerun may already hold.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import wait
from typing import Any, Callable

PARENT_POLL_SECONDS = 0.2


def side_by_side(target: Callable[[Any], None], items: list, jobs: int, threads: int) -> None:
    """target(item) for every item, at most `jobs` at a time, each in its own process."""
    from dcsft.errors import AlreadyReported

    spawn = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools mid-use
    waiting, running, codes = list(items), [], []
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                worker = spawn.Process(target=run_worker, args=(target, waiting.pop(0), threads, os.getpid()))
                worker.start()
                running.append(worker)
            wait([w.sentinel for w in running])
            for worker in [w for w in running if w.exitcode is not None]:
                running.remove(worker)
                if worker.exitcode < 0:
                    end_like(worker.exitcode, running)
                codes.append(worker.exitcode)
    except KeyboardInterrupt:  # the workers got the same SIGINT from the terminal and stop by themselves
        for worker in running:
            worker.join()
        raise
    if any(codes):
        raise AlreadyReported(max(codes))


def end_like(exitcode: int, others: list) -> None:
    """A worker was killed by signal -exitcode: stop the others and end this process the same way."""
    from dcsft.errors import AlreadyReported

    for worker in others:
        worker.kill()
        worker.join()
    os.kill(os.getpid(), -exitcode)
    raise AlreadyReported(128 - exitcode)  # a signal this process survives (SIGINT, say) ends it here


def run_worker(target: Callable[[Any], None], item: Any, threads: int, parent: int) -> None:
    """A worker process's body: its one-line errors, its exit code, its threads."""
    import torch

    from dcsft import console
    from dcsft.errors import run_guarded

    die_with(parent)
    console.live_bars = False
    console.quiet_libraries()
    torch.set_num_threads(threads)
    sys.exit(run_guarded(lambda: target(item)))


def die_with(parent: int) -> None:
    """Kill this process as soon as its parent is gone (polled: portable, unlike Linux's PDEATHSIG)."""

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()
