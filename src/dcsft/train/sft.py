"""Supervised fine-tuning through TRL's SFTTrainer (full or LoRA), loss on the answer only.

Our config is mapped onto TRL's `SFTConfig`; anything else TRL offers goes through `extra`.
Records become TRL's conversational prompt/completion rows with an image, which makes TRL
put the loss on the completion only (what the paper's ms-swift runs do).

Several processes (`accelerate launch`, see configs/accelerate/): TRL's trainers are
accelerate-aware, so a DeepSpeed / FSDP / DDP launch needs nothing here; batch sizes are per
process. Only the main process writes loss.jsonl and reports checkpoints; the stats count the
samples of every process.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, Image, Sequence
from peft import PeftModel
from transformers import PrinterCallback, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import SFTConfig, SFTTrainer

from dcsft.config import LoraConfig
from dcsft.console import warn
from dcsft.data.records import to_trl
from dcsft.models.loading import VISION_LORA_EXCLUDE, freeze_vision
from dcsft.rundir import (
    disk_full_is_oserror,
    kill_point,
    save_model_atomic,
    unit_finished,
    write_jsonl,
    write_text,
)
from dcsft.train.batches import ProcessedOnce, example_key


@dataclass
class SFTRun:
    output_dir: Path
    lr: float
    batch_size: int
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    max_steps: int = -1  # -1: run `epochs` instead
    epochs: float = 1.0
    seed: int = 0
    max_length: int | None = None
    in_order: bool = False  # read the records in the given order (a curriculum), not shuffled
    save_steps: int | None = None  # checkpoint every n steps; a rerun resumes from the last one
    stage: str = "train"  # names finished checkpoints for the kill tests' unit log
    lora: LoraConfig | None = None  # None: full fine-tune
    extra: dict[str, Any] = field(default_factory=dict)
    freeze_vision: bool = False  # freeze the vision tower (the aligner stays trainable)
    save_to: Path | None = None  # save the trained model (and processor) here, from any number of processes


def to_dataset(records: list[dict], decode_images: bool = True) -> Dataset:
    """TRL's prompt/completion rows; images decoded on access, or left as their paths."""
    rows = Dataset.from_list([to_trl(r) for r in records])
    return rows.cast_column("images", Sequence(Image())) if decode_images else rows


def process_once(trainer, records: list[dict]) -> bool:
    """Have the trainer's collator process every record once, before training, instead of at
    every step (dcsft.train.batches); the trainer then reads undecoded rows. False, and the
    trainer left as it is, where the processed rows would not fit in memory."""
    rows = to_dataset(records, decode_images=False)
    keyed = [(example_key(row), example) for row, example in zip(rows, trainer.train_dataset)]
    processed = ProcessedOnce.build(trainer.data_collator, keyed)
    if processed is None:
        return False
    # the same length: the Trainer's sampler draws the same batches
    trainer.train_dataset, trainer.data_collator = rows, processed
    return True


def trl_config(run: SFTRun) -> SFTConfig:
    on_gpu = torch.cuda.is_available()
    settings = dict(
        output_dir=str(run.output_dir / "trainer"),
        learning_rate=run.lr,
        per_device_train_batch_size=run.batch_size,
        gradient_accumulation_steps=run.grad_accum,
        warmup_steps=run.warmup_ratio,
        max_steps=run.max_steps,
        num_train_epochs=run.epochs,
        seed=run.seed,
        data_seed=run.seed,
        max_length=run.max_length,
        lr_scheduler_type="cosine",
        logging_steps=1,
        report_to="none",
        **checkpointing(run.save_steps),
        use_cpu=not on_gpu,
        bf16=on_gpu,
        gradient_checkpointing=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        train_sampling_strategy="sequential" if run.in_order else "random",
    )
    settings.update(run.extra)
    return SFTConfig(**settings)


# Written into a checkpoint folder once the Trainer has saved all of it: a folder without it
# was torn by a kill or a full disk mid-save and is never resumed from.
COMPLETE = "COMPLETE"


def checkpointing(save_steps: int | None) -> dict:
    """Trainer settings: keep the last two checkpoints (model, optimizer, scheduler, RNG states),
    so that a save torn by a kill still leaves the one before it."""
    if not save_steps:
        return {"save_strategy": "no"}
    return {"save_strategy": "steps", "save_steps": save_steps, "save_total_limit": 2}


class Checkpoints(TrainerCallback):
    """Marks each checkpoint complete once every process has saved it, then reports it as a
    finished unit of work (see rundir.unit_finished)."""

    def __init__(self, stage: str, folder: Path, wait_for_everyone):
        self.stage, self.folder, self.wait_for_everyone = stage, folder, wait_for_everyone

    def on_save(self, args, state, control, **kwargs):
        self.wait_for_everyone()  # every rank's shards (ZeRO optimizer states) are on disk
        if state.is_world_process_zero:  # one marker and one report per checkpoint, not one per process
            write_text(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}" / COMPLETE, "")
            unit_finished(self.stage, f"{self.folder}:step{state.global_step}")


def last_complete_checkpoint(trainer_dir: Path) -> str | None:
    """The newest checkpoint whose save finished. Newer ones without the marker (torn by a kill or
    a full disk during the save) are removed, each named on one line."""
    steps = sorted(
        (int(m.group(1)), p)
        for p in trainer_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
        if (m := re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", p.name))
    )
    for _, folder in reversed(steps):
        if (folder / COMPLETE).exists():
            return str(folder)
        warn(
            f"{folder}: this checkpoint's save did not finish (killed or out of disk space); removed, "
            f"resuming from the one before it"
        )
        shutil.rmtree(folder)
    return None


def with_save_kill_point(trainer, stage: str) -> None:
    """A kill point inside every checkpoint save, after the model, optimizer and scheduler files
    and before the trainer state: where a pre-emption tears a checkpoint (the kill tests' hook)."""
    save_rng_state = trainer._save_rng_state  # a private Trainer method (transformers 5.24-5.25)

    def save_then_maybe_die(output_dir):
        save_rng_state(output_dir)
        kill_point(f"{stage}-save")

    trainer._save_rng_state = save_then_maybe_die


def run_trainer(trainer, output_dir: Path, stage: str):
    """trainer.train(), resumed from the last complete checkpoint in output_dir/trainer if a killed
    run left one (the stage removes the checkpoints once it is complete). A disk that fills up
    during a save ends in the one-line ENOSPC error naming the folder, not a traceback."""
    trainer.add_callback(Checkpoints(stage, output_dir, trainer.accelerator.wait_for_everyone))
    with_save_kill_point(trainer, stage)
    trainer_dir = output_dir / "trainer"
    last = last_complete_checkpoint(trainer_dir) if trainer_dir.is_dir() else None
    if last and not isinstance(trainer.model, PeftModel):
        restore_full_model(trainer, last)
    with disk_full_is_oserror(trainer_dir):
        return trainer.train(resume_from_checkpoint=last), last is not None


def run_loss(trainer) -> float:
    """Mean training loss per step over the whole run, from the log history (logged every step),
    which a resumed run restores with its checkpoint; the Trainer's own training_loss averages
    only the steps since the resume."""
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return round(sum(losses) / len(losses), 4) if losses else math.nan


# Needed on every transformers that pyproject.toml allows (5.24 and 5.25 checked: the Trainer's
# _load_from_checkpoint has loaded without the key conversion since 5.0); README, Dependencies.
def restore_full_model(trainer, checkpoint: str) -> None:
    """Load a full fine-tune's checkpoint weights through from_pretrained, which converts the
    saved key names; transformers 5.24's Trainer loads them without that conversion, misses
    every key of a Qwen2.5-VL and would resume from the initial weights. The Trainer still
    restores the optimizer, scheduler and RNG states."""
    saved = type(trainer.model).from_pretrained(checkpoint, dtype=trainer.model.dtype)
    trainer.model.load_state_dict(saved.state_dict())
    trainer._load_from_checkpoint = lambda *args, **kwargs: None


def save_trained(trainer, folder: Path, processor=None) -> None:
    """Save the trained model (and processor) to `folder` atomically. One process: the model's own
    save_pretrained (save_model_atomic). Several: every process calls the Trainer's save_model, which
    gathers sharded weights (FSDP, ZeRO-3) and writes on the main process only, into a temporary
    sibling that the main process then renames into place."""
    if trainer.args.world_size == 1:
        save_model_atomic(trainer.model, processor, folder)
        return
    tmp, main = folder.with_name(folder.name + ".tmp"), trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    if main:
        if processor is not None:
            processor.save_pretrained(tmp)
        (tmp / "training_args.bin").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    trainer.accelerator.wait_for_everyone()


def samples_seen(n_records: int, batch_size: int, micro_batches: int) -> int:
    """Samples read in `micro_batches` batches over repeated epochs of `n_records`: an epoch's
    last batch is short when batch_size does not divide n_records (the dataloader keeps it)."""
    per_epoch = math.ceil(n_records / batch_size)
    epochs, rest = divmod(micro_batches, per_epoch)
    return epochs * n_records + min(rest * batch_size, n_records)


def peft_config(lora: LoraConfig, freeze_vision: bool = False):
    """PEFT's LoraConfig; with a frozen vision tower no adapters are put on it."""
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
        exclude_modules=VISION_LORA_EXCLUDE if freeze_vision else None,
    )


def frozen_vision(trainer, freeze: bool) -> dict:
    """Freeze the vision tower of the trainer's model (after PEFT wrapped it, before the
    optimizer is built in train()); the stats entry saying so."""
    return {"vision_frozen_parameters": freeze_vision(trainer.model)} if freeze else {}


class Ticks(TrainerCallback):
    def __init__(self, advance):
        self.advance = advance

    def on_step_end(self, args, state, control, **kwargs):
        self.advance(1)


def train(model, processor, records: list[dict], run: SFTRun, advance=lambda _: None) -> tuple[Any, dict]:
    """Train `model` (in place, or a LoRA adapter around it); returns the trained model and
    stats, and writes the per-step loss log to `run.output_dir`/loss.jsonl."""
    trainer = SFTTrainer(
        model=model,
        args=trl_config(run),
        train_dataset=to_dataset(records),
        processing_class=processor,
        peft_config=peft_config(run.lora, run.freeze_vision) if run.lora else None,
        callbacks=[Ticks(advance)],
    )
    trainer.remove_callback(PrinterCallback)  # per-step dicts; the loss log goes to loss.jsonl instead
    processed_once = process_once(trainer, records)
    frozen = frozen_vision(trainer, run.freeze_vision)
    _, resumed = run_trainer(trainer, run.output_dir, run.stage)
    losses = [
        {"step": e["step"], "loss": e["loss"], "lr": e.get("learning_rate")}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    if trainer.is_world_process_zero():
        write_jsonl(run.output_dir / "loss.jsonl", losses)
    if run.save_to is not None:
        save_trained(trainer, run.save_to, processor)
    # Each process reads its own share of every batch (num_input_tokens_seen is already summed over them).
    return trainer.model, {
        "steps": trainer.state.global_step,
        "train_loss": run_loss(trainer),
        "samples_seen": samples_seen(
            len(records), run.batch_size * trainer.args.world_size, trainer.state.global_step * run.grad_accum
        ),
        "tokens_forwarded": int(trainer.state.num_input_tokens_seen),
        "tokens_generated": 0,
        "resumed_from_checkpoint": resumed,
        "processed_once": processed_once,
        **frozen,
    }
