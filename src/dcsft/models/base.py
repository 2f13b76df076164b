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
from importlib import resources
from pathlib import Path

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
        return fingerprint(
            "embedded-base-reasoning", embedded_key(parent_config(cfg)), cfg.reasoning.model_dump()
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


def build_embedded(cfg: PretrainConfig, out: Path) -> dict:
    """Build the base `cfg` describes and save it (model, processor, pretrain.json) to `out`;
    the grounding phase starts from the shapes base, found or built first."""
    from dcsft.console import progress
    from dcsft.models import pretrain, pretrain_reasoning

    if cfg.reasoning.steps > 0:
        parent = locate_or_build(parent_config(cfg))
        r = cfg.reasoning
        with progress("drawing reasoning pool", r.pool_size) as pool_advance:
            with progress("pretraining reasoning phase", r.steps) as advance:
                model, processor, stats = pretrain_reasoning.pretrain_reasoning(
                    parent, cfg, lambda _: advance(1), pool_advance
                )
        info = {
            "key": embedded_key(cfg),
            "parent": embedded_key(parent_config(cfg)),
            "pretrain": cfg.model_dump(),
            **stats,
        }
    elif cfg.grounding.steps == 0:
        total = cfg.vision_steps + cfg.vlm_steps
        with progress("drawing pretraining pool", cfg.pool_size) as pool_advance:
            with progress("pretraining embedded base", total) as advance:
                model, processor, stats = pretrain.pretrain(cfg, lambda _: advance(1), pool_advance)
        info = {
            "key": shapes_key(cfg),
            "pretrain": cfg.model_dump(exclude={"grounding", "reasoning"}),
            **stats,
        }
    else:
        parent = shapes_base(cfg)
        g = cfg.grounding
        with progress("drawing grounding pool", g.pool_size) as pool_advance:
            with progress("pretraining grounding phase", g.steps) as advance:
                model, processor, stats = pretrain.pretrain_grounding(
                    parent, cfg, lambda _: advance(1), pool_advance
                )
        info = {
            "key": embedded_key(cfg),
            "parent": shapes_key(cfg),
            "pretrain": cfg.model_dump(exclude={"reasoning"}),
            **stats,
        }
    save_model_atomic(model, processor, out)
    write_json(out / INFO_FILE, info)  # written last: its key marks the folder complete
    return info


def shapes_base(cfg: PretrainConfig) -> Path:
    """The phase-2 base the grounding phase continues from (built and cached if missing)."""
    shapes = cfg.model_copy(
        update={
            "grounding": cfg.grounding.model_copy(update={"steps": 0}),
            "reasoning": cfg.reasoning.model_copy(update={"steps": 0}),
        }
    )
    return locate_or_build(shapes)


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
