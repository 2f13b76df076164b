"""study: every stage in order, then the tables. `dcsft study` runs the embedded default.

Reads/Writes: the whole run directory (see dcsft.rundir). Stages that are already complete
for the current config skip themselves, so rerunning a finished study does nothing.

Example: dcsft study configs/paper/imagenet_3b.yaml --set train.steps=100
"""

from __future__ import annotations

import os
from pathlib import Path

from dcsft import coldstart, curate, distributed, evaluate, prepare, profiling, stage, workers
from dcsft.config import StudyConfig
from dcsft.report import overview
from dcsft.report import run as report
from dcsft.rundir import RunDir
from dcsft.train import run as train

STAGES = {
    "prepare": prepare.run,
    "coldstart": coldstart.run,
    "profile": profiling.run,
    "curate": curate.run,
    "train": train.run,
    "evaluate": evaluate.run,
    "report": report.run,
}


def run(cfg: StudyConfig) -> None:
    """Run the study of one task."""
    for stage in STAGES.values():
        stage(cfg)


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
