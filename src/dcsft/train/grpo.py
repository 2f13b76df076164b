"""GRPO through TRL's GRPOTrainer with a LoRA adapter; the reward is the task's verifier.

TRL logs, per step, the fraction of prompt groups whose k rewards are all equal
(`frac_reward_zero_std`): those groups have zero advantage and give no gradient, the
implicit filter the paper's argument rests on. It is kept in loss.jsonl as
`zero_advantage_fraction`.

Compute: TRL counts the prompt + completion tokens of every completion; each of them goes
through the model when it is generated, again in the policy's training pass, and once more
in the reference model's pass when beta > 0, so tokens forwarded = that count x (2 + [beta > 0]).

`grpo.use_vllm` has TRL generate the completions with vLLM (`grpo.vllm_mode`: colocate, inside
the training processes, or server, from a `trl vllm-serve --model <02_coldstart/model>` started
beforehand); vLLM's own settings (vllm_gpu_memory_utilization, vllm_server_host, ...) go through
`grpo.extra`. Under `accelerate launch` prompts_per_step is per process, like every batch size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, Image
from transformers import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from dcsft.config import GrpoConfig, LoraConfig
from dcsft.models.vllm_engine import require_vllm
from dcsft.rundir import write_jsonl
from dcsft.tasks.base import usable
from dcsft.train.sft import (
    Ticks,
    checkpointing,
    frozen_vision,
    peft_config,
    run_loss,
    run_trainer,
    save_trained,
)


class CountedReward:
    """A task's reward as TRL calls it, made safe for long runs: a completion whose reward
    raises or is not a finite number scores 0 and is counted in `failures`, instead of ending
    the run; each call's count also goes to the Trainer's log as `reward_failures`."""

    def __init__(self, reward: Callable):
        self.reward = reward
        self.__name__ = getattr(reward, "__name__", "reward")  # TRL logs rewards under this name
        self.failures = 0

    def __call__(self, completions: list, log_metric=None, **kwargs) -> list[float]:
        failures_before = self.failures
        values = self.rewards(completions, kwargs)
        if log_metric is not None:  # into the Trainer's log history, which survives a resume
            log_metric("reward_failures", float(self.failures - failures_before))
        return values

    def rewards(self, completions: list, kwargs: dict) -> list[float]:
        try:
            values = list(self.reward(completions, **kwargs))
            if len(values) != len(completions):
                raise ValueError("wrong number of rewards")
        except Exception:  # noqa: BLE001 - any failure of the batch call falls back to one completion at a time
            values = [self.one(i, completions, kwargs) for i in range(len(completions))]
        return [self.checked(value) for value in values]

    def one(self, i: int, completions: list, kwargs: dict) -> object:
        per_completion = {
            k: [v[i]] if isinstance(v, list) and len(v) == len(completions) else v for k, v in kwargs.items()
        }
        try:
            return list(self.reward([completions[i]], **per_completion))[0]
        except Exception:  # noqa: BLE001 - scored 0 and counted by checked()
            return None

    def checked(self, value: object) -> float:
        """A score in [0, 1] (True / False as 1 / 0), as the verifier's everywhere else
        (dcsft.tasks.base.score); anything else is 0 and counted."""
        value = float(value) if isinstance(value, bool) else value
        if usable(value):
            return float(value)
        self.failures += 1
        return 0.0


def to_dataset(records: list[dict]) -> Dataset:
    """TRL's prompt and image columns, the solution (what TRL-style rewards read) and the whole
    prepared record as JSON, which the task's reward verifies against: the same record, with its
    meta (image size, box convention), that profiling and evaluation score."""
    rows = [
        {
            "prompt": [{"role": "user", "content": r["problem"]}],
            "image": r["image"],
            "solution": r["solution"],
            "record": json.dumps(r),
        }
        for r in records
    ]
    return Dataset.from_list(rows).cast_column("image", Image())


def trl_config(g: GrpoConfig, output_dir: Path, seed: int) -> GRPOConfig:
    on_gpu = torch.cuda.is_available()
    settings = dict(
        output_dir=str(output_dir / "trainer"),
        learning_rate=g.lr,
        per_device_train_batch_size=g.prompts_per_step * g.num_generations,
        gradient_accumulation_steps=g.grad_accum,
        num_generations=g.num_generations,
        temperature=g.temperature,
        beta=g.beta,
        max_completion_length=g.max_completion_length,
        warmup_steps=g.warmup_ratio,
        max_steps=g.steps,
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        report_to="none",
        **checkpointing(g.save_steps),
        use_cpu=not on_gpu,
        bf16=on_gpu,
        gradient_checkpointing=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_vllm=g.use_vllm,
        vllm_mode=g.vllm_mode,
    )
    settings.update(g.extra)
    return GRPOConfig(**settings)


def train(
    model,
    processor,
    records: list[dict],
    reward: Callable,
    g: GrpoConfig,
    lora: LoraConfig,
    output_dir: Path,
    seed: int,
    advance=lambda _: None,
    freeze_vision: bool = False,
    save_to: Path | None = None,
) -> tuple[Any, dict]:
    """Train a LoRA adapter around `model` with GRPO; returns the model and stats, and writes
    the per-step log (loss, reward, zero-advantage fraction) to `output_dir`/loss.jsonl. With
    `save_to`, the adapter is saved there (from any number of processes, see sft.save_trained)."""
    if g.use_vllm:
        require_vllm("grpo.use_vllm=true")
    counted = CountedReward(reward)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[counted],
        args=trl_config(g, output_dir, seed),
        train_dataset=to_dataset(records),
        processing_class=processor,
        peft_config=peft_config(lora, freeze_vision),
        callbacks=[Ticks(advance)],
    )
    trainer.remove_callback(PrinterCallback)
    frozen = frozen_vision(trainer, freeze_vision)
    _, resumed = run_trainer(trainer, output_dir, "grpo")
    # Counted from the log history, which a resumed run restores with the checkpoint: TRL logs each
    # step's mean completion length (over all processes), and each step generates one batch of
    # completions per process.
    processes = trainer.args.world_size
    per_step = g.prompts_per_step * g.num_generations * g.grad_accum * processes
    steps = [
        {
            "step": e["step"],
            "loss": e["loss"],
            "reward": e.get("reward"),
            "zero_advantage_fraction": e.get("frac_reward_zero_std"),
            "lr": e.get("learning_rate"),
            "tokens_generated": round(e.get("completions/mean_length", 0) * per_step),
            "reward_failures": round(e.get("reward_failures", 0)),
        }
        for e in trainer.state.log_history
        if "loss" in e
    ]
    if trainer.is_world_process_zero():
        write_jsonl(output_dir / "loss.jsonl", steps)
    if save_to is not None:
        save_trained(trainer, save_to)
    zero = [s["zero_advantage_fraction"] for s in steps if s["zero_advantage_fraction"] is not None]
    passes = 2 + (g.beta > 0)
    return trainer.model, {
        "steps": trainer.state.global_step,
        "train_loss": run_loss(trainer),
        "samples_seen": trainer.state.global_step * g.prompts_per_step * g.grad_accum * processes,
        "resumed_from_checkpoint": resumed,
        "completions": len(steps) * per_step,
        "reward_failures": sum(s["reward_failures"] for s in steps),
        "tokens_forwarded": int(trainer.state.num_input_tokens_seen) * passes,
        "tokens_generated": sum(s["tokens_generated"] for s in steps),
        "mean_zero_advantage_fraction": round(sum(zero) / len(zero), 4) if zero else None,
        **frozen,
    }
