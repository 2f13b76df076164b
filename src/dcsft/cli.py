"""The `dcsft` command: one verb per stage (dcsft.stages), `study` for all of them, and the data and
setup verbs (plan, status, sweep, export, compare-buckets, import-rollouts, check-launch, build-base,
build-manifest)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape

from dcsft.config import StudyConfig, dump_config, load_config
from dcsft.console import console, quiet_libraries
from dcsft.errors import ConfigError, DataError
from dcsft.rundir import RunDir, hold_lock, write_text
from dcsft.stages import BY_NAME, STAGES

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Difficulty-curated post-training (DC-SFT) of vision-language models.",
)

ConfigArg = typer.Argument(None, help="Study config YAML; default: the packaged embedded study.")
SetOpt = typer.Option([], "--set", "-s", help="Override a config key, e.g. --set profile.k=8 (repeatable).")
RunDirOpt = typer.Option(None, "--run-dir", "-r", help="Run directory (overrides run_dir in the config).")
SeedsOpt = typer.Option(
    None, "--seeds", help="Training runs per method (seeds seed, seed+1, ...); tables show mean ± std."
)
TaskOpt = typer.Option(
    None, "--task", "-t", help="Run only this task of the study (default: each of its tasks)."
)


def read_config(
    config: Path | None, overrides: list[str], run_dir: Path | None, seeds: int | None
) -> StudyConfig:
    flags = [*([f"run_dir={run_dir}"] if run_dir else []), *([f"seeds={seeds}"] if seeds is not None else [])]
    return load_config(config, [*overrides, *flags])


def setup(
    config: Path | None,
    overrides: list[str],
    run_dir: Path | None,
    seeds: int | None,
    stages: list[str] | None = None,
) -> StudyConfig:
    """The config of a command that writes to the run directory, which it then holds alone;
    settings the `stages` (default: all) cannot run here (vLLM, DeepSpeed, bf16 without a GPU)
    end it before any work."""
    from dcsft.launch import preflight

    quiet_libraries()
    cfg = read_config(config, overrides, run_dir, seeds)
    for note in preflight(cfg, stages):
        console.print(f"[yellow]note:[/] {escape(note)}")
    import torch

    torch.set_num_threads(cfg.model.threads)
    from dcsft import distributed

    if (
        distributed.is_main()
    ):  # under torchrun / accelerate launch, rank 0 holds the run directory for all ranks
        hold_lock(RunDir(cfg.run_dir).root)
        write_text(RunDir(cfg.run_dir).root / "config.yaml", dump_config(cfg))
    return cfg


def each_task(cfg: StudyConfig, task: str | None) -> list[StudyConfig]:
    """The single-task configs a command runs: `--task`, else every task of the study."""
    return [cfg.for_task(name) for name in ([task] if task else cfg.task_names)]


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


def guarded(action: Callable[[], None]) -> None:
    """Known problems end in one line and exit code 2, never a traceback (dcsft.errors)."""
    from dcsft.errors import run_guarded

    code = run_guarded(action)
    if code:
        raise typer.Exit(code)


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


# --- data commands: export a curated subset, compare bucketings, import the authors' rollouts ---

EXPORT_BUCKETS = ("easy", "medium", "hard", "all")
DataTaskOpt = typer.Option(None, "--task", "-t", help="The task to use, in a study of several tasks.")


def one_task(cfg: StudyConfig, task: str | None) -> StudyConfig:
    """The single task a data command works on: `--task`, or the study's only task."""
    if not task and len(cfg.task_names) > 1:
        where = ", ".join(f"{name} in {Path(cfg.run_dir) / name}" for name in cfg.task_names)
        raise ConfigError(f"this study has several tasks ({where}): pick one with --task")
    return each_task(cfg, task)[0]


def export_run_dir(source: Path, set_: list[str], run_dir: Path | None, task: str | None) -> RunDir:
    """A run directory given directly, or the (task's) run directory of a config file."""
    if not source.exists():
        raise DataError(f"{source}: no such run directory or config file")
    if source.is_dir():
        if run_dir is not None or set_ or task:
            raise ConfigError(
                f"{source} is a run directory: --run-dir, --set and --task go with a config file"
            )
        tasks = sorted(p.name for p in source.iterdir() if RunDir(p).curate.root.is_dir())
        if tasks and not RunDir(source).curate.root.exists():
            raise ConfigError(
                f"{source} holds the run directories of several tasks ({', '.join(tasks)}): "
                f"export from one of them, e.g. {source / tasks[0]}"
            )
        return RunDir(source)
    return RunDir(one_task(read_config(source, set_, run_dir, None), task).run_dir)


@app.command("export")
def export_bucket(
    source: Path = typer.Argument(
        ...,
        metavar="RUN_DIR_OR_CONFIG",
        help="A run directory, or a study config (with --run-dir / --set / --task).",
    ),
    bucket: str = typer.Option(
        ..., "--bucket", "-b", help="easy, medium, hard or all (every curated sample)."
    ),
    fmt: str = typer.Option(
        "sft",
        "--format",
        "-f",
        help="records: the authors' problem/solution/image; sft: ms-swift's messages/images; "
        "trl: TRL's prompt/completion rows (answer-only loss in SFTTrainer); "
        "verl: a .parquet for verl / EasyR1 RL; hf: a datasets folder (save_to_disk) for TRL / open-r1.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="File to write: .json (one list) or .jsonl (one per line); .parquet for verl; a folder for hf.",
    ),
    with_id: bool = typer.Option(False, "--with-id", help="Add each record's id to sft rows."),
    set_: list[str] = SetOpt,
    run_dir: Path | None = RunDirOpt,
    task: str | None = DataTaskOpt,
):
    """Write one curated bucket's training records in the authors', ms-swift's, TRL's, verl's or
    a datasets format (verl and hf carry each sample's bucket and pass rate).

    Example: dcsft export runs/default --bucket medium --format sft --out medium.jsonl
    """
    from dcsft.data.exports import EXPORTS, export_curated
    from dcsft.data.formats import FORMATS, export_records
    from dcsft.prepared import curated_records

    def action():
        name = {"middle": "medium"}.get(bucket.strip().lower(), bucket.strip().lower())
        if name not in EXPORT_BUCKETS:
            raise DataError(f"--bucket {bucket!r}: expected one of {', '.join(EXPORT_BUCKETS)}")
        if fmt not in (*FORMATS, *EXPORTS):
            raise DataError(f"--format {fmt!r}: expected one of {', '.join((*FORMATS, *EXPORTS))}")
        if fmt in FORMATS and out.suffix not in (".json", ".jsonl"):
            raise DataError(f"--out {out}: name the file .json or .jsonl")
        if fmt == "verl" and out.suffix != ".parquet":
            raise DataError(f"--out {out}: name the file .parquet (verl and EasyR1 read it by its suffix)")
        if fmt != "hf" and out.is_dir():
            raise DataError(f"--out {out}: is a folder, expected a file name")
        rundir = export_run_dir(source, set_, run_dir, task)
        if fmt in EXPORTS:
            count = export_curated(rundir, name, fmt, out)
        else:
            count = export_records(curated_records(rundir, name), out, fmt, with_id=with_id)
        if not count:
            console.print(
                f"[yellow]warning:[/] the {name} bucket of {rundir.root} is empty; wrote an empty list"
            )
        console.print(f"wrote {count} {name} records ({fmt} format) to {escape(str(out))}")

    guarded(action)


@app.command("compare-buckets")
def compare_buckets_command(
    a: str = typer.Argument(
        ...,
        metavar="A",
        help="Run directory, profile.jsonl / assignments.jsonl, folder of "
        "the authors' bucket lists, manifest, or paper:3b / paper:7b.",
    ),
    b: str = typer.Argument(..., metavar="B", help="The other bucketing, in any of A's forms."),
    size: str = typer.Option(
        "3b", "--size", help="Model size of the authors' bucket lists or manifest (3b, 7b)."
    ),
    a_name: str | None = typer.Option(None, "--a-name", help="Name of A in the table (default: A as given)."),
    b_name: str | None = typer.Option(None, "--b-name", help="Name of B in the table (default: B as given)."),
):
    """Confusion matrix, agreement and Cohen's kappa of two easy/medium/hard bucketings.

    Example: dcsft compare-buckets runs/imagenet-3b paper:3b
    """
    from dcsft.compare import compare_buckets, format_comparison, load_buckets
    from dcsft.data.paper import SIZES

    def load(where: str) -> dict[str, str]:
        try:
            return load_buckets(where, size)
        except ValueError as err:  # DataError, or a size / manifest name load_buckets refuses
            raise DataError(f"{where}: {err}" if where not in str(err) else str(err)) from None

    def action():
        if size not in SIZES:
            raise DataError(f"--size {size!r}: expected one of {', '.join(SIZES)}")
        result = compare_buckets(load(a), load(b))
        print(format_comparison(result, a_name or a, b_name or b), end="")

    guarded(action)


@app.command("import-rollouts")
def import_rollouts_command(
    files: list[Path] = typer.Argument(
        ..., metavar="FILES", help="The authors' rollout files, one per sampled draw (.json / .json.gz)."
    ),
    run_dir: Path | None = RunDirOpt,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Study config YAML; default: the packaged embedded study."
    ),
    set_: list[str] = SetOpt,
    task: str | None = typer.Option(
        None,
        "--task",
        "-t",
        help="The task, in a study of several tasks; default: grounding if every ground truth is a box, "
        "else classification.",
    ),
    image_root: Path | None = typer.Option(
        None,
        "--image-root",
        help="Folder the rollouts' images lie under (their relative path, <wnid>/<file> or file name), "
        "for training records built from the rollouts; default: the paths as written, relative ones "
        "from the rollout file's folder.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace a profile that dcsft sampled itself (or a partial prepare)."
    ),
):
    """Import the authors' rollout files as the run directory's profile (then `dcsft curate`).

    A run directory without prepared training records gets them from the rollouts (image, question,
    ground truth), so curate and export work straight away.

    Example: dcsft import-rollouts rollouts/train_*.json --run-dir runs/imagenet-3b
    """
    from dcsft import profiling
    from dcsft.data.rollouts import read_rollouts, rollout_task

    def action():
        rollouts = read_rollouts(files)  # bad files end here, before the run directory is touched
        study = setup(config, set_, run_dir, None)
        cfg = one_task(study, task or (rollout_task(rollouts) if len(study.task_names) > 1 else None))
        profile = profiling.import_rollout_files(cfg, rollouts, force, image_root)
        stage = RunDir(cfg.run_dir).profile
        console.print(
            f"[bold green]{'profile':>10}[/] imported: {escape(profile.summary())} "
            f"[dim]({escape(str(stage.root))})[/]"
        )
        if profile.built is not None:
            from shlex import join

            given = [
                *([str(config)] if config else []),
                *(word for s in set_ for word in ("--set", s)),
                *(["--run-dir", str(run_dir)] if run_dir else []),
            ]
            console.print(  # the commands that follow, for a run directory built from nothing
                escape(
                    f"next: {join(['dcsft', 'curate', *given])}, then "
                    f"{join(['dcsft', 'export', cfg.run_dir, '--bucket', 'medium', '--out', 'medium.jsonl'])}"
                )
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
