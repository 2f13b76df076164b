"""Markdown tables of a study: accuracy with deltas against SFT (the supplement's Table 1
layout) and bucket proportions (its Table 2)."""

from __future__ import annotations

BASELINE = "sft"
REFERENCE_MODELS = ("base", "coldstart")
LABELS = {"base": "Base", "coldstart": "Cold start", "sft": "SFT", "sft-e": "SFT-E", "sft-m": "SFT-M",
          "sft-h": "SFT-H", "sft-em": "SFT-EM", "grpo": "GRPO"}


def label(name: str) -> str:
    return LABELS.get(name, name)


def ood_mean(scores: dict, ood_splits: list[str]) -> float | None:
    values = [scores[s]["accuracy"] for s in ood_splits if s in scores]
    return round(sum(values) / len(values), 2) if values else None


def cell(value: float | None, baseline: float | None) -> str:
    if value is None:
        return "–"
    if baseline is None:
        return f"{value:.2f}"
    return f"{value:.2f} ({value - baseline:+.2f})"


def accuracy_table(results: dict) -> str:
    """Methods x splits; every method other than SFT shows its delta to SFT in parentheses."""
    id_split, ood = results["id_split"], results["ood_splits"]
    columns = [f"{id_split} (ID)", *(f"{s} (OOD)" for s in ood), "OOD mean"]
    lines = ["| Model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    models = results["models"]
    base_row = models.get(BASELINE, {})
    for name, entry in models.items():
        if entry.get("n_a"):
            lines.append(f"| {label(name)} | " + " | ".join([f"n/a ({entry['samples']} samples)"] * len(columns)) + " |")
            continue
        values = [entry["scores"][s]["accuracy"] for s in [id_split, *ood]] + [entry["ood_mean"]]
        show_delta = name != BASELINE and name not in REFERENCE_MODELS and not base_row.get("n_a") and base_row
        baselines = ([base_row["scores"][s]["accuracy"] for s in [id_split, *ood]] + [base_row["ood_mean"]]
                     if show_delta else [None] * len(values))
        lines.append(f"| {label(name)} | " + " | ".join(cell(v, b) for v, b in zip(values, baselines)) + " |")
    n_line = ", ".join(f"{s}: n={count}" for s, count in results["split_sizes"].items())
    return "\n".join(lines) + f"\n\nAccuracy % (greedy, exact match); {n_line}."


def proportions_table(model_name: str, dataset: str, buckets: dict) -> str:
    lines = ["| Model | Dataset | Easy | Medium | Hard | Samples |", "|---|---|---|---|---|---|"]
    cells = [f"{buckets[b]['percent']:.1f}% ({buckets[b]['count']})" for b in ("easy", "medium", "hard")]
    lines.append(f"| {model_name} | {dataset} | " + " | ".join(cells) + f" | {buckets['total']} |")
    return "\n".join(lines)


def noise_table(noise_by_bucket: dict, buckets: dict) -> str:
    """Where the injected label noise landed: the share of each bucket that is mislabeled or ambiguous."""
    lines = ["| Bucket | Mislabeled | Ambiguous |", "|---|---|---|"]
    for b in ("easy", "medium", "hard"):
        total = buckets[b]["count"]
        shares = [f"{noise_by_bucket[b][k]} ({100 * noise_by_bucket[b][k] / total:.1f}%)" if total else "0"
                  for k in ("mislabeled", "ambiguous")]
        lines.append(f"| {b} | " + " | ".join(shares) + " |")
    return "\n".join(lines)
