"""coldstart: full fine-tune of the base on the cold-start set, so it answers in the task's format.

Reads: 00_pretrain/base.json (the base model) and 01_prepare/records/coldstart.json.
Writes: 02_coldstart/model/ (save_pretrained folder), loss.jsonl, stats.json, DONE.
Paper: 400 samples, 1 epoch, lr 1e-5, warmup 0.1, vision tower not frozen
(`train.freeze_vision: true` freezes it here too; the aligner stays trainable).
Several GPUs: accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml -m dcsft coldstart

Example: dcsft coldstart --set coldstart.lr=2e-4
"""

from __future__ import annotations

from pathlib import Path

from dcsft.config import NOT_IN_FINGERPRINT, StudyConfig
from dcsft.console import progress
from dcsft.models.loading import load_model, load_processor
from dcsft.prepared import read_split
from dcsft.pretrain import resolved_base
from dcsft.rundir import RunDir, fingerprint
from dcsft.stage import run_stage, upstream
from dcsft.train import sft


def stage_fingerprint(cfg: StudyConfig) -> str:
    rundir = RunDir(cfg.run_dir)
    # freeze_vision enters only when set, so cold starts made before the option existed stay valid.
    frozen = [{"freeze_vision": True}] if cfg.train.freeze_vision else []
    return fingerprint(
        "coldstart",
        upstream(rundir.prepare),
        resolved_base(cfg)[1],
        cfg.model.model_dump(exclude=NOT_IN_FINGERPRINT),
        cfg.coldstart.model_dump(exclude=NOT_IN_FINGERPRINT),
        cfg.seed,
        *frozen,
    )


def run(cfg: StudyConfig) -> dict:
    rundir = RunDir(cfg.run_dir)
    base = resolved_base(cfg)[0]

    def body(folder: Path):
        records, skipped = read_split(rundir, "coldstart")
        model, processor = load_model(base, cfg.model), load_processor(base, cfg.model)
        c = cfg.coldstart
        run_cfg = sft.SFTRun(
            output_dir=folder,
            lr=c.lr,
            batch_size=c.batch_size,
            grad_accum=c.grad_accum,
            warmup_ratio=c.warmup_ratio,
            epochs=c.epochs,
            seed=cfg.seed,
            max_length=c.max_length,
            save_steps=c.save_steps,
            stage="coldstart",
            extra=c.extra,
            freeze_vision=cfg.train.freeze_vision,
            save_to=rundir.coldstart_model,
        )
        steps = max(1, int(len(records) * c.epochs) // (c.batch_size * c.grad_accum))
        with progress("cold start (full fine-tune)", steps) as advance:
            _, stats = sft.train(model, processor, records, run_cfg, advance)  # saves the model to save_to
        return (
            f"full fine-tune on {len(records)} samples, {stats['steps']} steps, loss {stats['train_loss']}",
            {**stats, "records": len(records), "skipped": skipped, "base": base},
        )

    # Under accelerate launch every process runs the body: the Trainer shares the batches, the main
    # process writes loss.jsonl and the model (sft.save_trained), run_stage the marker.
    return run_stage(rundir.coldstart, stage_fingerprint(cfg), body)
