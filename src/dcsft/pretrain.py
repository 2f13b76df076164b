"""pretrain: resolve the study's base model once, so that the stages after it only read the answer.

Reads: `model.base`: a local folder or hub id (nothing to build), or "embedded": the tiny base
(dcsft.models.base), looked up in the package, then the machine cache, else pretrained once
for this machine (minutes on a CPU; dcsft.models.pretrain).
Writes: 00_pretrain/base.json ({path, identity}: what `from_pretrained` loads, and what the
fingerprints of the cold start and the base's evaluation depend on), stats.json, DONE.
A finished stage whose embedded base has left the cache resolves (and builds) it again.

Example: dcsft pretrain --set pretrain.vision_steps=6000
"""

from __future__ import annotations

from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.models.base import base_identity, locate_or_build
from dcsft.rundir import RunDir, fingerprint, read_json, write_json
from dcsft.stage import run_stage, upstream


def stage_fingerprint(cfg: StudyConfig) -> str:
    return fingerprint("pretrain", base_identity(cfg))


def resolved_base(cfg: StudyConfig) -> tuple[str, str]:
    """(what `from_pretrained` loads, the base's identity), from the finished pretrain stage."""
    rundir = RunDir(cfg.run_dir)
    upstream(rundir.pretrain)
    base = read_json(rundir.base_file)
    return base["path"], base["identity"]


def base_gone(rundir: RunDir) -> bool:
    """Whether the base a finished stage names is no longer there (e.g. the machine cache was cleared)."""
    try:
        return not Path(read_json(rundir.base_file)["path"]).is_dir()
    except (OSError, KeyError, TypeError, ValueError):
        return True


def run(cfg: StudyConfig) -> dict:
    rundir = RunDir(cfg.run_dir)
    stage = rundir.pretrain
    if cfg.model.base == "embedded" and stage.marker.exists() and base_gone(rundir):
        stage.marker.unlink()  # find or build it again

    def body(folder: Path):
        embedded = cfg.model.base == "embedded"
        path = str(locate_or_build(cfg.pretrain)) if embedded else cfg.model.base
        write_json(rundir.base_file, {"path": path, "identity": base_identity(cfg)})
        return f"base {path}", {"base": path, "embedded": embedded}

    return run_stage(stage, stage_fingerprint(cfg), body)
