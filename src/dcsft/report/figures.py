"""The study's figures (matplotlib PNGs): loss per bucket (supplement Figure 1), an example
gallery per bucket (its Figure 2), accuracy per method and split, and GRPO's zero-advantage
fraction over training beside what the profile predicts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib
from matplotlib.ticker import MaxNLocator  # noqa: E402

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dcsft.report.tables import columns, label  # noqa: E402
from dcsft.rundir import atomic_path  # noqa: E402

BUCKET_COLOURS = {"easy": "#4c9a2a", "medium": "#e0a100", "hard": "#c0392b"}


def save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def moving_average(values: list[float], window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def loss_per_bucket(losses: dict[str, list[list[float]]], path: Path) -> None:
    """losses: bucket -> one per-step loss list per training seed (averaged over seeds here)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for bucket, runs in losses.items():
        steps = min(len(r) for r in runs)
        curve = np.mean([r[:steps] for r in runs], axis=0)
        window = max(1, steps // 20)
        ax.plot(np.arange(1, steps + 1), curve, color=BUCKET_COLOURS[bucket], alpha=0.25, linewidth=0.8)
        ax.plot(
            np.arange(window, steps + 1),
            moving_average(list(curve), window),
            color=BUCKET_COLOURS[bucket],
            label=f"SFT on {bucket}",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="optimizer step",
        ylabel="training loss (answer tokens)",
        title="SFT loss per step on each difficulty bucket",
    )
    ax.legend()
    save(fig, path)


def answer_line(responses: list[str]) -> str:
    counts = Counter(r.strip() or "(empty)" for r in responses)
    return ", ".join(f"{answer[:12]} x{n}" for answer, n in counts.most_common(3)) + (
        " ..." if len(counts) > 3 else ""
    )


def draw_boxes(ax, sample: dict) -> None:
    """Grounding: the true box (solid) and each sampled answer's box (dashed) on the image."""
    from matplotlib.patches import Rectangle

    from dcsft.tasks.grounding import parse_box

    boxes = [(parse_box(sample["solution"]), "#1f77b4", "-", 1.6)] + [
        (parse_box(r), "#ff00aa", "--", 0.8) for r in sample["responses"]
    ]
    for box, colour, style, width in boxes:
        if box is not None:
            ax.add_patch(
                Rectangle(
                    (box[0], box[1]),
                    box[2] - box[0],
                    box[3] - box[1],
                    fill=False,
                    edgecolor=colour,
                    linestyle=style,
                    linewidth=width,
                )
            )


def gallery(examples: dict[str, list[dict]], path: Path) -> None:
    """examples: bucket -> samples with image, solution, responses and noise (or None)."""
    per_row = max([len(v) for v in examples.values()] + [1])
    fig, axes = plt.subplots(
        len(examples), per_row, figsize=(2.3 * per_row, 2.9 * len(examples)), squeeze=False
    )
    for row, (bucket, samples) in enumerate(examples.items()):
        for col in range(per_row):
            ax = axes[row][col]
            ax.axis("off")
            if col >= len(samples):
                if not samples and col == 0:
                    ax.text(0.5, 0.5, f"{bucket}: no samples", ha="center", va="center")
                continue
            sample = samples[col]
            ax.imshow(Image.open(sample["image"]).convert("RGB"))
            if sample.get("expression"):
                draw_boxes(ax, sample)
            truth = (
                (f"{sample['expression']}\n" if sample.get("expression") else "")
                + f"truth: {sample['solution']}"
                + (f" ({sample['noise']})" if sample.get("noise") else "")
            )
            ax.set_title(truth, fontsize=8, color=BUCKET_COLOURS[bucket])
            answers = (
                answer_line(sample["responses"])
                if sample["responses"]
                else f"P(correct) = {sample.get('p_correct', 0):.2f}"
            )  # profile.method=exact samples nothing
            ax.text(0.5, -0.08, answers, transform=ax.transAxes, ha="center", va="top", fontsize=7, wrap=True)
        axes[row][0].text(
            -0.15,
            0.5,
            bucket,
            transform=axes[row][0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=11,
            fontweight="bold",
            color=BUCKET_COLOURS[bucket],
        )
    fig.suptitle(
        "Training samples per bucket: ground truth and the k sampled answers of the cold-started model",
        fontsize=10,
    )
    save(fig, path)


def accuracy_bars(results: dict, path: Path) -> None:
    """Grouped bars: one group per model, one bar per split. No error bars: the models answer the
    same items, so their uncertainty is in the paired differences of the forest plot."""
    cols = columns(results)[:-1]
    models = [name for name, entry in results["models"].items() if not entry["n_a"]]
    x = np.arange(len(models))
    width = 0.8 / len(cols)
    fig, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(models) + 1.5), 3.8))
    for i, split in enumerate(cols):
        means = [results["models"][m]["accuracy"][split]["mean"] for m in models]
        kind = "ID" if split == results["id_split"] else "OOD"
        ax.bar(x + (i - (len(cols) - 1) / 2) * width, means, width, label=f"{split} ({kind})")
    ax.set_xticks(x, [label(m) for m in models], rotation=30, ha="right")
    ax.set(
        ylabel="accuracy %",
        ylim=(0, 100),
        title="Accuracy per model and split (mean over seeds; no error bars)",
    )
    ax.legend(fontsize=8, ncols=len(cols))
    save(fig, path)


def forest(results: dict, path: Path) -> None:
    """Each method's difference to SFT per split and on the OOD mean, with its 95% paired interval."""
    cols = columns(results)
    rows = [(name, entry["vs_sft"]) for name, entry in results["models"].items() if entry.get("vs_sft")]
    fig, ax = plt.subplots(figsize=(7.2, 0.9 + 0.32 * len(rows) * len(cols)))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ticks, names = [], []
    for r, (name, comparisons) in enumerate(rows):
        for c, column in enumerate(cols):
            y = -(r * (len(cols) + 1) + c)
            comparison = comparisons[column]
            kind = (
                "OOD mean"
                if column == "ood_mean"
                else f"{column} ({'ID' if column == results['id_split'] else 'OOD'})"
            )
            if "n_a" in comparison:
                ax.text(0, y, "n/a", va="center", ha="center", fontsize=7, color="#777777")
            else:
                delta = comparison["delta"]
                ax.errorbar(
                    delta,
                    y,
                    xerr=[[delta - comparison["low"]], [comparison["high"] - delta]],
                    fmt="o",
                    color=colours[c % len(colours)],
                    markersize=4 if column != "ood_mean" else 6,
                    capsize=2,
                    label=kind if r == 0 else None,
                )
            if c == 0:
                ticks.append(y - (len(cols) - 1) / 2)
                names.append(label(name))
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_yticks(ticks, names)
    ax.set(
        xlabel="accuracy points minus SFT (95% paired interval over seeds and items)",
        title="Each method against SFT on the same test items",
    )
    if rows:
        ax.legend(fontsize=7, loc="best")
    save(fig, path)


def zero_advantage(runs: list[list[float]], profile_share: float, predicted: float, path: Path) -> None:
    """runs: GRPO's per-step zero-advantage fraction, one list per seed."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, values in enumerate(runs):
        steps = np.arange(1, len(values) + 1)
        window = max(1, len(values) // 20)
        ax.plot(steps, values, color="#1f77b4", alpha=0.2, linewidth=0.8)
        ax.plot(
            np.arange(window, len(values) + 1),
            moving_average(values, window),
            color="#1f77b4",
            label="GRPO groups with zero advantage" if i == 0 else None,
        )
    ax.axhline(
        profile_share,
        color="#555555",
        linestyle="--",
        label=f"profile: easy + hard share ({profile_share:.0%})",
    )
    ax.axhline(
        predicted,
        color="#c0392b",
        linestyle=":",
        label=f"predicted from profile pass rates ({predicted:.0%})",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="GRPO step",
        ylabel="fraction of prompt groups",
        ylim=(0, 1),
        title="RL's implicit filter: groups whose rewards are all equal give no gradient",
    )
    ax.legend(fontsize=8, loc="lower right")
    save(fig, path)


def sweep_lines(sweep: dict, task: str, path: Path) -> bool:
    """Each method's difference to SFT (ID and OOD mean, 95% paired intervals) against the swept
    value(s); False when no point has a comparison to draw."""
    points = sweep["points"]
    methods = list(dict.fromkeys(m for p in points for m in p["tasks"][task]["methods"]))
    if not methods:
        return False
    single = len(sweep["keys"]) == 1 and all(
        isinstance(p["values"][sweep["keys"][0]], (int, float)) for p in points
    )
    x = (
        np.array([p["values"][sweep["keys"][0]] for p in points], dtype=float)
        if single
        else np.arange(len(points), dtype=float)
    )
    step = (np.ptp(x) or 1.0) / 60  # methods side by side at each value
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=False)
    for ax, column, title in zip(axes, ("id", "ood_mean"), ("ID split", "OOD mean")):
        for m, method in enumerate(methods):
            rows = [
                (xi, p["tasks"][task]["methods"].get(method, {}).get(column, {})) for xi, p in zip(x, points)
            ]
            rows = [(xi + (m - (len(methods) - 1) / 2) * step, c) for xi, c in rows if "delta" in c]
            if not rows:
                continue
            xs = [r[0] for r in rows]
            deltas = [r[1]["delta"] for r in rows]
            errors = [
                [d - r[1]["low"] for d, r in zip(deltas, rows)],
                [r[1]["high"] - d for d, r in zip(deltas, rows)],
            ]
            ax.errorbar(xs, deltas, yerr=errors, marker="o", markersize=4, capsize=2, label=label(method))
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.set(
            title=title,
            xlabel=sweep["keys"][0] if single else "sweep point",
            ylabel="accuracy points minus SFT (95% paired interval)",
        )
        if not single:
            ax.set_xticks(x, [",".join(str(v) for v in p["values"].values()) for p in points], rotation=30)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{task}: each method against SFT as the sweep moves", fontsize=10)
    save(fig, path)
    return True
