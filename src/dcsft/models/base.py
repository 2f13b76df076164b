"""Where the study's base model comes from: a local folder, a hub id, or the embedded base.

The embedded base is built in steps, like a released model's lineage: the shapes base
(phases 1-2 of models/pretrain.py: object names, colours, captions), on top of it the
grounding phase (phase 3: referring expressions -> boxes, with replay of phases 1-2's tasks),
and, for the reasoning task only, the reasoning phase on top of that (phase 4: multiple-choice
questions over drawn figures, with replay).
Each step is identified by a hash of its config (the grounding step's includes its parent's)
and looked up in order: the weights shipped in the package (src/dcsft/assets/, built by
`dcsft pretrain --out src/dcsft/assets/<name>`), the per-machine cache ($DCSFT_CACHE, default
~/.cache/dcsft/base/<hash>), else built once and cached.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from dcsft import console
from dcsft.config import PretrainConfig, StudyConfig
from dcsft.rundir import fingerprint, save_model_atomic, write_json

ASSETS = Path(str(resources.files("dcsft") / "assets"))
PACKAGED = ASSETS / "embedded-base"  # the shapes base (phases 1-2)
PACKAGED_GROUNDING = ASSETS / "embedded-base-grounding"  # the study's default base (phases 1-3)
PACKAGED_REASONING = ASSETS / "embedded-base-reasoning"  # the reasoning task's base (phases 1-4)
INFO_FILE = "pretrain.json"


def shapes_key(cfg: PretrainConfig) -> str:
    return fingerprint("embedded-base", cfg.model_dump(exclude={"grounding", "reasoning"}))


def embedded_key(cfg: PretrainConfig) -> str:
    """The key of the base the config describes: the shapes base, or it plus the grounding phase."""
    if cfg.reasoning.steps > 0:
        from dcsft.data import reasoning_world

        return fingerprint(
            "embedded-base-reasoning",
            embedded_key(parent_config(cfg)),
            cfg.reasoning.model_dump(),
            f"world-v{reasoning_world.VERSION}",  # a changed world needs its base rebuilt
        )
    if cfg.grounding.steps == 0:
        return shapes_key(cfg)
    return fingerprint("embedded-base-grounding", shapes_key(cfg), cfg.grounding.model_dump())


def parent_config(cfg: PretrainConfig) -> PretrainConfig:
    """The config of the base the reasoning phase continues from: the same, without phase 4."""
    return cfg.model_copy(update={"reasoning": cfg.reasoning.model_copy(update={"steps": 0})})


def cache_root() -> Path:
    return Path(os.environ.get("DCSFT_CACHE", Path.home() / ".cache" / "dcsft"))


def built_key(folder: Path) -> str | None:
    try:
        return json.loads((folder / INFO_FILE).read_text())["key"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None


def find_built(key: str) -> Path | None:
    for folder in (PACKAGED, PACKAGED_GROUNDING, PACKAGED_REASONING, cache_root() / "base" / key):
        if built_key(folder) == key:
            return folder
    return None


def parent_of(cfg: PretrainConfig) -> PretrainConfig | None:
    """The config of the base `cfg`'s last phase continues from: without the reasoning phase (for
    it), the shapes base (for the grounding phase); None for the shapes base, built from scratch."""
    if cfg.reasoning.steps > 0:
        return parent_config(cfg)
    if cfg.grounding.steps > 0:
        return parent_config(
            cfg.model_copy(update={"grounding": cfg.grounding.model_copy(update={"steps": 0})})
        )
    return None


class Phase(NamedTuple):
    """A base's last phase: what the progress bars call it and its pool, its training function,
    what its pretrain.json record omits (the later phases' settings), its pool size and steps."""

    name: str
    pool: str
    train: Callable
    omitted: set[str]
    pool_size: int
    steps: int


def last_phase(cfg: PretrainConfig) -> Phase:
    from dcsft.models import pretrain, pretrain_reasoning

    if cfg.reasoning.steps > 0:
        r = cfg.reasoning
        return Phase(
            "reasoning phase",
            "reasoning pool",
            pretrain_reasoning.pretrain_reasoning,
            set(),
            r.pool_size,
            r.steps,
        )
    if cfg.grounding.steps > 0:
        g = cfg.grounding
        return Phase(
            "grounding phase",
            "grounding pool",
            pretrain.pretrain_grounding,
            {"reasoning"},
            g.pool_size,
            g.steps,
        )
    steps = cfg.vision_steps + cfg.vlm_steps
    return Phase(
        "embedded base",
        "pretraining pool",
        pretrain.pretrain,
        {"grounding", "reasoning"},
        cfg.pool_size,
        steps,
    )


def build_embedded(cfg: PretrainConfig, out: Path) -> dict:
    """Build the base `cfg` describes and save it (model, processor, pretrain.json) to `out`;
    its last phase continues from the base before it, found or built first."""
    from dcsft.console import progress

    phase = last_phase(cfg)
    parent = parent_of(cfg)
    start_from = (str(locate_or_build(parent)),) if parent else ()
    with progress(f"drawing {phase.pool}", phase.pool_size) as pool_advance:
        with progress(f"pretraining {phase.name}", phase.steps) as advance:
            model, processor, stats = phase.train(*start_from, cfg, lambda _: advance(1), pool_advance)
    info = {
        "key": embedded_key(cfg),
        **({"parent": embedded_key(parent)} if parent else {}),
        "pretrain": cfg.model_dump(exclude=phase.omitted),
        **stats,
    }
    save_model_atomic(model, processor, out)
    write_json(out / INFO_FILE, info)  # written last: its key marks the folder complete
    return info


def locate_or_build(cfg: PretrainConfig) -> Path:
    key = embedded_key(cfg)
    found = find_built(key)
    if found:
        return found
    folder = cache_root() / "base" / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Tasks of one study run side by side (dcsft.workers) and may need the same base at once:
    # one builds it, the other waits for it and finds it built.
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built_key(folder) != key:
            console.console.print(f"[bold]pretraining the embedded base once for this machine[/] -> {folder}")
            build_embedded(cfg, folder)
    return folder


def base_identity(cfg: StudyConfig) -> str:
    """What stages downstream of the base depend on, known without loading or building it."""
    return cfg.model.base if cfg.model.base != "embedded" else f"embedded:{embedded_key(cfg.pretrain)}"
