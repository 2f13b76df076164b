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
from dcsft.stages import BY_NAME, NAMES

# The stages before training: one unit of work, as each needs the one before it.
DATA_STAGES = NAMES[: NAMES.index("train")]


def stage_module(name: str):
    """A stage's module, imported when the stage runs, so that a command imports only the libraries
    its stages need (a study that hands its tasks to worker processes starts them about 4 s sooner,
    as it imports no model library itself)."""
    return importlib.import_module(BY_NAME[name].module)


def run_stage(name: str, cfg: StudyConfig) -> None:
    stage_module(name).run(cfg)


def run(cfg: StudyConfig) -> None:
    """Run the study of one task."""
    for name in NAMES:
        run_stage(name, cfg)


def run_tasks(cfg: StudyConfig, task_cfgs: list[StudyConfig]) -> dict[Path, str]:
    """Each task's study (with several jobs, its units spread over worker processes, see
    dcsft.workers), then the overview when the study has several tasks; returns {report path:
    markdown}."""
    jobs = jobs_for(cfg)
    if jobs > 1:
        workers.run_units(
            [u for c in task_cfgs for u in units(c)],
            jobs,
            cfg.model.threads,
            setup=(install_reuse, dict(stage.REUSE)),
        )
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


def jobs_for(cfg: StudyConfig) -> int:
    """Worker processes for a study: `jobs`, or by default the usable cores over model.threads;
    one (the study runs in this process) under a launcher or with a CUDA GPU, which the
    workers would share."""
    import torch

    if distributed.world_size() > 1:
        return 1
    if cfg.jobs is not None:
        return cfg.jobs
    if torch.cuda.is_available():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // cfg.model.threads)


# ---------------------------------------------------------------- the study cut into units for workers

# Rough shares of a unit's time, so that the longest ready unit starts first (GRPO generates).
WEIGHTS = {"data": 2.0, "grpo": 4.0, "train": 1.0, "evaluate": 0.2, "report": 0.1}


def units(cfg: StudyConfig) -> list[workers.Unit]:
    """One task's study as units: its stages before training (DATA_STAGES) in turn, then each
    training run once the data is curated, each model's evaluation once it is trained, and the
    report once every evaluation is done."""
    task = cfg.task
    data = workers.Unit(
        f"{task}: {DATA_STAGES[0]} to {DATA_STAGES[-1]}", data_stages, cfg, weight=WEIGHTS["data"]
    )
    untrained = workers.Unit(
        f"{task}: evaluate base and coldstart", evaluate_untrained, cfg, (data.key,), WEIGHTS["evaluate"]
    )
    runs, evaluations = [], [untrained]
    for method in cfg.train.methods:
        for seed in cfg.train_seeds:
            trained = workers.Unit(
                f"{task}: train {method} seed {seed}",
                train_one,
                (cfg, method, seed),
                (data.key,),
                WEIGHTS["grpo" if method == "grpo" else "train"],
            )
            runs.append(trained)
            evaluations.append(
                workers.Unit(
                    f"{task}: evaluate {method} seed {seed}",
                    evaluate_trained,
                    (cfg, method, seed),
                    (trained.key,),
                    WEIGHTS["evaluate"],
                )
            )
    report = workers.Unit(
        f"{task}: report", report_task, cfg, tuple(u.key for u in evaluations), WEIGHTS["report"]
    )
    return [data, *runs, *evaluations, report]


def install_reuse(reuse: dict[Path, list[Path]]) -> None:
    """A sweep's finished sibling points, in a worker (stage.REUSE)."""
    stage.REUSE.update(reuse)


def data_stages(cfg: StudyConfig) -> None:
    for name in DATA_STAGES:
        run_stage(name, cfg)


def train_one(job: tuple[StudyConfig, str, int]) -> None:
    cfg, method, seed = job
    train = stage_module("train")
    train.train_method(cfg, method, seed, train.bucket_records(RunDir(cfg.run_dir)))


def evaluate_untrained(cfg: StudyConfig) -> None:
    evaluate = stage_module("evaluate")
    for spec in evaluate.base_and_coldstart(cfg):
        evaluate.evaluate_model(cfg, spec)


def evaluate_trained(job: tuple[StudyConfig, str, int]) -> None:
    cfg, method, seed = job
    evaluate = stage_module("evaluate")
    spec = evaluate.model_of(cfg, method, seed)
    if spec is not None:  # None: its training set was empty
        evaluate.evaluate_model(cfg, spec)


def report_task(cfg: StudyConfig) -> None:
    run_stage("report", cfg)
