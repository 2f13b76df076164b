"""Paired comparisons of two models scored on the same test items, over training seeds.

A method is compared with SFT item by item: both answered the same test images, and each
training seed of the method is paired with SFT's run of the same seed. Per split (and for
the OOD mean, the mean over the OOD splits) this gives:

- `delta`: the mean over seeds and items of the per-item difference (points);
- `low` / `high`: a 95% percentile interval from a paired bootstrap that resamples training
  seeds, then test items (the same item draw for every seed of a replicate, since the seeds
  share their test items);
- per seed, the exact McNemar p-value (a two-sided binomial test on the discordant items) and
  the share of items the two models answer differently.

The bootstrap is written here with numpy because no maintained library resamples a crossed
seeds x items design (scipy.stats.bootstrap resamples one axis). Resampling both axes counts
the seed x item interaction up to 3 - 2/S times (Owen 2007, "The pigeonhole bootstrap"), so
the interval errs on the wide side; `mde` plans with that same variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
POWER = 0.8
BOOTSTRAP = 2000
# What `dcsft plan` assumes before anything has run: the share of OOD items on which a method
# and SFT disagree, and the seed-to-seed sd (points) of their OOD-mean difference, as measured
# for SFT-M against SFT on the full preset (results/full/).
PLANNING = {
    "classification": {
        "discordance": 0.084,
        "seed_sd": 0.82,
        "source": "SFT-M vs SFT, full preset, results/full",
    },
    "grounding": {
        "discordance": 0.134,
        "seed_sd": 0.0,
        "source": "SFT-M vs SFT, full preset, results/full; the "
        "seed term measured 0 after its item noise is taken out",
    },
}


@dataclass(frozen=True)
class Paired:
    """Per-item outcomes of two models on one split: rows are seeds (paired by index),
    columns the items both answered, 1 = correct."""

    a: np.ndarray
    b: np.ndarray

    @property
    def diff(self) -> np.ndarray:
        return self.a.astype(float) - self.b.astype(float)

    @property
    def items(self) -> int:
        return self.a.shape[1]

    @property
    def seeds(self) -> int:
        return self.a.shape[0]


def align(a_runs: list[dict[str, int]], b_runs: list[dict[str, int]]) -> Paired | None:
    """Pair seed i of A with seed i of B on the items every run answered; None if nothing is
    shared. A single B run (base, cold start: one model, no training seed) pairs with every A seed."""
    if len(b_runs) == 1:
        b_runs = b_runs * len(a_runs)
    seeds = min(len(a_runs), len(b_runs))
    if seeds == 0:
        return None
    shared = set.intersection(*(set(r) for r in [*a_runs[:seeds], *b_runs[:seeds]]))
    ids = sorted(shared)
    if not ids:
        return None
    return Paired(
        np.array([[r[i] for i in ids] for r in a_runs[:seeds]], dtype=np.int8),
        np.array([[r[i] for i in ids] for r in b_runs[:seeds]], dtype=np.int8),
    )


def mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Exact McNemar p-value of two paired 0/1 vectors: the discordant items split as a fair coin."""
    a_only = int(np.sum((a == 1) & (b == 0)))
    b_only = int(np.sum((a == 0) & (b == 1)))
    if a_only + b_only == 0:
        return 1.0
    return float(sps.binomtest(a_only, a_only + b_only, 0.5).pvalue)


def bootstrap(splits: list[Paired], rng: np.random.Generator, replicates: int = BOOTSTRAP) -> np.ndarray:
    """Replicates of the mean over `splits` of each split's mean difference: seeds drawn with
    replacement (shared by the splits), then each split's items drawn with replacement."""
    seeds = splits[0].seeds
    seed_counts = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=replicates)  # (R, S)
    total = np.zeros(replicates)
    for split in splits:
        per_item = seed_counts @ split.diff / seeds  # (R, n): each item's mean over the drawn seeds
        item_counts = rng.multinomial(split.items, np.full(split.items, 1 / split.items), size=replicates)
        total += np.sum(item_counts * per_item, axis=1) / split.items
    return 100 * total / len(splits)


def standard_errors(
    discordance: list[float], items: list[int], seeds: int, seed_sd: float | None
) -> tuple[float, float]:
    """(bootstrap, true) standard error, in points, of the mean over splits of a paired difference.

    Per-seed flips on split j (q_j of its n_j items discordant) give the estimate a variance of
    q_j / (n_j S); resampling seeds and items sees c_S = 3 - 2/S times that (the module's note).
    A seed effect of sd `seed_sd` (points; None: unknown, left out) adds seed_sd^2 / S, of which
    resampling S seeds sees the share 1 - 1/S."""
    flips = sum(q / (n * seeds) for q, n in zip(discordance, items)) / len(items) ** 2
    seed_var = (seed_sd / 100) ** 2 / seeds if seed_sd else 0.0
    boot = (3 - 2 / seeds) * flips + (1 - 1 / seeds) * seed_var
    return 100 * math.sqrt(boot), 100 * math.sqrt(flips + seed_var)


def mde(
    discordance: list[float],
    items: list[int],
    seeds: int,
    seed_sd: float | None,
    confidence: float = CONFIDENCE,
    power: float = POWER,
) -> float:
    """Minimal detectable difference (points) of the bootstrap test above: the true difference
    whose interval excludes 0 with probability `power`, z_{1-a/2} se_boot + z_power se_true."""
    boot, true = standard_errors(discordance, items, seeds, seed_sd)
    return float(sps.norm.ppf(1 - (1 - confidence) / 2) * boot + sps.norm.ppf(power) * true)


def seed_spread(splits: list[Paired]) -> float | None:
    """Seed-to-seed sd (points) of the true difference: the spread of the per-seed differences
    less what their item noise alone explains; None with one seed."""
    if splits[0].seeds < 2:
        return None
    per_seed = np.mean([s.diff.mean(axis=1) for s in splits], axis=0)
    item_noise = np.mean([np.mean(s.diff.var(axis=1) / s.items) for s in splits]) / len(splits)
    return 100 * math.sqrt(max(0.0, float(per_seed.var(ddof=1)) - item_noise))


def compare(splits: list[Paired], rng: np.random.Generator) -> dict:
    """The comparison of two models on one split (a list of one) or on the mean over several."""
    replicates = bootstrap(splits, rng)
    alpha = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(replicates, [alpha, 100 - alpha])
    delta = 100 * np.mean([s.diff.mean() for s in splits])
    discordance = [float(np.mean(s.diff != 0)) for s in splits]
    pooled_a = np.concatenate([s.a for s in splits], axis=1)
    pooled_b = np.concatenate([s.b for s in splits], axis=1)
    spread = seed_spread(splits)
    seeds = splits[0].seeds
    return {
        "delta": round(float(delta), 2),
        "low": round(float(low), 2),
        "high": round(float(high), 2),
        "verdict": verdict(low, high),
        "seeds": seeds,
        "items": [s.items for s in splits],
        "discordance": round(float(np.mean(discordance)), 4),
        "mcnemar_p": [round(mcnemar(pooled_a[i], pooled_b[i]), 4) for i in range(seeds)],
        "seed_sd": None if spread is None else round(spread, 2),
        "mde": round(mde(discordance, [s.items for s in splits], seeds, spread), 2),
    }


def verdict(low: float, high: float) -> str:
    """From the interval alone: 'better' if it lies above 0, 'worse' below, else 'cannot tell'."""
    return "better" if low > 0 else "worse" if high < 0 else "cannot tell"


def not_available(reason: str) -> dict:
    return {"n_a": reason}
