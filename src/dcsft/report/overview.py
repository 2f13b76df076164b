"""The study-level overview when a study runs several tasks: run_dir/report.md and
overview.json, from each task's 07_report/results.json and buckets.json.

Tables: bucket proportions per task (the supplement's Table 2 layout) and, per method, each
task's ID accuracy and OOD mean plus the mean over every OOD split of every task (the main
text's headline "OOD average over ImageNet-R, ImageNet-A, Ref-L4, LISA"), with deltas to SFT.
"""

from __future__ import annotations

from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.report import run as report
from dcsft.report.tables import BASELINE, interval, label
from dcsft.rundir import RunDir, read_json, write_json, write_text


def task_results(task_cfg: StudyConfig) -> tuple[dict, dict]:
    folder = RunDir(task_cfg.run_dir).report.root
    return read_json(folder / "results.json"), read_json(folder / "buckets.json")


def buckets_table(buckets: dict[str, dict]) -> str:
    lines = ["| Dataset | Easy | Medium | Hard | Samples |", "|---|---|---|---|---|"]
    for task, b in buckets.items():
        cells = [f"{b[name]['percent']:.1f}% ({b[name]['count']})" for name in ("easy", "medium", "hard")]
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {b['total']} |")
    return "\n".join(lines)


def method_means(results: dict[str, dict], task_cfgs: list[StudyConfig]) -> dict[str, dict]:
    """Per model present in every task: ID and OOD mean per task, and the mean over all OOD
    splits; each cell {mean, vs_sft}, vs_sft the paired comparison with SFT (None for SFT and the
    reference models), the all-OOD one bootstrapped over every OOD split of every task."""
    shared = [
        m
        for m in next(iter(results.values()))["models"]
        if all(m in r["models"] and not r["models"][m]["n_a"] for r in results.values())
    ]
    rows = {}
    sft_ood = (
        ood_outcomes(task_cfgs, BASELINE) if BASELINE in shared else {}
    )  # read once, paired with every model
    for model in shared:
        row, ood = {}, []
        for task, r in results.items():
            entry = r["models"][model]
            vs_sft = entry.get("vs_sft") or {}
            row[f"{task} ID"] = {
                "mean": entry["accuracy"][r["id_split"]]["mean"],
                "vs_sft": vs_sft.get(r["id_split"]),
            }
            row[f"{task} OOD"] = {
                "mean": entry["accuracy"]["ood_mean"]["mean"],
                "vs_sft": vs_sft.get("ood_mean"),
            }
            ood += [entry["accuracy"][s]["mean"] for s in r["ood_splits"]]
        overall = (
            all_ood_comparison(task_cfgs, model, sft_ood)
            if any("vs_sft" in r["models"][model] for r in results.values())
            else None
        )
        row["OOD mean (all)"] = {"mean": round(sum(ood) / len(ood), 2), "vs_sft": overall}
        rows[model] = row
    return rows


def ood_outcomes(task_cfgs: list[StudyConfig], model: str) -> dict[str, list[dict]]:
    """`<task>/<OOD split>` -> one {item id: correct} per training seed of `model`."""
    return {
        f"{cfg.task}/{split}": runs
        for cfg in task_cfgs
        for split, runs in report.item_outcomes(cfg, model, cfg.train_seeds).items()
        if split in cfg.data.ood_splits
    }


def all_ood_comparison(task_cfgs: list[StudyConfig], model: str, sft_ood: dict[str, list[dict]]) -> dict:
    """`model` minus SFT (its outcomes `sft_ood`) on the mean over every OOD split of every task,
    paired item by item."""
    ours = ood_outcomes(task_cfgs, model)
    return report.paired_comparison(ours, sft_ood, list(ours), task_cfgs[0].seed, f"{model}-sft-all")[
        "ood_mean"
    ]


def means_table(rows: dict[str, dict]) -> str:
    if not rows:
        return "No model was trained in every task."
    header = list(next(iter(rows.values())))
    lines = ["| Model | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for model, row in rows.items():
        cells = [
            f"{v['mean']:.2f}" + (f" ({interval(v['vs_sft'])})" if v["vs_sft"] else "") for v in row.values()
        ]
        lines.append(f"| {label(model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(cfg: StudyConfig, task_cfgs: list[StudyConfig]) -> Path:
    """Write the overview of a multi-task study; returns report.md's path."""
    loaded = {c.task: task_results(c) for c in task_cfgs}
    results = {task: r for task, (r, _) in loaded.items()}
    buckets = {task: b for task, (_, b) in loaded.items()}
    rows = method_means(results, task_cfgs)
    pages = {
        task: (RunDir(c.run_dir).report.root / "report.html").relative_to(cfg.run_dir)
        for task, c in zip(results, task_cfgs)
    }
    links = "\n".join(f"- {task}: [{page}]({page})" for task, page in pages.items())
    markdown = (
        "\n\n".join(
            [
                f"# DC-SFT study: {', '.join(results)}",
                f"Run directory `{cfg.run_dir}`, seed {cfg.seed}. Each task's full report (tables with "
                f"standard deviations, figures, compute):\n{links}",
                "## Bucket proportions after cold start",
                buckets_table(buckets),
                "## Accuracy (%) per task and averaged over every OOD split",
                means_table(rows),
                "Means over training seeds; in parentheses the difference to SFT on the same items with "
                "its 95% paired "
                "bootstrap interval over training seeds and test items (for the last column, over every "
                "OOD split of "
                'every task). An interval that covers 0 is "cannot tell".',
            ]
        )
        + "\n"
    )
    root = RunDir(cfg.run_dir).root
    write_json(root / "overview.json", {"tasks": list(results), "buckets": buckets, "accuracy": rows})
    write_text(root / "report.md", markdown)
    return root / "report.md"
