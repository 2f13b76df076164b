"""train: LoRA SFT (or GRPO) from the cold-started model, one run per method and training seed.

Reads: 02_coldstart/model/, 04_curate/assignments.jsonl joined with 01_prepare/records/train.json
(dcsft.prepared.curated_records: the records with their id and meta, which the GRPO reward verifies
against).
Writes: 05_train/<method>/seed<s>/adapter/ (PEFT LoRA adapter), loss.jsonl, stats.json (with
the compute spent: seconds, steps, samples seen, tokens forwarded and generated), DONE.

Methods:
- sft (every bucket), sft-e, sft-m, sft-h (one bucket each), sft-em (easy + medium, i.e.
  only the hard samples dropped);
- sft-window: the samples whose profiled pass rate lies strictly inside `curate.window`
  (open-r1's 0.1 < p < 0.9), from assignments.jsonl whatever `curate.rule` is, so that it
  stands beside sft-m in one study;
- sft-m+h<x>: the medium bucket plus hard samples drawn (seeded) to make up x% of the mix,
  the paper's hard-fraction ablation (5% hard cost 3.74 points on ImageNet-R there);
- curriculum: every training sample, read once in order easy -> medium -> hard (within a
  bucket, highest pass rate first) over the same number of steps as sft (supplement §2);
- grpo: TRL's GRPOTrainer on every training sample, reward = the task's verifier (`grpo.*`).
Every SFT method takes the same number of optimizer steps; with `train.balance` each bucket
of a bucket method is first subsampled (seeded) to the smallest non-empty bucket, so that
only difficulty differs. A method whose subset is empty is recorded as "n/a (0 samples)".
`seeds` > 1 trains every method once per seed (seed, seed+1, ...).
Paper: rank 32, alpha 64, dropout 0.05, lr 1e-5, warmup 0.1.

Example: dcsft train --set train.methods=[sft,sft-m,sft-m+h5] --set seeds=3
"""

from __future__ import annotations

import random
from pathlib import Path

from dcsft import console
from dcsft.config import NOT_IN_FINGERPRINT, StudyConfig, hard_mix_percent
from dcsft.console import progress
from dcsft.models.loading import load_model, load_processor
from dcsft.prepared import curated_records, read_split
from dcsft.rundir import RunDir, fingerprint, read_jsonl
from dcsft.stage import run_stage, upstream
from dcsft.tasks import get_task, verifier_version
from dcsft.train import grpo, sft

BUCKETS = ("easy", "medium", "hard")
METHOD_BUCKETS = {
    "sft": BUCKETS,
    "sft-e": ("easy",),
    "sft-m": ("medium",),
    "sft-h": ("hard",),
    "sft-em": ("easy", "medium"),
    "curriculum": BUCKETS,
    "grpo": BUCKETS,
}


WINDOW_METHOD = "sft-window"  # not a bucket method: chosen by pass rate (in_window)


def buckets_of(method: str) -> tuple[str, ...]:
    if method == WINDOW_METHOD:
        return ("pass-rate window",)
    return ("medium", "hard") if hard_mix_percent(method) is not None else METHOD_BUCKETS[method]


def bucket_records(rundir: RunDir) -> dict[str, list[dict]]:
    """Each bucket's prepared records (with id and meta), as curate's assignments.jsonl assigns them."""
    return {b: curated_records(rundir, b) for b in BUCKETS}


def subset(method: str, buckets: dict[str, list[dict]], balance: bool, seed: int) -> list[dict]:
    """The training records of a bucket method; with `balance`, each bucket in it is
    subsampled to the smallest non-empty bucket's size."""
    sizes = [len(records) for records in buckets.values() if records]
    cap = min(sizes) if balance and sizes else None
    chosen = []
    for bucket in METHOD_BUCKETS[method]:
        records = buckets[bucket]
        if cap is not None and len(records) > cap:
            records = random.Random(f"{seed}-{bucket}").sample(records, cap)
        chosen.extend(records)
    return chosen


def hard_mix(medium: list[dict], hard: list[dict], percent: float, seed: int) -> tuple[list[dict], float]:
    """Medium plus enough seeded hard samples to be `percent`% of the mix (all of them if there
    are too few); returns the records and the hard share actually reached."""
    wanted = round(percent / (100 - percent) * len(medium))
    drawn = random.Random(f"{seed}-hard-mix").sample(hard, min(wanted, len(hard)))
    mix = medium + drawn
    return mix, round(100 * len(drawn) / len(mix), 2) if mix else 0.0


def curriculum(assignments: list[dict], train: dict[str, dict], total: int, seed: int) -> list[dict]:
    """Every sample ordered easy -> medium -> hard, highest pass rate first within a bucket
    (ties in seeded random order), stretched or thinned evenly to `total` reads so the order
    spans the whole run."""
    rng = random.Random(f"{seed}-curriculum")
    shuffled = rng.sample(assignments, len(assignments))
    ordered = sorted(
        shuffled, key=lambda a: (BUCKETS.index(a["bucket"]), -a.get("pass_rate", a["pass_count"] / a["k"]))
    )
    return (
        [train[ordered[(2 * i + 1) * len(ordered) // (2 * total)]["id"]] for i in range(total)]
        if ordered
        else []
    )


def in_window(assignments: list[dict], window: list[float]) -> list[str]:
    """The ids, in curate's order, of the samples whose pass rate p has low < p < high (`pass_rate`,
    else pass_count / k for assignments written before curate recorded it)."""
    low, high = window
    rates = ((a["id"], a.get("pass_rate", a["pass_count"] / a["k"])) for a in assignments)
    return [i for i, p in rates if low < p < high]


def window_records(
    ids: list[str], train: dict[str, dict], buckets: dict[str, list[dict]], balance: bool, seed: int
) -> list[dict]:
    """The training records of `ids`; with `balance`, subsampled (seeded) to the smallest non-empty
    bucket's size, as a bucket method's bucket is."""
    records = [train[i] for i in ids]
    sizes = [len(b) for b in buckets.values() if b]
    if balance and sizes and len(records) > min(sizes):
        records = random.Random(f"{seed}-window").sample(records, min(sizes))
    return records


def records_for(
    cfg: StudyConfig, method: str, buckets: dict[str, list[dict]], seed: int
) -> tuple[list[dict], dict]:
    """(records in training order, what the stats should say about them)."""
    t = cfg.train
    percent = hard_mix_percent(method)
    if percent is not None:
        if not buckets["medium"] or (percent > 0 and not buckets["hard"]):
            return [], {}
        records, reached = hard_mix(buckets["medium"], buckets["hard"], percent, seed)
        if reached < percent - 0.5:
            console.warn(f"{method}: only {len(buckets['hard'])} hard samples, {reached}% of the mix")
        return records, {"hard_percent": reached}
    if method == "curriculum":
        rundir = RunDir(cfg.run_dir)
        assignments = read_jsonl(rundir.curate.root / "assignments.jsonl")
        train = {r["id"]: r for r in read_split(rundir, "train")[0]}
        return curriculum(assignments, train, t.steps * t.batch_size * t.grad_accum, seed), {}
    if method == WINDOW_METHOD:
        rundir = RunDir(cfg.run_dir)
        ids = in_window(read_jsonl(rundir.curate.root / "assignments.jsonl"), cfg.curate.window)
        train = {r["id"]: r for r in read_split(rundir, "train")[0]}
        return window_records(ids, train, buckets, t.balance, seed), {"window": cfg.curate.window}
    return subset(method, buckets, t.balance, seed), {}


def stage_fingerprint(cfg: StudyConfig, method: str, seed: int) -> str:
    rundir = RunDir(cfg.run_dir)
    settings = cfg.train.model_dump(exclude={"methods", *NOT_IN_FINGERPRINT})
    if method == "grpo":
        settings = {
            "grpo": cfg.grpo.model_dump(exclude=NOT_IN_FINGERPRINT),
            "lora": cfg.train.lora.model_dump(),
            "task": cfg.task,
            "verifier": verifier_version(cfg.task, cfg.verifier),
            **({"freeze_vision": True} if cfg.train.freeze_vision else {}),
        }
    if method == WINDOW_METHOD:  # its samples depend on the window, whatever curate's rule
        settings = {**settings, "window": cfg.curate.window}
    return fingerprint(
        "train",
        upstream(rundir.curate),
        upstream(rundir.coldstart),
        settings,
        method,
        cfg.model.model_dump(exclude=NOT_IN_FINGERPRINT),
        seed,
    )


def train_method(cfg: StudyConfig, method: str, seed: int, buckets: dict[str, list[dict]]) -> dict:
    rundir = RunDir(cfg.run_dir)
    t = cfg.train
    name = f"{method} seed {seed}"

    def body(folder: Path):
        records, about = records_for(cfg, method, buckets, seed)
        if not records:
            return f"{name}: n/a (0 samples in {'+'.join(buckets_of(method))})", {"samples": 0, "n_a": True}
        model = load_model(rundir.coldstart_model, cfg.model)
        processor = load_processor(rundir.coldstart_model, cfg.model)
        if method == "grpo":
            with progress(
                f"{name} (LoRA GRPO, {cfg.grpo.num_generations} generations per prompt)", cfg.grpo.steps
            ) as advance:
                model, stats = grpo.train(
                    model,
                    processor,
                    records,
                    get_task(cfg.task, cfg.verifier).reward,
                    cfg.grpo,
                    t.lora,
                    folder,
                    seed,
                    advance,
                    freeze_vision=t.freeze_vision,
                    save_to=rundir.adapter(method, seed),
                )
            if stats["reward_failures"]:
                console.warn(
                    f"{name}: {stats['reward_failures']} of {stats['completions']} completions got no "
                    "usable reward (raised or not a number) and scored 0"
                )
        else:
            run_cfg = sft.SFTRun(
                output_dir=folder,
                lr=t.lr,
                batch_size=t.batch_size,
                grad_accum=t.grad_accum,
                warmup_ratio=t.warmup_ratio,
                max_steps=t.steps,
                seed=seed,
                lora=t.lora,
                in_order=method == "curriculum",
                save_steps=t.save_steps,
                extra=t.extra,
                freeze_vision=t.freeze_vision,
                save_to=rundir.adapter(method, seed),
            )
            with progress(f"{name} (LoRA SFT on {len(records)})", t.steps) as advance:
                model, stats = sft.train(model, processor, records, run_cfg, advance)
        samples = len({r["id"] for r in records}) if method == "curriculum" else len(records)
        return (
            f"{name}: {stats['steps']} steps on {samples} samples, loss {stats['train_loss']}",
            {**stats, **about, "samples": samples, "n_a": False},
        )

    # under accelerate launch every rank trains; rank 0 writes the markers
    return run_stage(rundir.train(method, seed), stage_fingerprint(cfg, method, seed), body)


def run(cfg: StudyConfig) -> dict[str, dict[int, dict]]:
    rundir = RunDir(cfg.run_dir)
    upstream(rundir.curate)
    buckets = bucket_records(rundir)
    return {
        method: {seed: train_method(cfg, method, seed, buckets) for seed in cfg.train_seeds}
        for method in cfg.train.methods
    }
