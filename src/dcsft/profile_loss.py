"""`profile.method: loss` after its teacher-forced pass (dcsft.profiling.Profiler.loss): the
seeded calibration subset sampled with `sample`, the quantile thresholds its bucket shares set
on the loss score, and the profile rows (see dcsft.profiling's docstring)."""

from __future__ import annotations

import random
from pathlib import Path

from dcsft import distributed
from dcsft.config import ProfileConfig
from dcsft.curate import bucket_of  # the paper's all-or-none rule, the calibration's
from dcsft.resumable import batched_jsonl
from dcsft.rundir import write_jsonl

BUCKETS = ("easy", "medium", "hard")
LOSS_FILE = "loss.jsonl"  # `loss`, pass 1: each sample's answer score, appended per batch
CALIBRATION_FILE = "calibration.jsonl"  # `loss`: the calibration subset's sampled rows, per batch


def calibration_subset(records: list[dict], n: int, seed: int) -> list[dict]:
    """`n` training records (all if fewer), drawn with the study seed, in training-set order."""
    chosen = set(random.Random(f"{seed}-loss-calibration").sample(range(len(records)), min(n, len(records))))
    return [r for i, r in enumerate(records) if i in chosen]


def quantile_buckets(scores: list[float], shares: dict[str, float]) -> tuple[list[str], dict]:
    """Buckets by rank of score: the lowest round(shares["hard"] * n) hard, the highest
    round(shares["easy"] * n) easy, the rest medium (equal scores ranked in list order); and the
    thresholds that rule amounts to: hard at or below `hard_at_most`, easy at or above `easy_at_least`."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: (scores[i], i))
    hard = round(shares["hard"] * n)
    easy = min(round(shares["easy"] * n), n - hard)
    buckets = ["medium"] * n
    for rank, i in enumerate(order):
        buckets[i] = "hard" if rank < hard else "easy" if rank >= n - easy else "medium"
    thresholds = {
        "hard_at_most": scores[order[hard - 1]] if hard else None,
        "easy_at_least": scores[order[n - easy]] if easy else None,
    }
    return buckets, thresholds


def loss_rows(scored: list[dict], sampled: list[dict], k: int) -> tuple[list[dict], dict]:
    """`loss`'s profile rows (see the module docstring) from pass 1's rows (every sample) and the
    calibration's sampled rows, and the stats that say how the buckets were set."""
    calibration = {r["id"]: r for r in sampled}
    counts = {b: sum(bucket_of(r["pass_count"], r["k"]) == b for r in sampled) for b in BUCKETS}
    shares = {b: counts[b] / max(1, len(sampled)) for b in BUCKETS}
    rest = [r for r in scored if r["id"] not in calibration]
    buckets, thresholds = quantile_buckets([r["answer_logprob"] for r in rest], shares)
    # pass_rate: quantile matching onto the calibration's pass rates (1 easy, 0 hard, the medium
    # calibration samples' rates spread by rank over the medium samples)
    medium_rates = sorted(r["pass_rate"] for r in sampled if bucket_of(r["pass_count"], r["k"]) == "medium")
    medium = sorted((r["answer_logprob"], i) for i, (r, b) in enumerate(zip(rest, buckets)) if b == "medium")
    rates = {i: 1.0 if b == "easy" else 0.0 for i, b in enumerate(buckets) if b != "medium"}
    for rank, (_, i) in enumerate(medium):
        at = (2 * rank + 1) * len(medium_rates) // (2 * len(medium))
        rates[i] = medium_rates[at] if medium_rates else 0.5
    estimated = {r["id"]: (b, rates[i]) for i, (r, b) in enumerate(zip(rest, buckets))}
    rows, agree = [], 0
    for r in scored:
        loss_fields = {key: r[key] for key in ("answer_logprob", "answer_prob", "answer_tokens")}
        if r["id"] in calibration:
            row = calibration[r["id"]]
            bucket = bucket_of(row["pass_count"], row["k"])
            agree += bucket == threshold_bucket(r["answer_logprob"], thresholds)
            forwarded = row["forwarded_tokens"] + r["forwarded_tokens"]
            rows.append(
                {**row, "forwarded_tokens": forwarded, **loss_fields, "bucket": bucket, "calibration": True}
            )
            continue
        bucket, rate = estimated[r["id"]]
        count = k if bucket == "easy" else 0 if bucket == "hard" else min(k - 1, max(1, round(rate * k)))
        rows.append(
            {
                "id": r["id"],
                "solution": r["solution"],
                "responses": [],
                "correct": [],
                "pass_count": count,
                "k": k,
                "pass_rate": rate,
                "prompt_tokens": r["prompt_tokens"],
                "generated_tokens": 0,
                "forwarded_tokens": r["forwarded_tokens"],
                **loss_fields,
                "bucket": bucket,
                "calibration": False,
            }
        )
    stats = {
        "calibration_samples": len(sampled),
        "calibration_buckets": counts,
        "loss_thresholds": thresholds,
        "calibration_agreement": round(agree / len(sampled), 4) if sampled else None,
        "buckets": {b: sum(row["bucket"] == b for row in rows) for b in BUCKETS},
    }
    return rows, stats


def threshold_bucket(score: float, thresholds: dict) -> str:
    if thresholds["hard_at_most"] is not None and score <= thresholds["hard_at_most"]:
        return "hard"
    if thresholds["easy_at_least"] is not None and score >= thresholds["easy_at_least"]:
        return "easy"
    return "medium"


def profile_by_loss(
    folder: Path, out: Path, records: list[dict], p: ProfileConfig, seed: int, profiler
) -> tuple[list[dict], int, dict]:
    """`loss` in three steps, each resumable: pass 1 scores every sample (folder/loss.jsonl, per
    batch), the seeded calibration subset is sampled (folder/calibration.jsonl, per batch with
    batch-indexed seeds), then the buckets, which need every score, are written to `out` at once.
    `profiler()` gives the Profiler (loaded once, only if some batch is missing)."""
    scored, start = batched_jsonl(
        folder / LOSS_FILE, records, p.batch_size, "profile", "profiling (loss)", lambda: profiler().loss
    )
    chosen = calibration_subset(records, p.loss_calibration, seed)
    sampled, _ = batched_jsonl(
        folder / CALIBRATION_FILE,
        chosen,
        p.batch_size,
        "profile",
        f"calibrating (sample, k={p.k}, {len(chosen)} samples)",
        lambda: profiler().sample,
    )
    rows, stats = loss_rows(scored, sampled, p.k)
    if distributed.is_main():
        write_jsonl(out, rows)
    return rows, start, stats
