"""The data verbs of `dcsft` (registered in dcsft.cli): export a curated bucket, compare two
bucketings, import the authors' rollouts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from dcsft.cli_common import RunDirOpt, SetOpt, each_task, guarded, read_config, setup
from dcsft.config import StudyConfig
from dcsft.console import console
from dcsft.errors import ConfigError, DataError
from dcsft.rundir import RunDir

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
