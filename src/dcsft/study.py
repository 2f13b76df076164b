"""study: every stage in order, then the tables. `dcsft study` runs the embedded default.

Reads/Writes: the whole run directory (see dcsft.rundir). Stages that are already complete
for the current config skip themselves, so rerunning a finished study does nothing.

Example: dcsft study configs/paper/imagenet_3b.yaml --set train.steps=100
"""

from __future__ import annotations

from pathlib import Path

from dcsft import coldstart, curate, evaluate, prepare, profiling
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


def run(cfg: StudyConfig) -> str:
    """Run the study of one task; returns the report's markdown."""
    for stage in STAGES.values():
        stage(cfg)
    return (RunDir(cfg.run_dir).report.root / "report.md").read_text()


def run_tasks(cfg: StudyConfig, task_cfgs: list[StudyConfig]) -> dict[Path, str]:
    """Each task's study in turn, then the overview when the study has several tasks; returns
    {report path: markdown}."""
    reports = {RunDir(c.run_dir).report.root / "report.html": run(c) for c in task_cfgs}
    if len(cfg.task_names) > 1 and len(task_cfgs) == len(cfg.task_names):
        path = overview.run(cfg, task_cfgs)
        reports[path] = path.read_text()
    return reports
