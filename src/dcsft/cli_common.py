"""What the `dcsft` verbs share: the app, the options every verb takes, reading the config and
holding the run directory, and one line (never a traceback) for a known problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape

from dcsft.config import StudyConfig, dump_config, load_config
from dcsft.console import console, quiet_libraries
from dcsft.rundir import RunDir, hold_lock, write_text

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


def guarded(action: Callable[[], None]) -> None:
    """Known problems end in one line and exit code 2, never a traceback (dcsft.errors)."""
    from dcsft.errors import run_guarded

    code = run_guarded(action)
    if code:
        raise typer.Exit(code)
