"""Where the study's base model comes from: a local folder, a hub id, or the embedded base.

The embedded base is identified by a hash of its pretraining config. Looked up in order:
the weights shipped in the package (built by `dcsft pretrain --out
src/dcsft/assets/embedded-base` with the default config), the per-machine cache
($DCSFT_CACHE, default ~/.cache/dcsft/base/<hash>), else pretrained once and cached.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from dcsft import console
from dcsft.config import PretrainConfig, StudyConfig
from dcsft.rundir import fingerprint, save_model_atomic, write_json

PACKAGED = Path(str(resources.files("dcsft") / "assets" / "embedded-base"))
INFO_FILE = "pretrain.json"


def embedded_key(cfg: PretrainConfig) -> str:
    return fingerprint("embedded-base", cfg.model_dump())


def cache_root() -> Path:
    return Path(os.environ.get("DCSFT_CACHE", Path.home() / ".cache" / "dcsft"))


def built_key(folder: Path) -> str | None:
    try:
        return json.loads((folder / INFO_FILE).read_text())["key"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None


def build_embedded(cfg: PretrainConfig, out: Path) -> dict:
    """Pretrain the embedded base and save it (model, processor, pretrain.json) to `out`."""
    from dcsft.console import progress
    from dcsft.models.pretrain import pretrain

    total = cfg.vision_steps + cfg.vlm_steps
    with progress("drawing pretraining pool", cfg.pool_size) as pool_advance:
        with progress("pretraining embedded base", total) as advance:
            model, processor, stats = pretrain(cfg, lambda _: advance(1), pool_advance)
    save_model_atomic(model, processor, out)
    info = {"key": embedded_key(cfg), "pretrain": cfg.model_dump(), **stats}
    write_json(out / INFO_FILE, info)  # written last: its key marks the folder complete
    return info


def base_identity(cfg: StudyConfig) -> str:
    """What stages downstream of the base depend on, known without loading or building it."""
    return cfg.model.base if cfg.model.base != "embedded" else f"embedded:{embedded_key(cfg.pretrain)}"


def resolve_base(cfg: StudyConfig) -> tuple[str, str]:
    """(what `from_pretrained` loads, an identity for fingerprints); may build the embedded base."""
    if cfg.model.base != "embedded":
        return cfg.model.base, base_identity(cfg)
    key = embedded_key(cfg.pretrain)
    for folder in (PACKAGED, cache_root() / "base" / key):
        if built_key(folder) == key:
            return str(folder), base_identity(cfg)
    folder = cache_root() / "base" / key
    console.console.print(f"[bold]pretraining the embedded base once for this machine[/] -> {folder}")
    build_embedded(cfg.pretrain, folder)
    return str(folder), base_identity(cfg)
