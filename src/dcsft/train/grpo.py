"""GRPO through TRL's GRPOTrainer with a LoRA adapter; the reward is the task's verifier.

TRL logs, per step, the fraction of prompt groups whose k rewards are all equal
(`frac_reward_zero_std`): those groups have zero advantage and give no gradient, the
implicit filter the paper's argument rests on. It is kept in loss.jsonl as
`zero_advantage_fraction`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from datasets import Dataset, Image
from transformers import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from dcsft.config import LoraConfig
from dcsft.rundir import write_jsonl
from dcsft.train.sft import Ticks, peft_config


@dataclass
class GRPORun:
    output_dir: Path
    lr: float
    prompts_per_step: int
    num_generations: int = 8
    temperature: float = 0.9
    beta: float = 0.04
    max_completion_length: int = 128
    grad_accum: int = 1
    warmup_ratio: float = 0.0
    max_steps: int = 100
    seed: int = 0
    lora: LoraConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def to_dataset(records: list[dict]) -> Dataset:
    rows = [{"prompt": [{"role": "user", "content": r["problem"]}], "image": r["image"], "solution": r["solution"]}
            for r in records]
    return Dataset.from_list(rows).cast_column("image", Image())


def trl_config(run: GRPORun) -> GRPOConfig:
    on_gpu = torch.cuda.is_available()
    settings = dict(
        output_dir=str(run.output_dir / "trainer"), learning_rate=run.lr,
        per_device_train_batch_size=run.prompts_per_step * run.num_generations,
        gradient_accumulation_steps=run.grad_accum, num_generations=run.num_generations,
        temperature=run.temperature, beta=run.beta, max_completion_length=run.max_completion_length,
        warmup_steps=run.warmup_ratio, max_steps=run.max_steps, seed=run.seed, data_seed=run.seed,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=not on_gpu, bf16=on_gpu,
        gradient_checkpointing=False, disable_tqdm=True, dataloader_num_workers=0,
    )
    settings.update(run.extra)
    return GRPOConfig(**settings)


def train(model, processor, records: list[dict], reward: Callable, run: GRPORun,
          advance=lambda _: None) -> tuple[Any, dict]:
    """Train a LoRA adapter around `model` with GRPO; returns the model and stats, and writes
    the per-step log (loss, reward, zero-advantage fraction) to `run.output_dir`/loss.jsonl."""
    trainer = GRPOTrainer(
        model=model, reward_funcs=[reward], args=trl_config(run), train_dataset=to_dataset(records),
        processing_class=processor, peft_config=peft_config(run.lora) if run.lora else None,
        callbacks=[Ticks(advance)],
    )
    trainer.remove_callback(PrinterCallback)
    result = trainer.train()
    steps = [{"step": e["step"], "loss": e["loss"], "reward": e.get("reward"),
              "zero_advantage_fraction": e.get("frac_reward_zero_std"), "lr": e.get("learning_rate")}
             for e in trainer.state.log_history if "loss" in e]
    write_jsonl(run.output_dir / "loss.jsonl", steps)
    zero = [s["zero_advantage_fraction"] for s in steps if s["zero_advantage_fraction"] is not None]
    return trainer.model, {"steps": trainer.state.global_step, "train_loss": round(result.training_loss, 4),
                           "samples_seen": trainer.state.global_step * run.prompts_per_step * run.grad_accum,
                           "mean_zero_advantage_fraction": round(sum(zero) / len(zero), 4) if zero else None}
