"""report: the study's tables and machine-readable results.

Reads: 06_evaluate/<model>/scores.json, 05_train/<method>/stats.json, 04_curate/buckets.json
and stats.json.
Writes: 07_report/report.md (accuracy table with deltas against SFT, bucket proportions,
where the injected noise landed), results.json, buckets.json (schemas in the README),
stats.json, DONE.

Example: dcsft report
"""

from __future__ import annotations

from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.data.splits import ID_SPLIT
from dcsft.report import tables
from dcsft.rundir import RunDir, fingerprint, read_json, write_json, write_text
from dcsft.stage import run_stage, upstream

DATASET = {"classification": "shape world (embedded)"}


def collect(cfg: StudyConfig) -> tuple[dict, dict, list[str]]:
    """(results, buckets, fingerprints of everything the report is built from)."""
    rundir = RunDir(cfg.run_dir)
    inputs = [upstream(rundir.curate, "curate")]
    models = {}
    for name in ["base", "coldstart", *cfg.train.methods]:
        if name in cfg.train.methods:
            inputs.append(upstream(rundir.train(name), "train"))
            trained = read_json(rundir.train(name).root / "stats.json")
            if trained.get("n_a"):
                models[name] = {"n_a": True, "samples": 0}
                continue
        inputs.append(upstream(rundir.evaluate(name), "evaluate"))
        scores = read_json(rundir.evaluate(name).root / "scores.json")
        models[name] = {"n_a": False, "scores": scores, "ood_mean": tables.ood_mean(scores, cfg.data.ood_splits)}
        if name in cfg.train.methods:
            models[name].update(samples=trained["samples"], steps=trained["steps"])
    reference = next(m for m in models.values() if not m["n_a"])
    results = {"task": cfg.task, "id_split": ID_SPLIT, "ood_splits": cfg.data.ood_splits,
               "split_sizes": {s: v["n"] for s, v in reference["scores"].items()},
               "baseline": tables.BASELINE, "models": models, "seed": cfg.seed}
    curate_stats = read_json(rundir.curate.root / "stats.json")
    buckets = {"model": "coldstart", "dataset": cfg.task, **curate_stats["buckets"],
               "noise_by_bucket": curate_stats["noise_by_bucket"]}
    return results, buckets, inputs


def render(results: dict, buckets: dict, cfg: StudyConfig) -> str:
    dataset = DATASET.get(cfg.task, cfg.task)
    return "\n\n".join([
        f"# DC-SFT study: {dataset}",
        f"Run directory `{cfg.run_dir}`, seed {cfg.seed}.",
        "## Accuracy (ID and OOD), deltas against SFT",
        tables.accuracy_table(results),
        "## Difficulty buckets of the training set (profiled on the cold-started model)",
        tables.proportions_table("cold start", dataset, buckets),
        f"k = {cfg.profile.k} samples per training example at temperature {cfg.profile.temperature}.",
        "## Where the injected label noise landed",
        tables.noise_table(buckets["noise_by_bucket"], buckets),
    ]) + "\n"


def run(cfg: StudyConfig) -> dict:
    rundir = RunDir(cfg.run_dir)
    results, buckets, inputs = collect(cfg)

    def body(folder: Path):
        write_json(folder / "results.json", results)
        write_json(folder / "buckets.json", buckets)
        write_text(folder / "report.md", render(results, buckets, cfg))
        return f"tables for {len(results['models'])} models", {"models": list(results["models"])}

    return run_stage("report", rundir.report, fingerprint("report", inputs, cfg.data.ood_splits), body)
