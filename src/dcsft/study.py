"""study: every stage in order, then the tables. `dcsft study` runs the embedded default.

Reads/Writes: the whole run directory (see dcsft.rundir). Stages that are already complete
for the current config skip themselves, so rerunning a finished study does nothing.

Example: dcsft study configs/paper/imagenet_3b.yaml --set train.steps=100
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from dcsft import distributed, stage, workers
from dcsft.config import StudyConfig
from dcsft.rundir import RunDir

# Each stage's module, whose run(cfg) does it; imported when the stage runs, so that a command
# imports only the libraries its stages need (a study that hands its tasks to worker processes
# starts them about 4 s sooner, as it imports no model library itself).
STAGES = {
    "prepare": "dcsft.prepare",
    "coldstart": "dcsft.coldstart",
    "profile": "dcsft.profiling",
    "curate": "dcsft.curate",
    "train": "dcsft.train.run",
    "evaluate": "dcsft.evaluate",
    "report": "dcsft.report.run",
}


def run_stage(name: str, cfg: StudyConfig) -> None:
    importlib.import_module(STAGES[name]).run(cfg)


def run(cfg: StudyConfig) -> None:
    """Run the study of one task."""
    for name in STAGES:
        run_stage(name, cfg)


def run_tasks(cfg: StudyConfig, task_cfgs: list[StudyConfig]) -> dict[Path, str]:
    """Each task's study (side by side in `jobs` processes, see dcsft.workers), then the overview
    when the study has several tasks; returns {report path: markdown}."""
    jobs = jobs_for(cfg, len(task_cfgs))
    if jobs > 1:
        items = [(c, dict(stage.REUSE)) for c in task_cfgs]
        workers.side_by_side(run_in_worker, items, jobs, cfg.model.threads)
    else:
        for c in task_cfgs:
            run(c)
    folders = [RunDir(c.run_dir).report.root for c in task_cfgs]
    reports = {folder / "report.html": (folder / "report.md").read_text() for folder in folders}
    if len(cfg.task_names) > 1 and len(task_cfgs) == len(cfg.task_names):
        from dcsft.report import overview

        path = overview.run(cfg, task_cfgs)
        reports[path] = path.read_text()
    return reports


def jobs_for(cfg: StudyConfig, tasks: int) -> int:
    """How many tasks run at once: `jobs`, or by default one per task up to the usable cores over
    model.threads; one at a time under a launcher or with a CUDA GPU (the tasks would share it)."""
    import torch

    if distributed.world_size() > 1:
        return 1
    if cfg.jobs is not None:
        return min(cfg.jobs, tasks)
    if torch.cuda.is_available():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(tasks, cores // cfg.model.threads))


def run_in_worker(item: tuple[StudyConfig, dict[Path, list[Path]]]) -> None:
    """One task's study in a worker process; a sweep's finished siblings come along (stage.REUSE)."""
    task_cfg, reuse = item
    stage.REUSE.update(reuse)
    run(task_cfg)
