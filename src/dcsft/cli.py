"""The `dcsft` command: one verb per stage (dcsft.stages), `study` for all of them, and the data and
setup verbs (plan, status, sweep, export, compare-buckets, import-rollouts, check-launch, build-base,
build-manifest)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape

from dcsft import cli_data
from dcsft.cli_common import (
    ConfigArg,
    RunDirOpt,
    SeedsOpt,
    SetOpt,
    TaskOpt,
    app,
    each_task,
    guarded,
    read_config,
    setup,
)
from dcsft.config import StudyConfig, load_config
from dcsft.console import console, quiet_libraries
from dcsft.errors import ConfigError
from dcsft.stages import BY_NAME, STAGES


def begun_tasks(stage: str, tasks: list[StudyConfig]) -> list[StudyConfig]:
    """The tasks a stage that reads upstream output runs on: of a study's several tasks, those whose
    run directory exists, when some do (e.g. rollouts imported for one task), each other one named
    on one line; every task when none does, whose stage then names what is missing."""
    begun = [t for t in tasks if Path(t.run_dir).is_dir()]
    if len(tasks) < 2 or not BY_NAME[stage].upstream or not begun or len(begun) == len(tasks):
        return tasks
    for t in tasks:
        if t not in begun:
            console.print(
                escape(f"  {t.task}: {t.run_dir} does not exist, skipped (--task {t.task} runs it)")
            )
    return begun


def stage_command(name: str, doc: str):
    def command(
        config: Path | None = ConfigArg,
        set_: list[str] = SetOpt,
        run_dir: Path | None = RunDirOpt,
        seeds: int | None = SeedsOpt,
        task: str | None = TaskOpt,
    ):
        from dcsft.study import run_stage

        def action():
            for task_cfg in begun_tasks(name, each_task(setup(config, set_, run_dir, seeds, [name]), task)):
                run_stage(name, task_cfg)

        guarded(action)

    command.__doc__ = doc
    app.command(name)(command)


for _spec in STAGES:
    stage_command(_spec.name, _spec.doc)


@app.command()
def study(
    config: Path | None = ConfigArg,
    set_: list[str] = SetOpt,
    run_dir: Path | None = RunDirOpt,
    seeds: int | None = SeedsOpt,
    task: str | None = TaskOpt,
):
    """Run every stage of every task (finished ones skip themselves) and print the tables."""
    from dcsft import study as study_module

    def action():
        started = time.time()
        cfg = setup(config, set_, run_dir, seeds)
        reports = study_module.run_tasks(cfg, each_task(cfg, task))
        console.print()
        for report in reports.values():
            print(report)
        where = ", ".join(str(path) for path in reports)
        console.print(
            f"[bold]study finished[/] in {time.time() - started:.0f} s; run directory {cfg.run_dir}; "
            f"reports with figures: {where}"
        )
        if cfg.seeds == 1:
            console.print(
                "one training seed: the intervals above hold item noise only, and the MDE misses the "
                "seed-to-seed term; `dcsft study full` runs the powered study (three seeds, every method, "
                "larger test splits)"
            )

    guarded(action)


@app.command()
def sweep(
    config: Path | None = ConfigArg,
    over: list[str] = typer.Option(
        ...,
        "--over",
        "-o",
        help="A key and its values, e.g. --over data.label_noise=0,0.05,0.1 (repeat: a grid).",
    ),
    set_: list[str] = SetOpt,
    run_dir: Path | None = typer.Option(
        None,
        "--run-dir",
        "-r",
        help="Folder of the sweep (one study per point in it); default: <run_dir>-sweep-<key>.",
    ),
    seeds: int | None = SeedsOpt,
    task: str | None = TaskOpt,
):
    """One study per value of the swept keys, then a report of each method's paired difference to SFT
    against them.

    Example: dcsft sweep full --task classification --over data.label_noise=0,0.05,0.1,0.2
    """
    from dcsft import sweep as sweep_module
    from dcsft.launch import preflight

    def action():
        started = time.time()
        quiet_libraries()
        cfg = read_config(config, set_, None, seeds)
        root = run_dir or sweep_module.default_root(cfg, over)
        flags = [*set_, *([f"seeds={seeds}"] if seeds is not None else [])]
        points = sweep_module.grid(over)
        configs = sweep_module.point_configs(
            config, flags, root, points
        )  # every point checked before any work
        for note in preflight(configs[0]):
            console.print(f"[yellow]note:[/] {escape(note)}")
        import torch

        torch.set_num_threads(cfg.model.threads)
        path = sweep_module.run(configs, points, root, task)
        print(path.read_text())
        console.print(
            f"[bold]sweep finished[/] in {time.time() - started:.0f} s: {len(points)} studies in {root}; "
            f"report {path.with_suffix('.html')}"
        )

    guarded(action)


@app.command()
def status(
    config: Path | None = ConfigArg,
    set_: list[str] = SetOpt,
    run_dir: Path | None = RunDirOpt,
    seeds: int | None = SeedsOpt,
    task: str | None = TaskOpt,
):
    """Show each stage of the run directory as done / stale / partial / missing, with counts."""

    def action():
        from rich.table import Table

        from dcsft.status import statuses

        quiet_libraries()
        cfg = read_config(config, set_, run_dir, seeds)
        colours = {"done": "green", "stale": "yellow", "partial": "magenta", "missing": "dim"}
        table = Table("stage", "state", "detail", "folder", title=f"run directory {cfg.run_dir}")
        for task_cfg in each_task(cfg, task):
            prefix = f"{task_cfg.task} " if cfg.tasks else ""
            for row in statuses(task_cfg):
                table.add_row(
                    prefix + row.name, f"[{colours[row.state]}]{row.state}[/]", row.detail, str(row.folder)
                )
        console.print(table)

    guarded(action)


@app.command("build-base")
def build_base(
    config: Path | None = ConfigArg,
    set_: list[str] = SetOpt,
    out: Path = typer.Option(..., help="Folder to write the base to, e.g. src/dcsft/assets/<name>."),
):
    """Pretrain the embedded base model into a folder (how the weights shipped in the package are made).

    A study finds or builds its base itself (`dcsft pretrain`); this writes one where you say.
    """
    from dcsft.models.base import build_embedded

    def action():
        quiet_libraries()
        cfg = load_config(config, set_)
        import torch

        torch.set_num_threads(cfg.model.threads)
        info = build_embedded(cfg.pretrain, out)
        console.print(
            f"base written to {out}: held-out object-name accuracy {info['heldout_name_accuracy']} "
            f"after {info['seconds']} s"
        )

    guarded(action)


@app.command("plan")
def plan_command(
    config: Path | None = ConfigArg,
    set_: list[str] = SetOpt,
    run_dir: Path | None = RunDirOpt,
    seeds: int | None = SeedsOpt,
    task: str | None = TaskOpt,
    gpus: int = typer.Option(
        1, "--gpus", min=1, help="GPUs the per-device batch is multiplied by in the step counts."
    ),
    sample: int = typer.Option(
        16, "--sample", min=0, help="Images decoded per split (seeded); all are checked to exist."
    ),
    gpu_memory: float = typer.Option(
        80.0, "--gpu-memory", help="GB of one GPU: a stage estimated above it is a warning."
    ),
):
    """Check a config and estimate its cost (data, steps, tokens, GPU memory) without loading a model.

    Exit code 1 when something would stop the study (each problem on one line), 2 when the config
    itself does not load.

    Example: dcsft plan configs/paper/imagenet_3b.yaml --set data.root=/data/imagenet
    """

    def action():
        from dcsft.plan import plan_study

        cfg = read_config(config, set_, run_dir, seeds)
        if plan_study(cfg, each_task(cfg, task), gpus=gpus, sample=sample, gpu_memory=gpu_memory):
            raise typer.Exit(1)

    guarded(action)


@app.command("check-launch")
def check_launch(
    config_files: list[Path] = typer.Argument(..., metavar="FILES", help="accelerate config files."),
):
    """Dry-run accelerate configs: what `accelerate launch --config_file FILE -m dcsft train` would start.

    Example: dcsft check-launch configs/accelerate/*.yaml
    """
    from dcsft.launch import dry_run

    def action():
        for config_file in config_files:
            try:
                summary = dry_run(config_file)
            except ValueError as err:  # accelerate's own refusals; ConfigError is a ValueError too
                raise ConfigError(f"{config_file}: {err}".splitlines()[0]) from None
            extra = {k: summary[k] for k in ("zero_stage", "fsdp_version", "state_dict_type") if k in summary}
            print(
                f"{config_file}: {summary['distributed_type']}, {summary['num_processes']} processes, "
                f"mixed precision {summary['mixed_precision']}"
                + "".join(f", {k} {v}" for k, v in extra.items())
            )

    guarded(action)


@app.command("build-manifest")
def build_manifest_command(
    source: Path = typer.Argument(
        ..., metavar="SRC_DIR", help="The authors' released lists (byyx666/DC-SFT data/)."
    ),
    out_dir: Path | None = typer.Argument(None, metavar="OUT_DIR", help="Default: dcsft's shipped assets."),
):
    """Rebuild the paper source's manifest and name map from the authors' released lists."""
    from dcsft.data.paper import MANIFEST, NAMES, PAPER_ASSETS, build_manifest, build_name_map

    def action():
        folder = out_dir or PAPER_ASSETS
        rows = build_manifest(source, folder / MANIFEST.name)
        classes = build_name_map(folder / MANIFEST.name, folder / NAMES.name)
        print(f"{folder / MANIFEST.name}: {rows} rows; {folder / NAMES.name}: {classes} classes")

    guarded(action)


# The data verbs (dcsft.cli_data), named here with the others.
app.command("export")(cli_data.export_bucket)
app.command("compare-buckets")(cli_data.compare_buckets_command)
app.command("import-rollouts")(cli_data.import_rollouts_command)
