"""How fast can difficulty profiling go, and does it still give the same buckets?

On one cold-started model and one training set, in one process, this runs:
- authors: the authors' loop, k separate passes over the data with HF generate at batch 4
  (every image re-encoded k times);
- sample: dcsft's `sample` at batch 16 without and with the shared prefill;
- adaptive: sample in rounds of 2, stop a sample once it is medium; and the same with
  `adaptive_settle` = k/2 (a sample whose first k/2 draws agree is settled easy / hard);
- exact: P(correct) from one teacher-forced pass, buckets drawn from it;
and prints wall time, tokens forwarded and generated, the speed-up over the authors' loop,
and agreement with `sample`: a chi-square test of the bucket proportions and the per-sample
pass-rate correlation (with a second `sample` seed as the ceiling sampling noise allows).

    python benchmarks/profile_speed.py                  # prepares + cold-starts the default in a temp dir
    python benchmarks/profile_speed.py --run-dir runs/default --limit 400

Writes benchmarks/results/profile_speed.json (the README's table is built from it).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import chi2_contingency

from dcsft import coldstart, prepare, pretrain
from dcsft.config import load_config
from dcsft.curate import bucket_of
from dcsft.data.rollouts import profile_row
from dcsft.models.generate import respond
from dcsft.models.loading import load_model, load_processor
from dcsft.prepared import read_split
from dcsft.profiling import Profiler, compute
from dcsft.rundir import RunDir, write_json
from dcsft.tasks import get_task

AUTHORS_BATCH = 4
DCSFT_BATCH = 16
SETTLED = "adaptive, settle at k/2"


def authors_loop(profiler: Profiler, records: list[dict], k: int) -> list[dict]:
    """k passes over the data, one response per sample per pass (their inference script, batch 4)."""
    draws = {r["id"]: {"responses": [], "generated": 0, "forwarded": 0, "prompt": 0} for r in records}
    sampling = profiler.sampling(1)
    for draw in range(k):
        for start in range(0, len(records), AUTHORS_BATCH):
            batch = records[start : start + AUTHORS_BATCH]
            out = respond(profiler.model, profiler.processor, batch, sampling, 100 + draw, start)
            for r, responses, prompt, generated, forwarded in zip(
                batch, out.responses, out.prompt_tokens, out.generated_tokens, out.forwarded_tokens
            ):
                d = draws[r["id"]]
                d["responses"] += responses
                d["prompt"], d["generated"], d["forwarded"] = (
                    prompt,
                    d["generated"] + generated,
                    d["forwarded"] + forwarded,
                )
    return [
        profile_row(
            r,
            d["responses"],
            profiler.correct(r, d["responses"]),
            d["prompt"],
            d["generated"],
            d["forwarded"],
        )
        for r in records
        for d in [draws[r["id"]]]
    ]


def run_method(profiler: Profiler, method: str, records: list[dict]) -> list[dict]:
    score_batch = getattr(profiler, method)
    rows = []
    for start in range(0, len(records), DCSFT_BATCH):
        rows += score_batch(records[start : start + DCSFT_BATCH], start // DCSFT_BATCH)
    return rows


def buckets(rows: list[dict]) -> list[int]:
    names = [bucket_of(r["pass_count"], r["k"]) for r in rows]
    return [names.count(b) for b in ("easy", "medium", "hard")]


def agreement(rows: list[dict], reference: list[dict]) -> dict:
    ours, theirs = buckets(rows), buckets(reference)
    table = np.array([ours, theirs])
    p_value = float(chi2_contingency(table[:, table.sum(axis=0) > 0])[1])
    rate = [r.get("p_correct", r["pass_rate"]) for r in rows]
    correlation = float(np.corrcoef(rate, [r["pass_rate"] for r in reference])[0, 1])
    same = sum(
        bucket_of(a["pass_count"], a["k"]) == bucket_of(b["pass_count"], b["k"])
        for a, b in zip(rows, reference)
    )
    return {
        "buckets": dict(zip(("easy", "medium", "hard"), ours)),
        "chi2_p_value": round(p_value, 4),
        "indistinguishable_at_1pct": p_value > 0.01,
        "pass_rate_correlation": round(correlation, 4),
        "same_bucket_share": round(same / len(rows), 4),
    }


def prepared_run(run_dir: str | None, task: str, overrides: list[str]) -> tuple[object, Path]:
    """The task's run (study run dir / task), prepared and cold-started if it is not yet."""
    root = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="dcsft-bench-")) / "run"
    cfg = load_config(None, [*overrides, f"run_dir={root}"]).for_task(task)
    pretrain.run(cfg)
    prepare.run(cfg)
    coldstart.run(cfg)
    return cfg, Path(cfg.run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run-dir", help="a study's run directory (default: make one); the task's cold start is reused"
    )
    parser.add_argument(
        "--task", default="classification", help="classification or grounding (no `exact` for it)"
    )
    parser.add_argument("--limit", type=int, default=None, help="profile only the first N training samples")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--out", default=None, help="default: benchmarks/results/profile_speed[_TASK].json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    suffix = "" if args.task == "classification" else f"_{args.task}"
    out = Path(args.out or Path(__file__).parent / "results" / f"profile_speed{suffix}.json")

    cfg, root = prepared_run(args.run_dir, args.task, [f"profile.k={args.k}"])
    rundir = RunDir(root)
    records = read_split(rundir, "train")[0][: args.limit]
    model, processor = (
        load_model(rundir.coldstart_model, cfg.model),
        load_processor(rundir.coldstart_model, cfg.model),
    )
    task = get_task(cfg.task)

    def profiler(shared: bool = True, seed: int = cfg.seed, settle: int = 0) -> Profiler:
        p = cfg.profile.model_copy(
            update={"shared_prefill": shared, "batch_size": DCSFT_BATCH, "adaptive_settle": settle}
        )
        return Profiler(model, processor, task, p, seed)

    runs = {
        "authors (k passes, batch 4)": lambda: authors_loop(profiler(), records, args.k),
        "sample, no shared prefill": lambda: run_method(profiler(shared=False), "sample", records),
        "sample": lambda: run_method(profiler(), "sample", records),
        "sample, seed + 1": lambda: run_method(profiler(seed=cfg.seed + 1), "sample", records),
        "adaptive": lambda: run_method(profiler(), "adaptive", records),
        SETTLED: lambda: run_method(profiler(settle=args.k // 2), "adaptive", records),
        **(
            {"exact": lambda: run_method(profiler(), "exact", records)}
            if hasattr(task, "accepted_answers")
            else {}
        ),
    }
    results, rows = {}, {}
    for name, fn in runs.items():
        started = time.perf_counter()
        rows[name] = fn()
        results[name] = {"seconds": round(time.perf_counter() - started, 2), **compute(rows[name])}
        print(f"{name:<30} {results[name]['seconds']:>8.2f} s", flush=True)
    authors = results["authors (k passes, batch 4)"]["seconds"]
    for name, result in results.items():
        result["speedup_over_authors"] = round(authors / result["seconds"], 2)
        result["agreement_with_sample"] = agreement(rows[name], rows["sample"])
    sampled_correct = [
        (resp, r["solution"]) for r in rows["sample"] for resp, ok in zip(r["responses"], r["correct"]) if ok
    ]
    outside = (
        sum(resp.strip() not in task.accepted_answers(sol) for resp, sol in sampled_correct)
        if hasattr(task, "accepted_answers")
        else None
    )

    report = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "task": args.task,
        "samples": len(records),
        "k": args.k,
        "run_dir": str(root),
        "methods": results,
        "exact_unmodelled_correct_share": None
        if outside is None
        else round(outside / max(1, len(sampled_correct)), 5),
        **{
            f"generated_tokens_sample_over_{key}": round(
                results["sample"]["tokens_generated"] / results[name]["tokens_generated"], 2
            )
            for key, name in (("adaptive", "adaptive"), ("adaptive_settled", SETTLED))
        },
    }
    print(
        f"\n{'method':<30} {'wall s':>8} {'speed-up':>9} {'fwd tokens':>11} {'gen tokens':>11} "
        f"{'easy/med/hard':>16} {'chi2 p':>7} {'corr':>6} {'same':>6}"
    )
    for name, r in results.items():
        a = r["agreement_with_sample"]
        split = "/".join(str(v) for v in a["buckets"].values())
        print(
            f"{name:<30} {r['seconds']:>8.2f} {r['speedup_over_authors']:>8.2f}x "
            f"{r['tokens_forwarded']:>11,} "
            f"{r['tokens_generated']:>11,} {split:>16} {a['chi2_p_value']:>7.3f} "
            f"{a['pass_rate_correlation']:>6.3f} "
            f"{a['same_bucket_share']:>6.3f}"
        )
    print(
        f"\nsample / adaptive generated tokens: {report['generated_tokens_sample_over_adaptive']}x "
        f"({report['generated_tokens_sample_over_adaptive_settled']}x settling after k/2 alike draws)"
        + (
            f"; correct sampled answers outside exact's accepted set: {outside} of {len(sampled_correct)}"
            if outside is not None
            else ""
        )
    )
    write_json(out, report)
    print(f"written {out}")


if __name__ == "__main__":
    main()
