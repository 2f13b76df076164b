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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dcsft import coldstart, curate, evaluate, prepare, pretrain, profiling
from dcsft.config import StudyConfig
from dcsft.data.splits import eval_splits, split_specs
from dcsft.distributed import part_files
from dcsft.errors import StageError
from dcsft.report import run as report
from dcsft.rundir import STARTED, RunDir, Stage, read_json
from dcsft.stage import upstream
from dcsft.stages import STAGES
from dcsft.train import run as train


@dataclass(frozen=True)
class StageStatus:
    name: str
    folder: Path
    state: str
    detail: str
    stage: str = ""  # its stage in dcsft.stages
    model: tuple[str, int | None] | None = None  # the model this row makes (pretrain, coldstart, train)


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
    steps = [
        int(m.group(1))
        for p in stage.root.glob("trainer/checkpoint-*")
        if (m := re.fullmatch(r"checkpoint-(\d+)", p.name))
    ]
    return f"checkpoint at step {max(steps)}" if steps else "no checkpoint yet"


def done_detail(stage: Stage) -> str:
    try:
        stats = read_json(stage.root / "stats.json")
    except FileNotFoundError:
        return ""
    if stats.get("n_a"):
        return "n/a (0 samples)"
    return f"{stats.get('seconds', 0):.1f} s"


def entry(
    name: str,
    stage: Stage,
    current: Callable[[], str],
    progress: Callable[[], str],
    after: list[StageStatus],
    model: tuple[str, int | None] | None = None,
) -> StageStatus:
    state = state_of(stage, current, all(s.state == "done" for s in after))
    detail = done_detail(stage) if state == "done" else progress() if state == "partial" else ""
    return StageStatus(name, stage.root, state, detail, stage.name, model)


def statuses(cfg: StudyConfig) -> list[StageStatus]:
    """Every stage's rows in the study's order; a row is done only if the rows of its upstream
    stages (dcsft.stages) are."""
    rundir = RunDir(cfg.run_dir)
    rows: dict[str, list[StageStatus]] = {}
    for spec in STAGES:
        after = [row for name in spec.upstream for row in rows[name]]
        rows[spec.name] = ROWS[spec.name](cfg, rundir, after)
    return [row for stage_rows in rows.values() for row in stage_rows]


def pretrain_rows(cfg: StudyConfig, rundir: RunDir, after: list[StageStatus]) -> list[StageStatus]:
    return [
        entry(
            "pretrain",
            rundir.pretrain,
            lambda: pretrain.stage_fingerprint(cfg),
            lambda: "building",
            after,
            ("base", None),
        )
    ]


def prepare_rows(cfg: StudyConfig, rundir: RunDir, after: list[StageStatus]) -> list[StageStatus]:
    n_images = sum(spec.size for spec in split_specs(cfg))
    return [
        entry(
            "prepare",
            rundir.prepare,
            lambda: prepare.stage_fingerprint(cfg),
            lambda: f"{len(list(rundir.prepare.root.glob('images/*/*.png')))}/{n_images} images",
            after,
        )
    ]


def coldstart_rows(cfg: StudyConfig, rundir: RunDir, after: list[StageStatus]) -> list[StageStatus]:
    return [
        entry(
            "coldstart",
            rundir.coldstart,
            lambda: coldstart.stage_fingerprint(cfg),
            lambda: checkpoint_detail(rundir.coldstart),
            after,
            ("coldstart", None),
        )
    ]


def profile_rows(cfg: StudyConfig, rundir: RunDir, after: list[StageStatus]) -> list[StageStatus]:
    if profiling.is_imported(rundir):  # the authors' rollouts: made without this run's cold start
        after = [row for row in after if row.stage != "coldstart"]
    return [
        entry(
            "profile",
            rundir.profile,
            lambda: profiling.stage_fingerprint(cfg),
            lambda: f"{lines_in(rundir.profile_file)}/{cfg.data.known_size('train') or '?'} samples",
            after,
        )
    ]


def curate_rows(cfg: StudyConfig, rundir: RunDir, after: list[StageStatus]) -> list[StageStatus]:
    return [entry("curate", rundir.curate, lambda: curate.stage_fingerprint(cfg), lambda: "", after)]


def train_rows(cfg: StudyConfig, rundir: RunDir, after: list[StageStatus]) -> list[StageStatus]:
    return [
        entry(
            f"train {method} seed {seed}",
            rundir.train(method, seed),
            lambda m=method, s=seed: train.stage_fingerprint(cfg, m, s),
            lambda st=rundir.train(method, seed): checkpoint_detail(st),
            after,
            (method, seed),
        )
        for method in cfg.train.methods
        for seed in cfg.train_seeds
    ]


def evaluate_rows(cfg: StudyConfig, rundir: RunDir, after: list[StageStatus]) -> list[StageStatus]:
    """One row per model; an evaluation waits on the prepared splits and on the row that made its
    model, not on the other models'."""
    splits = eval_splits(cfg)
    n_predictions = sum(spec.size for spec in split_specs(cfg) if spec.name in splits)

    def evaluation(
        name: str, seed: int | None, spec: Callable[[], evaluate.ModelToEvaluate | None]
    ) -> StageStatus:
        stage = rundir.evaluate(name, seed)
        title = name if seed is None else f"{name} seed {seed}"
        needs = [row for row in after if row.model is None or row.model == (name, seed)]
        return entry(
            f"evaluate {title}",
            stage,
            lambda: evaluate.stage_fingerprint(cfg, spec()),
            lambda: f"{sum(lines_in(stage.root / f'{s}.jsonl') for s in splits)}/{n_predictions} predictions",
            needs,
        )

    made = [row.model for row in after if row.model is not None and row.detail != "n/a (0 samples)"]
    return [
        evaluation(name, seed, lambda n=name, s=seed: evaluate.model_of(cfg, n, s)) for name, seed in made
    ]


def report_rows(cfg: StudyConfig, rundir: RunDir, after: list[StageStatus]) -> list[StageStatus]:
    return [
        entry(
            "report",
            rundir.report,
            lambda: report.stage_fingerprint(cfg, report_inputs(cfg)),
            lambda: "",
            after,
        )
    ]


ROWS = {
    "pretrain": pretrain_rows,
    "prepare": prepare_rows,
    "coldstart": coldstart_rows,
    "profile": profile_rows,
    "curate": curate_rows,
    "train": train_rows,
    "evaluate": evaluate_rows,
    "report": report_rows,
}


def report_inputs(cfg: StudyConfig) -> list[str]:
    inputs = [upstream(RunDir(cfg.run_dir).curate)]
    report.collect_models(cfg, inputs)
    return inputs
