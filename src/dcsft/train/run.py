"""train: LoRA SFT from the cold-started model, one run per method.

Reads: 02_coldstart/model/, 04_curate/{easy,medium,hard}.jsonl.
Writes: 05_train/<method>/adapter/ (PEFT LoRA adapter), loss.jsonl, stats.json, DONE.

Methods: sft (every bucket), sft-e, sft-m, sft-h (one bucket each), sft-em (easy + medium,
i.e. only the hard samples dropped), and grpo (TRL's GRPOTrainer on every training
sample, reward = the task's verifier; `grpo.*` settings). Every SFT method takes the same number of optimizer steps;
with `train.balance` each subset is first subsampled (seeded) to the smallest non-empty
bucket, so that only difficulty differs (the paper's difficulty study). A method whose
subset is empty is recorded as "n/a (0 samples)" rather than failing the study.
Paper: rank 32, alpha 64, dropout 0.05, lr 1e-5, warmup 0.1.

Example: dcsft train --set train.methods=[sft,sft-m] --set train.steps=300
"""

from __future__ import annotations

import random
from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.console import progress
from dcsft.data.records import from_sft
from dcsft.models.loading import load_model, load_processor
from dcsft.rundir import RunDir, fingerprint, read_jsonl, save_model_atomic
from dcsft.stage import run_stage, upstream
from dcsft.tasks import get_task
from dcsft.train import grpo, sft

METHOD_BUCKETS = {"sft": ("easy", "medium", "hard"), "sft-e": ("easy",), "sft-m": ("medium",),
                  "sft-h": ("hard",), "sft-em": ("easy", "medium"), "grpo": ("easy", "medium", "hard")}


def bucket_records(rundir: RunDir) -> dict[str, list[dict]]:
    return {b: [from_sft(row) for row in read_jsonl(rundir.bucket_file(b))] for b in ("easy", "medium", "hard")}


def subset(method: str, buckets: dict[str, list[dict]], balance: bool, seed: int) -> list[dict]:
    """The training records of a method; with `balance`, each bucket in it is subsampled to
    the smallest non-empty bucket's size."""
    sizes = [len(records) for records in buckets.values() if records]
    cap = min(sizes) if balance and sizes else None
    chosen = []
    for bucket in METHOD_BUCKETS[method]:
        records = buckets[bucket]
        if cap is not None and len(records) > cap:
            records = random.Random(f"{seed}-{bucket}").sample(records, cap)
        chosen.extend(records)
    return chosen


def stage_fingerprint(cfg: StudyConfig, method: str) -> str:
    rundir = RunDir(cfg.run_dir)
    settings = cfg.train.model_dump(exclude={"methods"})
    if method == "grpo":
        settings = {"grpo": cfg.grpo.model_dump(), "lora": cfg.train.lora.model_dump(), "task": cfg.task}
    return fingerprint("train", upstream(rundir.curate, "curate"), upstream(rundir.coldstart, "coldstart"),
                       settings, method, cfg.model.model_dump(), cfg.seed)


def train_method(cfg: StudyConfig, method: str, buckets: dict[str, list[dict]]) -> dict:
    rundir = RunDir(cfg.run_dir)
    t = cfg.train

    def body(folder: Path):
        records = subset(method, buckets, t.balance, cfg.seed)
        if not records:
            return f"{method}: n/a (0 samples in {'+'.join(METHOD_BUCKETS[method])})", {"samples": 0, "n_a": True}
        model = load_model(rundir.coldstart_model, cfg.model)
        processor = load_processor(rundir.coldstart_model, cfg.model)
        if method == "grpo":
            with progress(f"grpo (LoRA, {cfg.grpo.num_generations} generations per prompt)", cfg.grpo.steps) as advance:
                model, stats = grpo.train(model, processor, records, get_task(cfg.task).reward, cfg.grpo, t.lora,
                                          folder, cfg.seed, advance)
        else:
            run_cfg = sft.SFTRun(output_dir=folder, lr=t.lr, batch_size=t.batch_size, grad_accum=t.grad_accum,
                                 warmup_ratio=t.warmup_ratio, max_steps=t.steps, seed=cfg.seed, lora=t.lora,
                                 extra=t.extra)
            with progress(f"{method} (LoRA SFT on {len(records)})", t.steps) as advance:
                model, stats = sft.train(model, processor, records, run_cfg, advance)
        save_model_atomic(model, None, rundir.adapter(method))
        return (f"{method}: {stats['steps']} steps on {len(records)} samples, loss {stats['train_loss']}",
                {**stats, "samples": len(records), "n_a": False})

    return run_stage("train", rundir.train(method), stage_fingerprint(cfg, method), body)


def run(cfg: StudyConfig) -> dict[str, dict]:
    rundir = RunDir(cfg.run_dir)
    upstream(rundir.curate, "curate")
    buckets = bucket_records(rundir)
    return {method: train_method(cfg, method, buckets) for method in cfg.train.methods}
