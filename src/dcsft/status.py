"""status: what a run directory holds, stage by stage, without changing anything.

Each stage (and each training run and evaluation) is one of:
- done: its DONE marker matches the current config and inputs, so `study` will skip it;
- stale: finished, but for another config or other inputs, so it will be rebuilt;
- partial: started and not finished (killed or failed): rerunning continues it, keeping its
  finished units (images, batches, checkpoints);
- missing: never started.

Example: dcsft status --run-dir runs/default
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dcsft import coldstart, curate, evaluate, prepare, profiling
from dcsft.config import StudyConfig
from dcsft.data.splits import id_split, split_specs
from dcsft.distributed import part_files
from dcsft.models.base import base_identity
from dcsft.report import run as report
from dcsft.rundir import STARTED, RunDir, Stage, read_json
from dcsft.stage import upstream
from dcsft.errors import StageError
from dcsft.train import run as train


@dataclass(frozen=True)
class StageStatus:
    name: str
    folder: Path
    state: str
    detail: str


def state_of(stage: Stage, current: Callable[[], str], upstream_done: bool) -> str:
    """A stage is done only if its upstream stages are: a stale upstream will be rebuilt, and so
    will everything below it."""
    try:
        expected = current() if upstream_done else None
    except (StageError, FileNotFoundError, KeyError):  # an upstream stage is not finished
        expected = None
    if expected is not None and stage.is_done(expected):
        return "done"
    if stage.marker.exists():
        return "stale"
    return "partial" if (stage.root / STARTED).exists() else "missing"


def lines_in(path: Path) -> int:
    """Complete lines of an append-only file and of its per-rank partial files (a data-parallel
    run's); read only: status never truncates a torn line."""
    files = [path, *(file for file, _, _ in part_files(path))]
    return sum(file.read_bytes().count(b"\n") for file in files if file.exists())


def checkpoint_detail(stage: Stage) -> str:
    steps = [int(m.group(1)) for p in stage.root.glob("trainer/checkpoint-*")
             if (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    return f"checkpoint at step {max(steps)}" if steps else "no checkpoint yet"


def done_detail(stage: Stage) -> str:
    try:
        stats = read_json(stage.root / "stats.json")
    except FileNotFoundError:
        return ""
    if stats.get("n_a"):
        return "n/a (0 samples)"
    return f"{stats.get('seconds', 0):.1f} s"


def entry(name: str, stage: Stage, current: Callable[[], str], progress: Callable[[], str],
          after: list[StageStatus] = ()) -> StageStatus:
    state = state_of(stage, current, all(s.state == "done" for s in after))
    detail = done_detail(stage) if state == "done" else progress() if state == "partial" else ""
    return StageStatus(name, stage.root, state, detail)


def statuses(cfg: StudyConfig) -> list[StageStatus]:
    rundir = RunDir(cfg.run_dir)
    n_images = sum(spec.size for spec in split_specs(cfg))
    prep = entry("prepare", rundir.prepare, lambda: prepare.stage_fingerprint(cfg),
                 lambda: f"{len(list(rundir.prepare.root.glob('images/*/*.png')))}/{n_images} images")
    cold = entry("coldstart", rundir.coldstart, lambda: coldstart.stage_fingerprint(cfg, base_identity(cfg)),
                 lambda: checkpoint_detail(rundir.coldstart), [prep])
    prof = entry("profile", rundir.profile, lambda: profiling.stage_fingerprint(cfg),
                 lambda: f"{lines_in(rundir.profile_file)}/{cfg.data.n_train} samples", [cold])
    cur = entry("curate", rundir.curate, lambda: curate.stage_fingerprint(cfg), lambda: "", [prof])
    trained = {}
    for method in cfg.train.methods:
        for seed in cfg.train_seeds:
            stage = rundir.train(method, seed)
            trained[method, seed] = entry(f"train {method} seed {seed}", stage,
                                          lambda m=method, s=seed: train.stage_fingerprint(cfg, m, s),
                                          lambda st=stage: checkpoint_detail(st), [cur, cold])
    evaluations = evaluation_statuses(cfg, prep, cold, trained)
    done = [prep, cold, prof, cur, *trained.values(), *evaluations]
    rep = entry("report", rundir.report, lambda: report.stage_fingerprint(cfg, report_inputs(cfg)), lambda: "", done)
    return [*done, rep]


def evaluation_statuses(cfg: StudyConfig, prep: StageStatus, cold: StageStatus,
                        trained: dict[tuple[str, int], StageStatus]) -> list[StageStatus]:
    rundir = RunDir(cfg.run_dir)
    n_predictions = cfg.data.n_test * (1 + len(cfg.data.ood_splits))
    splits = [id_split(cfg.task), *cfg.data.ood_splits]

    def evaluation(name: str, seed: int | None, spec: Callable[[], evaluate.ModelToEvaluate | None],
                   after: list[StageStatus]) -> StageStatus:
        stage = rundir.evaluate(name, seed)
        title = name if seed is None else f"{name} seed {seed}"
        return entry(f"evaluate {title}", stage, lambda: evaluate.stage_fingerprint(cfg, spec()),
                     lambda: f"{sum(lines_in(stage.root / f'{s}.jsonl') for s in splits)}/{n_predictions} predictions",
                     after)

    rows = [evaluation("base", None, lambda: evaluate.base_and_coldstart(cfg)[0], [prep]),
            evaluation("coldstart", None, lambda: evaluate.base_and_coldstart(cfg)[1], [prep, cold])]
    for (method, seed), train_status in trained.items():
        if train_status.detail == "n/a (0 samples)":
            continue  # nothing to evaluate
        rows.append(evaluation(method, seed, lambda m=method, s=seed: evaluate.trained_model(cfg, m, s),
                               [prep, train_status]))
    return rows


def report_inputs(cfg: StudyConfig) -> list[str]:
    inputs = [upstream(RunDir(cfg.run_dir).curate, "curate")]
    report.collect_models(cfg, inputs)
    return inputs
