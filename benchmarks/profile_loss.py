"""Profiling by loss: how much faster than `sample`, and does it find the same buckets?

On both embedded tasks (classification and grounding), each on its own cold-started model and
whole training set, in one process, this runs side by side:
- sample: dcsft's `sample` (k draws per sample, shared prefill), the reference buckets;
- sample, seed + 1: the same with another seed, the agreement that sampling noise allows;
- loss: the stage's `loss` as `dcsft profile` runs it (dcsft.profile_loss.profile_by_loss: one
  teacher-forced pass over every gold answer, `profile.loss_calibration` samples drawn with
  `sample`, quantile buckets), into a temporary folder.
Each method is timed from cold processor caches, as in a fresh `dcsft profile` process, after an
untimed warm-up (image files read once, one batch of each method); all use batches of 16 and the
torch threads `dcsft profile` uses (`model.threads`, 1 by default, set when the model loads).
Agreement with `sample` is measured on the samples `loss` did not calibrate on (calibration
samples carry their own sampled bucket): the 3x3 confusion matrix, Cohen's kappa,
Spearman's rho between the loss score (mean answer log-probability) and the sampled pass rate,
and rank AUCs of the score (Mann-Whitney U / (n1 n2), ties count half):
- easy vs hard: P(a sampled-easy sample scores above a sampled-hard one);
- easy vs medium and medium vs hard: the same for each neighbouring pair;
- medium vs rest: P(a sampled-medium sample lies closer, in score rank, to the middle of the
  band loss calls medium than a sampled easy or hard one), i.e. how well the score singles out
  the medium bucket, the one DC-SFT trains on.

    python benchmarks/profile_loss.py                      # prepares + cold-starts both tasks in a temp dir
    python benchmarks/profile_loss.py --run-dir runs/default --limit 400

Writes benchmarks/results/profile_loss.json (the README's figures come from it).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from profile_speed import DCSFT_BATCH, prepared_run, run_method
from scipy.stats import mannwhitneyu, rankdata, spearmanr

from dcsft.curate import bucket_of
from dcsft.models import processed
from dcsft.models.loading import load_model, load_processor
from dcsft.prepared import read_split
from dcsft.profile_loss import profile_by_loss
from dcsft.profiling import Profiler, compute
from dcsft.rundir import RunDir, write_json
from dcsft.tasks import get_task

BUCKETS = ("easy", "medium", "hard")


class TimedProfiler(Profiler):
    """A Profiler that adds up the seconds spent in its `loss` and `sample` batches (`spent`)."""

    def timed(self, method: str, batch: list[dict], batch_index: int) -> list[dict]:
        self.spent = getattr(self, "spent", {"loss": 0.0, "sample": 0.0})
        started = time.perf_counter()
        rows = getattr(super(), method)(batch, batch_index)
        self.spent[method] += time.perf_counter() - started
        return rows

    def loss(self, batch, batch_index):
        return self.timed("loss", batch, batch_index)

    def sample(self, batch, batch_index):
        return self.timed("sample", batch, batch_index)


def kappa(table: np.ndarray) -> float:
    """Cohen's kappa of a square confusion matrix."""
    n = table.sum()
    observed = np.trace(table) / n
    expected = table.sum(axis=0) @ table.sum(axis=1) / n**2
    return float((observed - expected) / (1 - expected))


def auc(positive: list[float], negative: list[float]) -> float | None:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney U / (n1 n2))."""
    if not positive or not negative:
        return None
    return round(float(mannwhitneyu(positive, negative).statistic) / (len(positive) * len(negative)), 4)


def agreement(reference: list[dict], loss: list[dict]) -> dict:
    """`loss` against the `sample` reference, on the samples loss estimated (not calibrated on)."""
    pairs = [(ref, row) for ref, row in zip(reference, loss) if not row.get("calibration")]
    sampled = [bucket_of(ref["pass_count"], ref["k"]) for ref, _ in pairs]
    estimated = [row.get("bucket") or bucket_of(row["pass_count"], row["k"]) for _, row in pairs]
    table = np.zeros((3, 3), dtype=int)
    for s, e in zip(sampled, estimated):
        table[BUCKETS.index(s), BUCKETS.index(e)] += 1
    result = {
        "samples": len(pairs),
        "confusion_sample_rows_loss_columns": table.tolist(),
        "same_bucket_share": round(float(np.trace(table) / table.sum()), 4),
        "kappa": round(kappa(table), 4),
    }
    if "answer_logprob" not in pairs[0][1]:
        return result
    score = [row["answer_logprob"] for _, row in pairs]
    by = {b: [x for x, s in zip(score, sampled) if s == b] for b in BUCKETS}
    # the middle of the band loss calls medium, in rank quantiles, and each sample's distance from it
    quantile = (rankdata(score) - 0.5) / len(score)
    medium_q = [q for q, e in zip(quantile, estimated) if e == "medium"]
    middle = (min(medium_q) + max(medium_q)) / 2 if medium_q else 0.5
    closeness = [-abs(q - middle) for q in quantile]
    return {
        **result,
        "spearman_score_vs_sampled_pass_rate": round(
            float(spearmanr(score, [ref["pass_rate"] for ref, _ in pairs]).statistic), 4
        ),
        "auc_easy_vs_hard": auc(by["easy"], by["hard"]),
        "auc_easy_vs_medium": auc(by["easy"], by["medium"]),
        "auc_medium_vs_hard": auc(by["medium"], by["hard"]),
        "auc_medium_vs_rest": auc(
            [c for c, s in zip(closeness, sampled) if s == "medium"],
            [c for c, s in zip(closeness, sampled) if s != "medium"],
        ),
        "mean_score_by_sampled_bucket": {
            b: round(float(np.mean(v)), 4) if v else None for b, v in by.items()
        },
    }


def counts(rows: list[dict]) -> dict:
    names = [row.get("bucket") or bucket_of(row["pass_count"], row["k"]) for row in rows]
    return {b: names.count(b) for b in BUCKETS}


def bench_task(task_name: str, run_dir: str | None, limit: int | None, k: int) -> dict:
    cfg, root = prepared_run(run_dir, task_name, [f"profile.k={k}"])
    rundir = RunDir(root)
    records = read_split(rundir, "train")[0][:limit]
    model = load_model(rundir.coldstart_model, cfg.model)
    processor = load_processor(rundir.coldstart_model, cfg.model)
    task = get_task(cfg.task)
    p = cfg.profile.model_copy(update={"batch_size": DCSFT_BATCH, "method": "loss"})

    def timed(fn):
        processed._entries.clear()  # each method reads and processes its images, as a fresh process does
        started = time.perf_counter()
        rows = fn()
        return rows, round(time.perf_counter() - started, 2)

    # untimed warm-up: the image files into the OS cache, one batch of each method through the model
    for record in records:
        Path(record["image"]).read_bytes()
    warm = Profiler(model, processor, task, p, cfg.seed)
    warm.sample(records[:DCSFT_BATCH], 0)
    warm.loss(records[:DCSFT_BATCH], 0)

    def sample(seed: int) -> list[dict]:
        return run_method(Profiler(model, processor, task, p, seed), "sample", records)

    def loss() -> tuple[list[dict], dict, TimedProfiler]:
        profiler = TimedProfiler(model, processor, task, p, cfg.seed)
        with tempfile.TemporaryDirectory(prefix="dcsft-loss-") as folder:
            out = Path(folder) / "profile.jsonl"
            found, _, stats = profile_by_loss(Path(folder), out, records, p, cfg.seed, lambda: profiler)
        return found, stats, profiler

    # Interleaved, each twice (sample with two seeds, the same work): on a shared machine the
    # faster of each pair is the better estimate of its cost.
    rows, seconds = {}, {}
    rows["sample"], seconds["sample"] = timed(lambda: sample(cfg.seed))
    (rows["loss"], loss_stats, profiler), seconds["loss"] = timed(loss)
    rows["sample, seed + 1"], seconds["sample, seed + 1"] = timed(lambda: sample(cfg.seed + 1))
    (again, _, profiler_again), seconds["loss, again"] = timed(loss)
    assert again == rows["loss"], "loss profiling is deterministic"
    faster = profiler if seconds["loss"] <= seconds["loss, again"] else profiler_again
    results = {
        name: {"seconds": seconds[name], **compute(rows[name])} for name in ("sample", "sample, seed + 1")
    }
    results["loss"] = {
        "seconds": seconds["loss"],
        "seconds_again": seconds["loss, again"],
        "seconds_in_loss_pass": round(faster.spent["loss"], 2),
        "seconds_in_calibration": round(faster.spent["sample"], 2),
        **compute(rows["loss"]),
        **{key: loss_stats[key] for key in ("calibration_samples", "calibration_buckets", "loss_thresholds")},
        "calibration_agreement_with_thresholds": loss_stats["calibration_agreement"],
    }
    for name, result in results.items():
        result["buckets"] = counts(rows[name])
        if name != "sample":
            result["agreement_with_sample"] = agreement(rows["sample"], rows[name])
    fastest_sample = min(seconds["sample"], seconds["sample, seed + 1"])
    fastest_loss = min(seconds["loss"], seconds["loss, again"])
    return {
        "task": task_name,
        "samples": len(records),
        "k": k,
        "run_dir": str(root),
        "sample_seconds_fastest": fastest_sample,
        "loss_seconds_fastest": fastest_loss,
        "loss_speedup_over_sample": round(fastest_sample / fastest_loss, 2),
        "methods": results,
    }


def show(report: dict) -> None:
    print(f"\n== {report['task']}: {report['samples']} samples, k = {report['k']}")
    print(f"{'method':<18} {'wall s':>13} {'responses':>10} {'easy/med/hard':>15} {'kappa':>6}")
    for name, r in report["methods"].items():
        a = r.get("agreement_with_sample", {})
        split = "/".join(str(v) for v in r["buckets"].values())
        wall = f"{r['seconds']:.2f}" + (f", {r['seconds_again']:.2f}" if "seconds_again" in r else "")
        kappa_text = f"{a['kappa']:.3f}" if a else "-"
        print(f"{name:<18} {wall:>13} {r['responses']:>10,} {split:>15} {kappa_text:>6}")
    print(
        f"loss speed-up over sample (faster of two runs each): {report['sample_seconds_fastest']:.2f} s / "
        f"{report['loss_seconds_fastest']:.2f} s = {report['loss_speedup_over_sample']:.2f}x"
    )
    loss = report["methods"]["loss"]
    a = loss["agreement_with_sample"]
    print(
        f"loss: pass {loss['seconds_in_loss_pass']} s, calibration {loss['seconds_in_calibration']} s on "
        f"{loss['calibration_samples']} samples {loss['calibration_buckets']}, "
        f"thresholds {loss['loss_thresholds']}"
    )
    print(
        f"confusion on the {a['samples']} estimated samples (rows: sample easy/medium/hard; columns: loss):"
    )
    for bucket, line in zip(BUCKETS, a["confusion_sample_rows_loss_columns"]):
        print(f"  {bucket:<7}" + "".join(f"{v:>7}" for v in line))
    print(
        f"same bucket {a['same_bucket_share']:.3f}, kappa {a['kappa']:.3f} (sample vs seed + 1: "
        f"{report['methods']['sample, seed + 1']['agreement_with_sample']['kappa']:.3f}); "
        f"Spearman(score, sampled pass rate) {a['spearman_score_vs_sampled_pass_rate']:.3f}"
    )
    print(
        f"AUC easy vs hard {a['auc_easy_vs_hard']}, easy vs medium {a['auc_easy_vs_medium']}, "
        f"medium vs hard {a['auc_medium_vs_hard']}, medium vs rest (closeness to the medium band) "
        f"{a['auc_medium_vs_rest']}; mean score by sampled bucket {a['mean_score_by_sampled_bucket']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run-dir", help="a study's run directory (default: make one); its cold starts are reused"
    )
    parser.add_argument("--tasks", nargs="+", default=["classification", "grounding"])
    parser.add_argument("--limit", type=int, default=None, help="profile only the first N training samples")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "profile_loss.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    if args.run_dir is None:  # one temporary study folder for both tasks
        args.run_dir = str(Path(tempfile.mkdtemp(prefix="dcsft-bench-")) / "run")
    reports = [bench_task(task, args.run_dir, args.limit, args.k) for task in args.tasks]
    for report in reports:
        show(report)
    write_json(
        Path(args.out),
        {
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
            "load_average_after": [round(x, 2) for x in os.getloadavg()],  # other jobs slow the timings
            "seconds": round(time.perf_counter() - started, 1),
            "tasks": reports,
        },
    )
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
