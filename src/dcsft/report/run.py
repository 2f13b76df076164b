"""report: the study's tables, figures and machine-readable results.

Reads: 06_evaluate/**/scores.json, 05_train/<method>/seed<s>/{stats.json,loss.jsonl},
02_coldstart/stats.json, 03_profile/{profile.jsonl,stats.json}, 04_curate/{assignments.jsonl,
buckets.json,stats.json}, 01_prepare/records/train.json.
Writes: 07_report/report.md and report.html (the same report, the HTML self-contained with
its figures inlined), figures/{accuracy,loss_per_bucket,gallery,zero_advantage}.png,
results.json, buckets.json (schemas in the README), stats.json, DONE.

Example: dcsft report
"""

from __future__ import annotations

import base64
import math
import random
import re
import zlib
from pathlib import Path

import numpy as np
from markdown_it import MarkdownIt

from dcsft.config import StudyConfig, hard_mix_percent
from dcsft.conventions import wording
from dcsft.data.records import record_kinds
from dcsft.data.splits import id_split
from dcsft.prepared import read_split
from dcsft.report import figures, stats, tables
from dcsft.report.findings import findings, how_asked, how_profiled
from dcsft.rundir import RunDir, fingerprint, kill_point, read_json, read_jsonl, write_json, write_text
from dcsft.stage import run_stage, upstream
from dcsft.tasks import get_task

EMBEDDED_WORLDS = {"classification": "shape world (embedded)", "grounding": "scene world (embedded)"}
SOURCES = {
    "imagenet": "ImageNet",
    "paper": "the paper's ImageNet splits",
    "refcoco": "RefCOCO",
    "records": "record files",
}


def dataset_label(cfg: StudyConfig) -> str:
    if cfg.data.source == "embedded":
        return EMBEDDED_WORLDS.get(cfg.task, cfg.task)
    return f"{SOURCES[cfg.data.source]} ({get_task(cfg.task).name})"


GALLERY_PER_BUCKET = 5
BUCKET_METHODS = {"sft-e": "easy", "sft-m": "medium", "sft-h": "hard"}


def accuracy_of(scores: list[dict], ood_splits: list[str]) -> dict:
    """column -> mean/std/runs over the given evaluations (one per training seed)."""
    cols = [*scores[0].keys(), "ood_mean"]
    runs = {
        c: [s[c]["accuracy"] if c != "ood_mean" else tables.ood_mean(s, ood_splits) for s in scores]
        for c in cols
    }
    return {c: tables.summary(values) for c, values in runs.items()}


def collect_models(cfg: StudyConfig, inputs: list[str]) -> dict:
    rundir = RunDir(cfg.run_dir)
    models = {}
    for name in ("base", "coldstart"):
        inputs.append(upstream(rundir.evaluate(name)))
        scores = read_json(rundir.evaluate(name).root / "scores.json")
        models[name] = {"n_a": False, "runs": 1, "accuracy": accuracy_of([scores], cfg.data.ood_splits)}
    for method in cfg.train.methods:
        trained = []
        for seed in cfg.train_seeds:
            inputs.append(upstream(rundir.train(method, seed)))
            trained.append(read_json(rundir.train(method, seed).root / "stats.json"))
        if any(t.get("n_a") for t in trained):
            models[method] = {"n_a": True, "samples": 0}
            continue
        scores = []
        for seed in cfg.train_seeds:
            inputs.append(upstream(rundir.evaluate(method, seed)))
            scores.append(read_json(rundir.evaluate(method, seed).root / "scores.json"))
        models[method] = {
            "n_a": False,
            "runs": len(scores),
            "accuracy": accuracy_of(scores, cfg.data.ood_splits),
            "samples": trained[0]["samples"],
            "steps": trained[0]["steps"],
        }
        if "hard_percent" in trained[0]:
            models[method]["hard_percent"] = trained[0]["hard_percent"]
    return models


def item_outcomes(cfg: StudyConfig, name: str, seeds: list[int | None]) -> dict[str, list[dict[str, int]]]:
    """split -> one {item id: correct} per run of a model, from its evaluation files."""
    rundir = RunDir(cfg.run_dir)

    def run(seed: int | None, split: str) -> dict[str, int]:
        return {
            row["id"]: int(row["correct"])
            for row in read_jsonl(rundir.evaluate(name, seed).root / f"{split}.jsonl")
        }

    return {
        split: [run(seed, split) for seed in seeds] for split in [id_split(cfg.task), *cfg.data.ood_splits]
    }


def accuracy_by_kind(cfg: StudyConfig, outcomes: dict[str, list[dict[str, int]]]) -> dict:
    """split -> kind -> {accuracy (mean over runs), n}: accuracy on the test items of each hard-sample
    kind (`none`: items of no kind); {} when no test record names its kinds (real data)."""
    rundir = RunDir(cfg.run_dir)
    out = {}
    for split, runs in outcomes.items():
        groups: dict[str, list[str]] = {}
        for record in read_json(rundir.records(split)):
            for kind in record_kinds(record.get("meta", {})) or ["none"]:
                groups.setdefault(kind, []).append(record["id"])
        if set(groups) != {"none"}:
            out[split] = {
                kind: {
                    "accuracy": round(100 * float(np.mean([[run[i] for i in items] for run in runs])), 2),
                    "n": len(items),
                }
                for kind, items in sorted(groups.items())
            }
    return out


def paired_comparison(
    ours: dict[str, list[dict]], theirs: dict[str, list[dict]], ood_splits: list[str], seed: int, key: str
) -> dict:
    """Per split and for the OOD mean: `ours` minus `theirs`, item by item, seed by seed
    (dcsft.report.stats); a column that cannot be paired is {"n_a": reason}."""
    first = next(iter(ours))
    if len(next(iter(ours.values()))) < len(theirs[first]):
        reason = f"fewer seeds ({len(ours[first])}) than the model it is compared with ({len(theirs[first])})"
        return {column: stats.not_available(reason) for column in [*ours, "ood_mean"]}
    paired = {split: stats.align(ours[split], theirs[split]) for split in ours}
    out = {}
    for column, splits in [*((s, [s]) for s in ours), ("ood_mean", ood_splits)]:
        missing = [s for s in splits if paired[s] is None]
        if not splits:
            out[column] = stats.not_available("no OOD splits")
        elif missing:
            out[column] = stats.not_available(f"no test items in common on {', '.join(missing)}")
        else:
            rng = np.random.default_rng([seed, zlib.crc32(f"{key}/{column}".encode())])
            out[column] = stats.compare([paired[s] for s in splits], rng)
    return out


def add_comparisons(cfg: StudyConfig, models: dict) -> None:
    """Every trained method against SFT (`vs_sft`), and SFT against the cold start it starts
    from (`vs_coldstart`: what post-training moves)."""
    baseline = models.get(tables.BASELINE)
    if baseline is None or baseline["n_a"]:
        return
    sft = item_outcomes(cfg, tables.BASELINE, cfg.train_seeds)
    for method, entry in models.items():
        if method in (tables.BASELINE, *tables.REFERENCE_MODELS) or entry["n_a"]:
            continue
        entry["vs_sft"] = paired_comparison(
            item_outcomes(cfg, method, cfg.train_seeds), sft, cfg.data.ood_splits, cfg.seed, f"{method}-sft"
        )
    coldstart = item_outcomes(cfg, "coldstart", [None])
    baseline["vs_coldstart"] = paired_comparison(
        sft, coldstart, cfg.data.ood_splits, cfg.seed, "sft-coldstart"
    )


def add_accuracy_by_kind(cfg: StudyConfig, models: dict) -> None:
    """`by_kind` of every model that was trained and evaluated (see accuracy_by_kind)."""
    for name, entry in models.items():
        if not entry["n_a"]:
            seeds = [None] if name in tables.REFERENCE_MODELS else cfg.train_seeds
            entry["by_kind"] = accuracy_by_kind(cfg, item_outcomes(cfg, name, seeds))


def cost_of(stats: list[dict]) -> dict:
    """Mean compute of one or more runs; a figure an older run did not record stays None."""
    cost = {}
    for field in tables.COST_FIELDS:
        values = [s.get(field, 0 if field == "steps" else None) for s in stats]
        cost[field] = (
            None
            if None in values
            else (
                round(sum(values) / len(values), 1)
                if field == "seconds"
                else round(sum(values) / len(values))
            )
        )
    return cost


def collect_compute(cfg: StudyConfig, models: dict) -> dict:
    rundir = RunDir(cfg.run_dir)
    rows = {
        "coldstart": cost_of([read_json(rundir.coldstart.root / "stats.json")]),
        "profile": cost_of([read_json(rundir.profile.root / "stats.json")]),
    }
    for method in cfg.train.methods:
        rows[method] = (
            None
            if models[method]["n_a"]
            else cost_of(
                [read_json(rundir.train(method, seed).root / "stats.json") for seed in cfg.train_seeds]
            )
        )
    compute = {"rows": rows, "grpo_over_dcsft": None}
    grpo, sft_m, profile = rows.get("grpo"), rows.get("sft-m"), rows["profile"]
    if grpo and sft_m:
        dcsft_seconds = profile["seconds"] + sft_m["seconds"]
        tokens = (
            grpo["tokens_forwarded"] / (profile["tokens_forwarded"] + sft_m["tokens_forwarded"])
            if None not in (grpo["tokens_forwarded"], profile["tokens_forwarded"], sft_m["tokens_forwarded"])
            else math.nan
        )
        compute["grpo_over_dcsft"] = {
            "seconds": round(grpo["seconds"] / dcsft_seconds, 2),
            "tokens_forwarded": round(tokens, 2),
            "grpo_seconds": grpo["seconds"],
            "dcsft_seconds": round(dcsft_seconds, 1),
        }
    return compute


def zero_advantage(cfg: StudyConfig, buckets: dict) -> dict | None:
    """GRPO's per-step zero-advantage fractions beside two references from the profile: the
    easy + hard share, and the expected share of all-equal groups of num_generations draws,
    mean over samples of p^g + (1 - p)^g with p the profiled pass rate."""
    rundir = RunDir(cfg.run_dir)
    if "grpo" not in cfg.train.methods:
        return None
    runs = [
        [
            s["zero_advantage_fraction"]
            for s in read_jsonl(rundir.train("grpo", seed).root / "loss.jsonl")
            if s["zero_advantage_fraction"] is not None
        ]
        for seed in cfg.train_seeds
        if (rundir.train("grpo", seed).root / "loss.jsonl").exists()
    ]
    runs = [r for r in runs if r]
    if not runs:
        return None
    g = cfg.grpo.num_generations
    rates = [row["pass_rate"] for row in read_jsonl(rundir.profile_file)]
    return {
        "runs": runs,
        "mean": round(sum(map(sum, runs)) / sum(map(len, runs)), 4),
        "profile_easy_hard_share": round(
            (buckets["easy"]["count"] + buckets["hard"]["count"]) / buckets["total"], 4
        ),
        "predicted": round(sum(p**g + (1 - p) ** g for p in rates) / len(rates), 4),
    }


def gallery_examples(cfg: StudyConfig) -> dict[str, list[dict]]:
    rundir = RunDir(cfg.run_dir)
    train = {r["id"]: r for r in read_split(rundir, "train")[0]}
    assignments = {a["id"]: a for a in read_jsonl(rundir.curate.root / "assignments.jsonl")}
    examples = {b: [] for b in ("easy", "medium", "hard")}
    for row in read_jsonl(rundir.profile_file):
        a = assignments[row["id"]]
        examples[a["bucket"]].append(
            {
                "image": train[row["id"]]["image"],
                "solution": row["solution"],
                "expression": train[row["id"]].get("meta", {}).get("expression"),
                "responses": row["responses"],
                "noise": a.get("noise"),
                "p_correct": row.get("p_correct"),
            }
        )
    rng = random.Random(cfg.seed)
    return {b: rng.sample(rows, min(GALLERY_PER_BUCKET, len(rows))) for b, rows in examples.items()}


def bucket_losses(cfg: StudyConfig, models: dict) -> dict[str, list[list[float]]]:
    rundir = RunDir(cfg.run_dir)
    return {
        bucket: [
            [s["loss"] for s in read_jsonl(rundir.train(method, seed).root / "loss.jsonl")]
            for seed in cfg.train_seeds
        ]
        for method, bucket in BUCKET_METHODS.items()
        if method in models and not models[method]["n_a"]
    }


def draw_figures(cfg: StudyConfig, folder: Path, results: dict, zero: dict | None) -> dict[str, str]:
    """Draw what the run has data for; returns name -> caption."""
    out = folder / "figures"
    drawn = {
        "accuracy": "Accuracy per model and split, the mean over training seeds. No error bars: every model "
        "answers the same test items, so the uncertainty that matters is that of the paired "
        "differences in the forest plot."
    }
    figures.accuracy_bars(results, out / "accuracy.png")
    if any(entry.get("vs_sft") for entry in results["models"].values()):
        figures.forest(results, out / "forest.png")
        drawn["forest"] = (
            "Each method minus SFT per split and on the OOD mean, with the 95% paired bootstrap "
            "interval over training seeds and test items; an interval that crosses the zero line is "
            '"cannot tell".'
        )
    losses = bucket_losses(cfg, results["models"])
    if losses:
        figures.loss_per_bucket(losses, out / "loss_per_bucket.png")
        drawn["loss_per_bucket"] = (
            "Training loss per step of SFT on each bucket (supplement Figure 1); faint: "
            "per step, solid: moving average."
        )
    figures.gallery(gallery_examples(cfg), out / "gallery.png")
    drawn["gallery"] = (
        "Random training samples of each bucket with the ground truth (and the noise injected "
        "into it, if any) and the cold-started model's k answers (supplement Figure 2)."
    )
    if zero:
        figures.zero_advantage(
            zero["runs"], zero["profile_easy_hard_share"], zero["predicted"], out / "zero_advantage.png"
        )
        drawn["zero_advantage"] = "GRPO's fraction of prompt groups with zero advantage at each step."
    return drawn


def render(cfg: StudyConfig, results: dict, buckets: dict, drawn: dict[str, str]) -> str:
    dataset = dataset_label(cfg)
    zero = results["zero_advantage"]
    ablation = [m for m in cfg.train.methods if m == "sft-m" or hard_mix_percent(m) is not None]

    def figure(name: str) -> list[str]:
        return [f"![{name}](figures/{name}.png)\n\n*{drawn[name]}*"] if name in drawn else []

    parts = [
        f"# DC-SFT study: {dataset}",
        f"Run directory `{cfg.run_dir}`, seed {cfg.seed}, training seeds {results['seeds']}.",
        how_asked(wording(cfg), cfg.evaluate.frame),
        "## Accuracy (ID and OOD), paired differences to SFT",
        tables.accuracy_table(results),
        *figure("forest"),
        "## What this run shows",
        findings(results),
        "## Paired comparisons with SFT",
        tables.comparison_table(results),
        "McNemar: exact two-sided binomial test on the items the two models answer differently, per training "
        "seed (pooled over the OOD splits for the OOD mean). Disagree: the share of items answered "
        "differently. MDE: the smallest difference this design detects with 80% power at alpha = 0.05.",
        *figure("accuracy"),
        "## Difficulty buckets of the training set (profiled on the cold-started model)",
        tables.proportions_table("cold start", dataset, buckets),
        how_profiled(read_json(RunDir(cfg.run_dir).profile.root / "stats.json")),
        *figure("gallery"),
        *figure("loss_per_bucket"),
    ]
    if cfg.data.source == "embedded":  # only the embedded worlds inject (and so know) their noise
        parts += [
            "## Where each kind of hard sample landed",
            "A sample can be of several kinds; each row counts the training samples of its kind.",
            tables.kinds_table(buckets["kinds_by_bucket"]),
        ]
    by_kind = tables.kind_accuracy_tables(results)
    if by_kind:
        parts += [
            "## Accuracy by kind of test item",
            "Accuracy % on the test items of each kind (mean over training seeds), n items in the header: "
            "where a method gains or loses, and whether it leans on the habitat background (`habitat "
            "background` in ID, `other class's habitat` in adversarial).",
            by_kind,
        ]
    if len(ablation) > 1:
        parts += ["## Hard-fraction ablation (medium plus x% hard)", tables.ablation_table(results, ablation)]
    if zero:
        parts += [
            "## RL's implicit filter",
            f"On average {zero['mean']:.1%} of GRPO's prompt groups per step had all "
            f"{cfg.grpo.num_generations} "
            "rewards equal (zero advantage, no gradient). The profile puts "
            f"{zero['profile_easy_hard_share']:.1%} "
            f"of the training set in easy + hard, and its pass rates predict {zero['predicted']:.1%} "
            f"all-equal groups of {cfg.grpo.num_generations}.",
            *figure("zero_advantage"),
        ]
    parts += [
        "## Compute",
        tables.cost_table(results["compute"]),
        tables.cost_ratio_line(results["compute"]),
        "Tokens forwarded count every token that went through the model (prompt and image tokens included, "
        "padding excluded; a prompt shared by k draws counts once, a prompt prefilled per draw k times); a "
        "method's row is per training run, the mean over seeds.",
    ]
    return "\n\n".join(parts) + "\n"


def to_html(markdown: str, folder: Path, title: str) -> str:
    """One self-contained page: the markdown report rendered, its figures inlined."""
    body = MarkdownIt("commonmark").enable("table").render(markdown)

    def inline(match: re.Match) -> str:
        data = base64.b64encode((folder / match.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="(figures/[\w.-]+\.png)"', inline, body)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child"
        "{text-align:left}img{max-width:100%}code{background:#f3f3f3;padding:1px 4px}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title><style>{style}</style>'
        f"</head><body>\n{body}</body></html>\n"
    )


def stage_fingerprint(cfg: StudyConfig, inputs: list[str]) -> str:
    return fingerprint("report", inputs, cfg.data.ood_splits, cfg.seed)


def run(cfg: StudyConfig) -> dict:
    rundir = RunDir(cfg.run_dir)
    inputs = [upstream(rundir.curate)]
    models = collect_models(cfg, inputs)
    add_comparisons(cfg, models)
    add_accuracy_by_kind(cfg, models)
    reference = read_json(rundir.evaluate("base").root / "scores.json")
    curate_stats = read_json(rundir.curate.root / "stats.json")
    buckets = {
        "model": "coldstart",
        "dataset": cfg.task,
        **curate_stats["buckets"],
        "kinds_by_bucket": curate_stats["kinds_by_bucket"],
    }
    results = {
        "task": cfg.task,
        "id_split": id_split(cfg.task),
        "ood_splits": cfg.data.ood_splits,
        "split_sizes": {s: v["n"] for s, v in reference.items()},
        "baseline": tables.BASELINE,
        "seed": cfg.seed,
        "seeds": cfg.train_seeds,
        "models": models,
        "compute": collect_compute(cfg, models),
        "zero_advantage": zero_advantage(cfg, buckets),
    }

    def body(folder: Path):
        drawn = draw_figures(cfg, folder, results, results["zero_advantage"])
        kill_point("report")
        markdown = render(cfg, results, buckets, drawn)
        write_json(folder / "results.json", results)
        kill_point("report")
        write_json(folder / "buckets.json", buckets)
        kill_point("report")
        write_text(folder / "report.md", markdown)
        write_text(folder / "report.html", to_html(markdown, folder, f"DC-SFT study: {cfg.run_dir}"))
        return (
            f"tables and {len(drawn)} figures for {len(models)} models",
            # the wording goes here and into report.md, not results.json, whose keys stay those
            # of every study before it was a setting
            {"models": list(models), "figures": sorted(drawn), "wording": wording(cfg).settings()},
        )

    return run_stage(rundir.report, stage_fingerprint(cfg, inputs), body)
