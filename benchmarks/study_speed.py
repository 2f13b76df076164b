"""How much do dcsft, TRL and transformers add to the bare arithmetic of the tiny model, stage by stage?

On one run's cold-started model and data, in one process, each stage runs dcsft's own code and a
hand-written floor side by side, on the same weights, the same batches and the same torch threads:
- SFT: `dcsft.train.sft.train` (TRL's SFTTrainer, LoRA) on the medium bucket for --steps steps, against a
  bare PyTorch loop with the same LoRA, AdamW as the Trainer builds it (fused; betas 0.9/0.999, eps 1e-8,
  no weight decay), the same cosine schedule, grad clipping at 1.0, and batches put through TRL's own
  collator (loss on the completion only) once before its timed loop. dcsft's steps are split into data
  loading, collator, forward + loss, backward, optimizer and the rest of the Trainer's loop.
- evaluate: greedy `respond` over the ID test split in batches of evaluate.batch_size, against a bare
  batched greedy decode with a KV cache; its texts must equal dcsft's, record by record.
- profile: `Profiler.sample` and `Profiler.exact` on the first --limit training samples, against a bare
  sampled decode from one prefill per prompt (cache repeated k times; same sampling settings but other
  draws, so only time and tokens compare) and a bare teacher-forced pass whose P(correct) must equal exact's.
- GRPO: `dcsft.train.grpo.train` (TRL's GRPOTrainer) for --grpo-steps steps, its steps split into
  generation, processor, the reference model's forward, the policy's forward + loss, backward, reward,
  data loading, optimizer and the rest, by timing TRL's methods. No floor: the split says where RL's time
  goes.
The floors' processor inputs are made (and timed) before their decoding. Each generation stage runs 1 +
REPEATS passes: dcsft's first pass is compared with the floor's first processing + first decoding,
dcsft's fastest repeat (where dcsft may reuse inputs it processed in the first, as a study's later models
do) with the floor's fastest decoding. `exact` reads the batches `sample` has just read, so only its
repeats compare. The floors still run transformers' model forward (its Python included): the ratios
measure what the generate / Trainer / TRL / dcsft machinery around it adds. Each ratio is dcsft / floor.
dcsft's methods are timed by wrapping them on their classes for the run only.

    python benchmarks/study_speed.py                  # prepares, cold-starts, profiles, curates in a temp dir
    python benchmarks/study_speed.py --run-dir runs/default/classification     # a task folder, curate done

Writes benchmarks/results/study_speed[_TASK].json.
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import cycle, islice
from pathlib import Path

import peft
import torch
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from PIL import Image
from transformers import Trainer, get_cosine_schedule_with_warmup
from transformers.trainer_callback import CallbackHandler
from trl import GRPOTrainer, SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from dcsft.config import ProfileConfig, StudyConfig, load_config
from dcsft.data.splits import id_split
from dcsft.errors import StageError
from dcsft.models.exact import answer_tokens
from dcsft.models.generate import Sampling, generated_lengths, prompt_text, respond, stop_token_ids
from dcsft.models.loading import load_model, load_processor
from dcsft.prepared import read_split
from dcsft.profiling import Profiler
from dcsft.rundir import RunDir, write_json
from dcsft.stage import upstream
from dcsft.study import DATA_STAGES, run_stage
from dcsft.tasks import get_task
from dcsft.train import grpo, sft
from dcsft.train.run import bucket_records, records_for

SFT_WARMUP_STEPS = 3  # floor steps run before its timing starts (lazy allocations, first-call costs)
REPEATS = 3  # passes after the first of each timed generation stage and processing; the fastest counts


# --------------------------------------------------------------------------------------------------------
# Timing


class Clock:
    """A training run's wall time split into named parts by wrapping methods on their classes (only while
    `patched`). The Trainer's loop is timed from its on_train_begin to its on_train_end; a call inside it
    is booked to its part less the time of wrapped calls inside the call, so nested parts are not counted
    twice, and what no part claims (the loop itself, scheduler, logging, callbacks) is the rest. Wrapped
    calls outside the loop (dcsft processing the training set before training) are booked as setup."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.setup: dict[str, float] = defaultdict(float)
        self.nested: list[float] = []  # per open wrapped call: seconds spent in wrapped calls inside it
        self.loop_started: float | None = None
        self.loop_s = 0.0

    def wrap(self, method: Callable, part: str | Callable[[], str]) -> Callable:
        @functools.wraps(method)
        def timed(*args, **kwargs):
            name = part if isinstance(part, str) else part()
            book = self.setup if self.loop_started is None else self.seconds
            self.nested.append(0.0)
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                book[name] += elapsed - self.nested.pop()
                if self.nested:
                    self.nested[-1] += elapsed

        return timed

    def loop_edge(self, method: Callable, begins: bool) -> Callable:
        @functools.wraps(method)
        def marked(*args, **kwargs):
            if not begins:
                self.loop_s += time.perf_counter() - self.loop_started
                self.loop_started = None
            result = method(*args, **kwargs)
            if begins:
                self.loop_started = time.perf_counter()
            return result

        return marked

    @contextmanager
    def patched(self, parts: list[tuple[type, str, str | Callable[[], str]]]):
        """Time the Trainer's loop and each (class, method name, part) of `parts`; restore them all after."""
        wrappers = [
            (CallbackHandler, "on_train_begin", functools.partial(self.loop_edge, begins=True)),
            (CallbackHandler, "on_train_end", functools.partial(self.loop_edge, begins=False)),
            *((owner, name, functools.partial(self.wrap, part=part)) for owner, name, part in parts),
        ]
        own = [(owner, name, owner.__dict__.get(name)) for owner, name, _ in wrappers]
        try:
            for owner, name, wrapper in wrappers:
                setattr(owner, name, wrapper(getattr(owner, name)))
            yield self
        finally:
            for owner, name, original in reversed(own):
                if original is None:  # the method was inherited: uncover the parent's again
                    delattr(owner, name)
                else:
                    setattr(owner, name, original)

    def split(self, steps: int) -> dict:
        seconds = {**self.seconds, "rest (trainer loop, logging)": self.loop_s - sum(self.seconds.values())}
        return {
            part: {"ms_per_step": round(1000 * s / steps, 2), "share": round(s / self.loop_s, 4)}
            for part, s in sorted(seconds.items(), key=lambda item: -item[1])
        }


# Parts of a Trainer step that SFT and GRPO share.
TRAINER_PARTS = [
    (Trainer, "get_batch_samples", "data loading (dataset, batching)"),
    (Accelerator, "backward", "backward"),
    (Trainer, "_clip_grad_norm", "optimizer (clip + step)"),
    (AcceleratedOptimizer, "step", "optimizer (clip + step)"),
]


def stopwatch(fn: Callable) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def passes(fn: Callable) -> tuple[object, float, float]:
    """fn's result, the seconds of its first pass, and the fastest of REPEATS more (the least disturbed by
    whatever else the machine runs)."""
    _, first = stopwatch(fn)
    repeats = [stopwatch(fn) for _ in range(REPEATS)]
    return repeats[-1][0], first, min(seconds for _, seconds in repeats)


# --------------------------------------------------------------------------------------------------------
# Setup


def prepared_run(run_dir: str | None, task: str) -> tuple[StudyConfig, float]:
    """The task's config on a run folder whose curate stage is done: the given task folder as it is, or a
    temporary study prepared, cold-started, profiled and curated here; and the seconds that took."""
    if run_dir:
        cfg = load_config(None).for_task(task).model_copy(update={"run_dir": run_dir})
        try:
            upstream(RunDir(run_dir).curate)
        except StageError as err:  # one line naming the stage to run first
            raise SystemExit(f"error: {err}") from None
        return cfg, 0.0
    root = Path(tempfile.mkdtemp(prefix="dcsft-bench-")) / "run"
    cfg = load_config(None, [f"run_dir={root}"]).for_task(task)
    started = time.perf_counter()
    for name in DATA_STAGES:
        run_stage(name, cfg)
    return cfg, time.perf_counter() - started


def cold_start(cfg: StudyConfig):
    """A fresh cold-started model (training wraps its model with LoRA in place) and its processor."""
    folder = RunDir(cfg.run_dir).coldstart_model
    return load_model(folder, cfg.model), load_processor(folder, cfg.model)


# --------------------------------------------------------------------------------------------------------
# SFT


def dcsft_sft(cfg: StudyConfig, records: list[dict], steps: int) -> dict:
    """dcsft's SFT as `dcsft train` runs it (without checkpoints), its Trainer steps split into parts."""
    model, processor = cold_start(cfg)
    t = cfg.train
    step_ends = []
    clock = Clock()
    parts = [
        *TRAINER_PARTS,
        (DataCollatorForVisionLanguageModeling, "torch_call", "collator (processor)"),
        (SFTTrainer, "compute_loss", "forward + loss"),
    ]
    with tempfile.TemporaryDirectory() as out, clock.patched(parts):
        run = sft.SFTRun(
            output_dir=Path(out),
            lr=t.lr,
            batch_size=t.batch_size,
            grad_accum=t.grad_accum,
            warmup_ratio=t.warmup_ratio,
            max_steps=steps,
            seed=cfg.seed,
            lora=t.lora,
            save_steps=None,
        )
        _, whole = stopwatch(
            lambda: sft.train(model, processor, records, run, lambda _: step_ends.append(time.perf_counter()))
        )
    between_step_ends = [b - a for a, b in zip(step_ends, step_ends[1:])]  # whole steps, the first left out
    return {
        "setup_s": round(whole - clock.loop_s, 2),
        "setup_parts_s": {part: round(s, 2) for part, s in clock.setup.items()},
        "loop_s": round(clock.loop_s, 2),
        "ms_per_step": round(1000 * clock.loop_s / steps, 2),
        "median_step_ms": round(1000 * statistics.median(between_step_ends), 2),
        "split": clock.split(steps),
    }


def collated_batches(processor, records: list[dict], batch_size: int, seed: int) -> tuple[list[dict], float]:
    """One epoch of batches in a seeded order, each put through TRL's own collator as SFTTrainer sets it up
    (loss on the completion only); and the seconds per batch that took, image decoding included."""
    rows = sft.to_dataset(random.Random(seed).sample(records, len(records)))
    collate = DataCollatorForVisionLanguageModeling(processor=processor, completion_only_loss=True)
    starts = range(0, len(rows), batch_size)
    batches, seconds = stopwatch(
        lambda: [collate([rows[i] for i in range(s, min(s + batch_size, len(rows)))]) for s in starts]
    )
    return batches, seconds / len(batches)


def floor_sft(cfg: StudyConfig, records: list[dict], steps: int) -> dict:
    """A bare PyTorch loop doing an SFT step's arithmetic on batches collated beforehand."""
    model, processor = cold_start(cfg)
    model = peft.get_peft_model(model, sft.peft_config(cfg.train.lora))
    model.train()  # LoRA dropout on, as in the Trainer
    t = cfg.train
    batches, collate_s = collated_batches(processor, records, t.batch_size, cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    # What the Trainer builds by default: optim adamw_torch_fused, weight_decay 0, max_grad_norm 1.0.
    optimizer = torch.optim.AdamW(params, lr=t.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, fused=True)
    total = SFT_WARMUP_STEPS + steps
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(t.warmup_ratio * total), total)
    micro_batches = cycle(batches)

    def step():
        for batch in islice(micro_batches, t.grad_accum):
            (model(**batch, use_cache=False).loss / t.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(SFT_WARMUP_STEPS):
        step()
    _, seconds = stopwatch(lambda: [step() for _ in range(steps)])
    return {
        "ms_per_step": round(1000 * seconds / steps, 2),
        "collate_ms_per_batch": round(1000 * collate_s, 2),
    }


# --------------------------------------------------------------------------------------------------------
# Decoding floors


def warped(scores: torch.Tensor, p: ProfileConfig) -> torch.Tensor:
    """Logits as `generate` samples from them: temperature, then top-k, then top-p (over the last dim)."""
    scores = scores / p.temperature
    if p.top_k:
        kth = scores.topk(min(p.top_k, scores.shape[-1]), dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, -math.inf)
    if p.top_p < 1.0:
        ordered, order = scores.sort(dim=-1)
        cut = ordered.softmax(dim=-1).cumsum(dim=-1) <= 1 - p.top_p
        cut[..., -1] = False  # the most likely token always stays
        scores = scores.masked_fill(cut.scatter(-1, order, cut), -math.inf)
    return scores


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


def sampler(p: ProfileConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda logits: torch.multinomial(warped(logits, p).softmax(dim=-1), 1).squeeze(-1)


@torch.no_grad()
def floor_decode(model, inputs: dict, max_new_tokens: int, choose: Callable, copies: int = 1) -> torch.Tensor:
    """The new tokens of a bare decode: one prefill of the prompts, each prompt's KV cache repeated `copies`
    times, then one forward per token from the cache, the token picked by `choose`, until every row stops."""
    stops = torch.tensor(sorted(stop_token_ids(model)), device=model.device)
    pad = model.generation_config.pad_token_id
    prompt = model(**inputs, use_cache=True, logits_to_keep=1)
    cache, logits, mask = prompt.cache, prompt.logits[:, -1], inputs["attention_mask"]
    # Qwen2.5-VL's rotary position of the first new token, alike on its 3 axes: the prompt's length (padding
    # left out) plus the offset its image grid adds, which the prefill left in rope_deltas.
    position = mask.sum(dim=1, keepdim=True) + model.model.rope_deltas
    if copies > 1:
        cache.batch_repeat_interleave(copies)
        logits, mask, position = (x.repeat_interleave(copies, dim=0) for x in (logits, mask, position))
    done = torch.zeros(logits.shape[0], dtype=torch.bool, device=model.device)
    tokens = []
    for step in range(max_new_tokens):
        token = choose(logits).masked_fill(done, pad)  # finished rows get padding, as generate gives them
        tokens.append(token)
        done |= torch.isin(token, stops)
        if done.all() or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        logits = model(
            input_ids=token[:, None],
            attention_mask=mask,
            cache=cache,
            use_cache=True,
            position_ids=(position + step).expand(3, -1, -1),
        ).logits[:, -1]
    return torch.stack(tokens, dim=1)


def batches_of(records: list[dict], size: int) -> list[list[dict]]:
    return [records[start : start + size] for start in range(0, len(records), size)]


def floor_inputs(processor, batches: list[list[dict]], device) -> tuple[list[dict], float, float]:
    """Every batch's processor inputs as prompt_inputs makes them (images opened and patched, prompts
    templated, tokenized, left-padded), made here so that no cache of dcsft's answers; and the seconds of
    the first pass and of the fastest repeat."""

    def process(batch: list[dict]) -> dict:
        images = [Image.open(r["image"]).convert("RGB") for r in batch]
        return processor(
            text=[prompt_text(processor, r["problem"]) for r in batch],
            images=images,
            return_tensors="pt",
            padding=True,
        ).to(device)

    inputs, first, repeat = passes(lambda: [process(batch) for batch in batches])
    return inputs, first, repeat


def compared(ours: Callable, floor: Callable, processor_s: list[float]) -> tuple[object, object, dict]:
    """Both results, and the times: dcsft's first pass against the floor's first processing + compute,
    and dcsft's repeat passes against the floor's compute (the fastest pass of each after the first)."""
    our_result, first, repeat = passes(ours)
    floor_result, floor_first, floor_s = passes(floor)
    processor_first, _ = processor_s
    return (
        our_result,
        floor_result,
        {
            "dcsft_first_s": round(first, 3),
            "dcsft_repeat_s": round(repeat, 3),
            "floor_s": round(floor_s, 3),
            "floor_first_s": round(floor_first, 3),
            "floor_processor_first_s": round(processor_first, 3),
            "first_ratio": round(first / (processor_first + floor_first), 2),
            "repeat_ratio": round(repeat / floor_s, 2),
        },
    )


# --------------------------------------------------------------------------------------------------------
# Evaluation


def evaluation(cfg: StudyConfig, model, processor) -> dict:
    split = id_split(cfg.task)
    records = read_split(RunDir(cfg.run_dir), split)[0]
    batches = batches_of(records, cfg.evaluate.batch_size)
    sampling = Sampling(do_sample=False, max_new_tokens=cfg.evaluate.max_new_tokens)
    inputs, *processor_s = floor_inputs(processor, batches, model.device)
    responses, tokens, times = compared(
        lambda: [
            resp[0]
            for i, batch in enumerate(batches)
            for resp in respond(model, processor, batch, sampling, cfg.seed, i).responses
        ],
        lambda: [floor_decode(model, batch, sampling.max_new_tokens, greedy) for batch in inputs],
        processor_s,
    )
    texts = [text for batch in tokens for text in processor.batch_decode(batch, skip_special_tokens=True)]
    return {
        "split": split,
        "records": len(records),
        "batch_size": cfg.evaluate.batch_size,
        **times,
        "dcsft_repeat_ms_per_record": round(1000 * times["dcsft_repeat_s"] / len(records), 3),
        "floor_ms_per_record": round(1000 * times["floor_s"] / len(records), 3),
        "processor_share_of_dcsft_first": round(processor_s[0] / times["dcsft_first_s"], 4),
        "greedy_mismatches": sum(ours != floor for ours, floor in zip(responses, texts)),
    }


# --------------------------------------------------------------------------------------------------------
# Profiling


@dataclass
class Answers:
    """A batch's accepted answers as right-padded token rows, `copies` rows per record (a record with fewer
    accepted token sequences has empty rows)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    copies: int


def accepted(processor, task, batch: list[dict], device) -> Answers:
    sequences = answer_tokens(processor.tokenizer, [task.accepted_answers(r["solution"]) for r in batch])
    copies = max(len(seqs) for seqs in sequences)
    rows = [seqs[j] if j < len(seqs) else () for seqs in sequences for j in range(copies)]
    width = max(len(row) for row in rows)
    return Answers(
        torch.tensor([list(row) + [0] * (width - len(row)) for row in rows], device=device),
        torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], device=device),
        copies,
    )


@torch.no_grad()
def floor_exact(model, inputs: dict, answers: Answers, p: ProfileConfig) -> torch.Tensor:
    """P(one sampled response is an accepted answer) per record, as `exact` defines it: the prompts'
    prefill, its cache repeated per accepted answer, one teacher-forced forward of the answers, then each
    answer token's and the closing stop token's probability under the sampling warps."""
    prompt = model(**inputs, use_cache=True, logits_to_keep=1)
    copies, width = answers.copies, answers.tokens.shape[1]
    cache = prompt.cache
    cache.batch_repeat_interleave(copies)
    mask = inputs["attention_mask"].repeat_interleave(copies, dim=0)
    start = mask.sum(dim=1, keepdim=True) + model.model.rope_deltas.repeat_interleave(copies, dim=0)
    positions = (start + torch.arange(width, device=model.device)).expand(3, -1, -1)
    logits = model(
        input_ids=answers.tokens,
        attention_mask=torch.cat([mask, answers.mask], dim=1),
        cache=cache,
        position_ids=positions,
    ).logits
    steps = torch.cat([prompt.logits[:, -1:].repeat_interleave(copies, dim=0), logits], dim=1)
    log_p = warped(steps, p).log_softmax(dim=-1)
    tokens = log_p[:, :-1].gather(-1, answers.tokens[..., None]).squeeze(-1)
    tokens = tokens.masked_fill(answers.mask == 0, 0.0)  # padding rows: -inf after top-k, kept out of the sum
    stops = torch.tensor(sorted(stop_token_ids(model)), device=model.device)
    stop = log_p[..., stops].logsumexp(dim=-1).gather(1, answers.mask.sum(dim=1, keepdim=True)).squeeze(1)
    per_answer = (tokens.sum(dim=1) + stop).exp() * answers.mask.any(dim=1)
    return per_answer.view(-1, copies).sum(dim=1)


def profile_method(profiler: Profiler, method: str, batches: list[list[dict]]) -> list[dict]:
    score = getattr(profiler, method)
    return [row for i, batch in enumerate(batches) for row in score(batch, i)]


def profiles(cfg: StudyConfig, model, processor, limit: int) -> dict:
    p, task = cfg.profile, get_task(cfg.task)
    records = read_split(RunDir(cfg.run_dir), "train")[0][:limit]
    batches = batches_of(records, p.batch_size)
    profiler = Profiler(model, processor, task, p, cfg.seed)
    inputs, *processor_s = floor_inputs(processor, batches, model.device)
    results = {"samples": len(records), "batch_size": p.batch_size, "k": p.k}

    rows, tokens, times = compared(
        lambda: profile_method(profiler, "sample", batches),
        lambda: [floor_decode(model, batch, p.max_new_tokens, sampler(p), copies=p.k) for batch in inputs],
        processor_s,
    )
    stops = stop_token_ids(model)
    results["sample"] = {
        **times,
        "dcsft_tokens_generated": sum(r["generated_tokens"] for r in rows),
        "floor_tokens_generated": sum(sum(generated_lengths(t, stops)) for t in tokens),
    }
    if hasattr(task, "accepted_answers"):  # `exact` needs a finite set of accepted answers
        answers = [accepted(processor, task, batch, model.device) for batch in batches]
        rows, probabilities, times = compared(
            lambda: profile_method(profiler, "exact", batches),
            lambda: torch.cat([floor_exact(model, batch, a, p) for batch, a in zip(inputs, answers)]),
            processor_s,
        )
        gap = max(abs(float(floor) - r["p_correct"]) for floor, r in zip(probabilities, rows))
        results["exact"] = {**times, "max_p_correct_gap": gap}
    return results


# --------------------------------------------------------------------------------------------------------
# GRPO


def logps_part() -> str:
    # TRL computes per-token log-probs with grad for the policy's loss, and without for the reference
    # model (beta > 0; also for the old policy if generation and optimizer steps are misaligned, which
    # they are not at grad_accum 1).
    return "policy forward + loss" if torch.is_grad_enabled() else "reference forward (no grad)"


def dcsft_grpo(cfg: StudyConfig, records: list[dict], steps: int) -> dict:
    """dcsft's GRPO as `dcsft train` runs it (without checkpoints), its steps split by TRL's methods."""
    model, processor = cold_start(cfg)
    g = cfg.grpo.model_copy(update={"steps": steps, "save_steps": None})
    clock = Clock()
    processing = "processor (images + text)"  # TRL processes each prompt twice: to generate, to score
    parts = [
        *TRAINER_PARTS,
        (GRPOTrainer, "_generate", "generation"),
        (GRPOTrainer, "_tokenize_prompts", processing),
        (type(processor), "__call__", processing),
        (GRPOTrainer, "_get_per_token_logps_and_entropies", logps_part),
        (GRPOTrainer, "compute_loss", "policy forward + loss"),
        (GRPOTrainer, "_calculate_rewards", "reward"),
    ]
    reward = get_task(cfg.task).reward
    with tempfile.TemporaryDirectory() as out, clock.patched(parts):
        (_, stats), whole = stopwatch(
            lambda: grpo.train(model, processor, records, reward, g, cfg.train.lora, Path(out), cfg.seed)
        )
    steps = stats["steps"]
    return {
        "steps": steps,
        "completions_per_step": g.prompts_per_step * g.num_generations * g.grad_accum,
        "beta": g.beta,
        "setup_s": round(whole - clock.loop_s, 2),
        "loop_s": round(clock.loop_s, 2),
        "ms_per_step": round(1000 * clock.loop_s / steps, 2),
        "split": clock.split(steps),
    }


# --------------------------------------------------------------------------------------------------------
# Report


def stage_rows(report: dict) -> list[tuple[str, float, float, float]]:
    """(stage, dcsft, floor, ratio): the SFT step, each generation stage's first and repeat pass, except
    exact's first, which reads the batches `sample` has just processed (not a first pass if dcsft caches)."""
    sft_run, ev, prof = report["sft"], report["evaluate"], report["profile"]
    rows = [
        ("SFT step, ms", sft_run["dcsft"]["ms_per_step"], sft_run["floor"]["ms_per_step"], sft_run["ratio"])
    ]
    for name, f in (
        (f"evaluate {ev['split']} ({ev['records']})", ev),
        (f"profile sample ({prof['samples']})", prof["sample"]),
    ):
        floor_first = f["floor_processor_first_s"] + f["floor_first_s"]
        rows += [
            (f"{name}, 1st pass, s", f["dcsft_first_s"], floor_first, f["first_ratio"]),
            (f"{name}, repeat, s", f["dcsft_repeat_s"], f["floor_s"], f["repeat_ratio"]),
        ]
    if "exact" in prof:
        f = prof["exact"]
        rows.append(
            (
                f"profile exact ({prof['samples']}), repeat, s",
                f["dcsft_repeat_s"],
                f["floor_s"],
                f["repeat_ratio"],
            )
        )
    return rows


def print_split(title: str, split: dict) -> None:
    print(f"\n{title:<36} {'ms/step':>9} {'share':>7}")
    for part, figures in split.items():
        print(f"{part:<36} {figures['ms_per_step']:>9.2f} {100 * figures['share']:>6.1f}%")


def print_report(report: dict) -> None:
    print(f"\n{'stage':<36} {'dcsft':>9} {'floor':>9} {'ratio':>7}")
    for stage, ours, floor, ratio in stage_rows(report):
        print(f"{stage:<36} {ours:>9.3f} {floor:>9.3f} {ratio:>6.2f}x")
    g = report["grpo"]
    print(f"{'GRPO step, ms':<36} {g['ms_per_step']:>9.1f} {'-':>9} {'-':>7}")

    ours, ev, prof = report["sft"]["dcsft"], report["evaluate"], report["profile"]
    setup_parts = "".join(f", {part} {s} s" for part, s in ours["setup_parts_s"].items())
    print(
        f"\nSFT: setup {ours['setup_s']} s{setup_parts}; median step {ours['median_step_ms']} ms; "
        f"the floor collates a batch once in {report['sft']['floor']['collate_ms_per_batch']} ms"
    )
    print(
        f"evaluate: {ev['dcsft_repeat_ms_per_record']} ms per record (repeat), floor "
        f"{ev['floor_ms_per_record']} ms; the processor takes {ev['floor_processor_first_s']} s, "
        f"{100 * ev['processor_share_of_dcsft_first']:.0f}% of dcsft's first pass; the greedy floor's "
        f"texts differ from dcsft's on {ev['greedy_mismatches']} of {ev['records']} records"
    )
    exact = (
        f"; the exact floor's P(correct) is within {prof['exact']['max_p_correct_gap']:.1e} of dcsft's"
        if "exact" in prof
        else ""
    )
    print(
        f"profile: tokens generated by sample {prof['sample']['dcsft_tokens_generated']:,}, by its floor "
        f"{prof['sample']['floor_tokens_generated']:,}{exact}"
    )
    print(f"GRPO: {g['steps']} steps of {g['completions_per_step']} completions, setup {g['setup_s']} s")
    print_split("SFT step (dcsft)", ours["split"])
    print_split("GRPO step (dcsft)", g["split"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a study's task folder, curate done (default: a new temp one)")
    parser.add_argument("--task", default="classification", help="classification or grounding (no `exact`)")
    parser.add_argument("--steps", type=int, default=100, help="SFT steps, dcsft's and the floor's")
    parser.add_argument("--grpo-steps", type=int, default=30)
    parser.add_argument("--limit", type=int, default=400, help="training samples to profile")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/study_speed[_TASK].json")
    args = parser.parse_args()
    suffix = "" if args.task == "classification" else f"_{args.task}"
    out = Path(args.out or Path(__file__).parent / "results" / f"study_speed{suffix}.json")

    started = time.perf_counter()
    cfg, setup_s = prepared_run(args.run_dir, args.task)
    torch.set_num_threads(cfg.model.threads)  # as the study runs; dcsft's code and the floors alike
    buckets = bucket_records(RunDir(cfg.run_dir))
    sft_records = records_for(cfg, "sft-m", buckets, cfg.seed)[0]
    ours, floor = dcsft_sft(cfg, sft_records, args.steps), floor_sft(cfg, sft_records, args.steps)
    model, processor = cold_start(cfg)
    report = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "task": cfg.task,
        "run_dir": cfg.run_dir,
        "setup_s": round(setup_s, 1),
        "sft": {
            "records": len(sft_records),
            "steps": args.steps,
            "batch_size": cfg.train.batch_size,
            "dcsft": ours,
            "floor": floor,
            "ratio": round(ours["ms_per_step"] / floor["ms_per_step"], 2),
        },
        "evaluate": evaluation(cfg, model, processor),
        "profile": profiles(cfg, model, processor, args.limit),
        "grpo": dcsft_grpo(cfg, records_for(cfg, "grpo", buckets, cfg.seed)[0], args.grpo_steps),
    }
    report["benchmark_s"] = round(time.perf_counter() - started, 1)
    print_report(report)
    print(f"\nbenchmark {report['benchmark_s']} s (setup {report['setup_s']} s)")
    write_json(out, report)
    print(f"written {out}")
    mismatches = report["evaluate"]["greedy_mismatches"]
    if mismatches:
        raise SystemExit(
            f"the greedy floor's texts differ from dcsft's on {mismatches} records: "
            "it does not decode what dcsft decodes"
        )


if __name__ == "__main__":
    main()
