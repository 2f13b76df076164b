"""GRPO through TRL's GRPOTrainer with a LoRA adapter; the reward is the task's verifier.

TRL logs, per step, the fraction of prompt groups whose k rewards are all equal
(`frac_reward_zero_std`): those groups have zero advantage and give no gradient, the
implicit filter the paper's argument rests on. It is kept in loss.jsonl as
`zero_advantage_fraction`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from datasets import Dataset, Image
from transformers import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from dcsft.config import GrpoConfig, LoraConfig
from dcsft.rundir import write_jsonl
from dcsft.train.sft import Ticks, peft_config


def to_dataset(records: list[dict]) -> Dataset:
    rows = [{"prompt": [{"role": "user", "content": r["problem"]}], "image": r["image"], "solution": r["solution"]}
            for r in records]
    return Dataset.from_list(rows).cast_column("image", Image())


def trl_config(g: GrpoConfig, output_dir: Path, seed: int) -> GRPOConfig:
    on_gpu = torch.cuda.is_available()
    settings = dict(
        output_dir=str(output_dir / "trainer"), learning_rate=g.lr,
        per_device_train_batch_size=g.prompts_per_step * g.num_generations,
        gradient_accumulation_steps=g.grad_accum, num_generations=g.num_generations,
        temperature=g.temperature, beta=g.beta, max_completion_length=g.max_completion_length,
        warmup_steps=g.warmup_ratio, max_steps=g.steps, seed=seed, data_seed=seed,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=not on_gpu, bf16=on_gpu,
        gradient_checkpointing=False, disable_tqdm=True, dataloader_num_workers=0,
    )
    settings.update(g.extra)
    return GRPOConfig(**settings)


def train(model, processor, records: list[dict], reward: Callable, g: GrpoConfig, lora: LoraConfig,
          output_dir: Path, seed: int, advance=lambda _: None) -> tuple[Any, dict]:
    """Train a LoRA adapter around `model` with GRPO; returns the model and stats, and writes
    the per-step log (loss, reward, zero-advantage fraction) to `output_dir`/loss.jsonl."""
    trainer = GRPOTrainer(
        model=model, reward_funcs=[reward], args=trl_config(g, output_dir, seed), train_dataset=to_dataset(records),
        processing_class=processor, peft_config=peft_config(lora), callbacks=[Ticks(advance)],
    )
    trainer.remove_callback(PrinterCallback)
    result = trainer.train()
    steps = [{"step": e["step"], "loss": e["loss"], "reward": e.get("reward"),
              "zero_advantage_fraction": e.get("frac_reward_zero_std"), "lr": e.get("learning_rate")}
             for e in trainer.state.log_history if "loss" in e]
    write_jsonl(output_dir / "loss.jsonl", steps)
    zero = [s["zero_advantage_fraction"] for s in steps if s["zero_advantage_fraction"] is not None]
    return trainer.model, {"steps": trainer.state.global_step, "train_loss": round(result.training_loss, 4),
                           "samples_seen": trainer.state.global_step * g.prompts_per_step * g.grad_accum,
                           "mean_zero_advantage_fraction": round(sum(zero) / len(zero), 4) if zero else None}
