"""coldstart: full fine-tune of the base on the cold-start set, so it answers in the task's format.

Reads: 01_prepare/records/coldstart.json and the base model (`model.base`).
Writes: 02_coldstart/model/ (save_pretrained folder), loss.jsonl, stats.json, DONE.
Paper: 400 samples, 1 epoch, lr 1e-5, warmup 0.1, vision tower not frozen.

Example: dcsft coldstart --set coldstart.lr=2e-4
"""

from __future__ import annotations

from pathlib import Path

from dcsft.config import NOT_IN_FINGERPRINT, StudyConfig
from dcsft.console import progress
from dcsft.models.base import resolve_base
from dcsft.models.loading import load_model, load_processor
from dcsft.rundir import RunDir, fingerprint, save_model_atomic
from dcsft.stage import read_split, run_stage, upstream
from dcsft.train import sft


def stage_fingerprint(cfg: StudyConfig, base_identity: str) -> str:
    rundir = RunDir(cfg.run_dir)
    return fingerprint("coldstart", upstream(rundir.prepare, "prepare"), base_identity, cfg.model.model_dump(),
                       cfg.coldstart.model_dump(exclude=NOT_IN_FINGERPRINT), cfg.seed)


def run(cfg: StudyConfig) -> dict:
    rundir = RunDir(cfg.run_dir)
    upstream(rundir.prepare, "prepare")  # before resolve_base, which may pretrain the embedded base
    base, identity = resolve_base(cfg)

    def body(folder: Path):
        records, skipped = read_split(rundir, "coldstart")
        model, processor = load_model(base, cfg.model), load_processor(base, cfg.model)
        run_cfg = sft.SFTRun(output_dir=folder, lr=cfg.coldstart.lr, batch_size=cfg.coldstart.batch_size,
                             warmup_ratio=cfg.coldstart.warmup_ratio, epochs=cfg.coldstart.epochs, seed=cfg.seed,
                             max_length=cfg.coldstart.max_length, save_steps=cfg.coldstart.save_steps,
                             stage="coldstart")
        steps = max(1, int(len(records) * cfg.coldstart.epochs) // cfg.coldstart.batch_size)
        with progress("cold start (full fine-tune)", steps) as advance:
            model, stats = sft.train(model, processor, records, run_cfg, advance)
        save_model_atomic(model, processor, rundir.coldstart_model)
        return (f"full fine-tune on {len(records)} samples, {stats['steps']} steps, loss {stats['train_loss']}",
                {**stats, "records": len(records), "skipped": skipped, "base": base})

    return run_stage("coldstart", rundir.coldstart, stage_fingerprint(cfg, identity), body)
