"""The `dcsft` command: one verb per stage, `study` for all of them, `pretrain` for the embedded base."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import typer

from dcsft.config import ConfigError, StudyConfig, dump_config, load_config
from dcsft.console import console
from dcsft.data.records import DataError
from dcsft.rundir import RunDir, RunDirBusy, hold_lock, write_text
from dcsft.stage import StageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Difficulty-curated post-training (DC-SFT) of vision-language models.")

ConfigArg = typer.Argument(None, help="Study config YAML; default: the packaged embedded study.")
SetOpt = typer.Option([], "--set", "-s", help="Override a config key, e.g. --set profile.k=8 (repeatable).")
RunDirOpt = typer.Option(None, "--run-dir", "-r", help="Run directory (overrides run_dir in the config).")
SeedsOpt = typer.Option(None, "--seeds", help="Training runs per method (seeds seed, seed+1, ...); tables show mean ± std.")


def quiet_libraries() -> None:
    """Our own progress bars and summaries replace the libraries' per-call bars and notices."""
    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def read_config(config: Optional[Path], overrides: list[str], run_dir: Optional[Path],
                seeds: Optional[int]) -> StudyConfig:
    flags = [*([f"run_dir={run_dir}"] if run_dir else []), *([f"seeds={seeds}"] if seeds is not None else [])]
    return load_config(config, [*overrides, *flags])


def setup(config: Optional[Path], overrides: list[str], run_dir: Optional[Path], seeds: Optional[int]) -> StudyConfig:
    """The config of a command that writes to the run directory, which it then holds alone."""
    quiet_libraries()
    cfg = read_config(config, overrides, run_dir, seeds)
    import torch

    torch.set_num_threads(cfg.model.threads)
    hold_lock(RunDir(cfg.run_dir).root)
    write_text(RunDir(cfg.run_dir).root / "config.yaml", dump_config(cfg))
    return cfg


def guarded(action: Callable[[], None]) -> None:
    """Known problems end in one line and exit code 2, never a traceback."""
    try:
        action()
    except (ConfigError, StageError, DataError, RunDirBusy) as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(2) from None
    except OSError as err:  # disk full, read-only run directory, ...: finished work stays on disk
        where = f"{err.filename}: " if err.filename else ""
        console.print(f"[bold red]error:[/] {where}{err.strerror or err}; finished work is kept, rerun to continue")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished work is kept; rerun the same command to continue")
        raise typer.Exit(130) from None


def stage_command(name: str, doc: str):
    def command(config: Optional[Path] = ConfigArg, set_: list[str] = SetOpt, run_dir: Optional[Path] = RunDirOpt,
                seeds: Optional[int] = SeedsOpt):
        from dcsft.study import STAGES

        guarded(lambda: STAGES[name](setup(config, set_, run_dir, seeds)))

    command.__doc__ = doc
    app.command(name)(command)


for _name, _doc in [
    ("prepare", "Draw or load every split and write its records."),
    ("coldstart", "Full fine-tune of the base on the cold-start set."),
    ("profile", "Sample k responses per training sample and score them."),
    ("curate", "Split the training set into easy / medium / hard buckets."),
    ("train", "Train every method from the cold start (SFT on buckets, hard mixes, curriculum, GRPO), per seed."),
    ("evaluate", "Greedy accuracy on the ID and OOD splits for every model and seed."),
    ("report", "Tables (accuracy, buckets, compute), figures, report.md/.html and results.json."),
]:
    stage_command(_name, _doc)


@app.command()
def study(config: Optional[Path] = ConfigArg, set_: list[str] = SetOpt, run_dir: Optional[Path] = RunDirOpt,
          seeds: Optional[int] = SeedsOpt):
    """Run every stage (finished ones skip themselves) and print the tables."""
    from dcsft import study as study_module

    def action():
        started = time.time()
        cfg = setup(config, set_, run_dir, seeds)
        report = study_module.run(cfg)
        console.print()
        print(report)
        console.print(f"[bold]study finished[/] in {time.time() - started:.0f} s; run directory {cfg.run_dir}; "
                      f"report with figures: {RunDir(cfg.run_dir).report.root / 'report.html'}")

    guarded(action)


@app.command()
def status(config: Optional[Path] = ConfigArg, set_: list[str] = SetOpt, run_dir: Optional[Path] = RunDirOpt,
           seeds: Optional[int] = SeedsOpt):
    """Show each stage of the run directory as done / stale / partial / missing, with counts."""

    def action():
        from rich.table import Table

        from dcsft.status import statuses

        quiet_libraries()
        cfg = read_config(config, set_, run_dir, seeds)
        colours = {"done": "green", "stale": "yellow", "partial": "magenta", "missing": "dim"}
        table = Table("stage", "state", "detail", "folder", title=f"run directory {cfg.run_dir}")
        for row in statuses(cfg):
            table.add_row(row.name, f"[{colours[row.state]}]{row.state}[/]", row.detail, str(row.folder))
        console.print(table)

    guarded(action)


@app.command()
def pretrain(config: Optional[Path] = ConfigArg, set_: list[str] = SetOpt,
             out: Optional[Path] = typer.Option(None, help="Folder to write the base to; default: the machine cache.")):
    """Pretrain the embedded base model (the stand-in for a released Qwen2.5-VL)."""
    from dcsft.models.base import build_embedded, cache_root, embedded_key

    def action():
        quiet_libraries()
        cfg = load_config(config, set_)
        import torch

        torch.set_num_threads(cfg.model.threads)
        folder = out or cache_root() / "base" / embedded_key(cfg.pretrain)
        info = build_embedded(cfg.pretrain, folder)
        console.print(f"base written to {folder}: held-out object-name accuracy {info['heldout_name_accuracy']} "
                      f"after {info['seconds']} s")

    guarded(action)



