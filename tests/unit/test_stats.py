"""The paired statistics of the report: bootstrap coverage, McNemar, the MDE, the n/a cases."""

from math import comb

import numpy as np
import pytest

from dcsft.report import stats
from dcsft.report.run import paired_comparison


def simulate(rng, seeds, items, delta, discordance, seed_sd=0.0, item_share=0.0):
    """Two models' 0/1 outcomes on the same items: per seed, each item is discordant with
    probability `discordance`, in A's favour with probability (1 + delta') / 2, delta' = the
    seed's true difference / discordance. With `item_share`, that share of the discordant items
    is the same for every seed (an item effect) instead of drawn per seed."""
    b = rng.integers(0, 2, size=(seeds, items))
    fixed = rng.random(items) < discordance
    fixed_sign = rng.random(items)
    a = b.copy()
    for s in range(seeds):
        shift = delta + rng.normal(0, seed_sd)
        p_a = np.clip((1 + shift / discordance) / 2, 0, 1)
        per_seed = rng.random(items) < discordance
        use_fixed = rng.random(items) < item_share
        discordant = np.where(use_fixed, fixed, per_seed)
        a_wins = np.where(use_fixed, fixed_sign, rng.random(items)) < p_a
        a[s, discordant] = np.where(a_wins[discordant], 1, 0)
        b[s, discordant] = 1 - a[s, discordant]
    return stats.Paired(a.astype(np.int8), b.astype(np.int8))


def coverage(seeds, items, delta, discordance, item_share, trials=200, replicates=500):
    rng = np.random.default_rng(seeds * 1000 + items)
    covered = 0
    for _ in range(trials):
        paired = simulate(rng, seeds, items, delta, discordance, item_share=item_share)
        low, high = np.percentile(stats.bootstrap([paired], rng, replicates), [2.5, 97.5])
        covered += low <= 100 * delta <= high
    return covered / trials


def test_interval_covers_a_known_difference_at_its_nominal_rate():
    # One seed: the bootstrap over items is the ordinary paired bootstrap.
    assert 0.91 <= coverage(seeds=1, items=300, delta=0.02, discordance=0.2, item_share=0.0) <= 0.985
    # Several seeds sharing their discordant items (an item effect): nominal too.
    assert 0.91 <= coverage(seeds=3, items=300, delta=0.02, discordance=0.2, item_share=1.0) <= 0.985


def test_interval_errs_wide_when_seeds_flip_different_items():
    # Per-seed flips are counted more than once by resampling both axes (the module's note).
    assert coverage(seeds=3, items=300, delta=0.02, discordance=0.2, item_share=0.0) >= 0.95


def test_mcnemar_is_the_exact_binomial_test_on_discordant_items():
    def table(a_only, b_only, both=5, neither=3):
        a = [1] * a_only + [0] * b_only + [1] * both + [0] * neither
        b = [0] * a_only + [1] * b_only + [1] * both + [0] * neither
        return np.array(a), np.array(b)

    # 8 vs 2 discordant: two-sided p = 2 * P(X <= 2 | n = 10, 1/2)
    assert stats.mcnemar(*table(8, 2)) == pytest.approx(2 * sum(comb(10, k) for k in range(3)) / 2**10)
    assert stats.mcnemar(*table(2, 8)) == stats.mcnemar(*table(8, 2))
    assert stats.mcnemar(*table(5, 5)) == pytest.approx(1.0)
    assert stats.mcnemar(*table(0, 6)) == pytest.approx(2 / 2**6)
    assert stats.mcnemar(*table(0, 0)) == 1.0  # no discordant item: nothing to test


@pytest.mark.parametrize("seeds, seed_sd", [(1, 0.0), (3, 0.0), (3, 1.5)])
def test_mde_agrees_with_a_simulation(seeds, seed_sd):
    """At a true difference equal to the MDE, the bootstrap interval excludes 0 about 80% of the time."""
    items, discordance = 300, 0.15
    mde = stats.mde([discordance], [items], seeds, seed_sd)
    rng = np.random.default_rng(seeds)
    rejected, sds = 0, []
    trials = 200
    for _ in range(trials):
        paired = simulate(rng, seeds, items, mde / 100, discordance, seed_sd=seed_sd / 100)
        replicates = stats.bootstrap([paired], rng, 500)
        sds.append(replicates.std())
        low, high = np.percentile(replicates, [2.5, 97.5])
        rejected += low > 0
    assert 0.72 <= rejected / trials <= 0.88
    assert np.mean(sds) == pytest.approx(
        stats.standard_errors([discordance], [items], seeds, seed_sd)[0], rel=0.1
    )


def test_mde_shrinks_with_items_and_seeds():
    base = stats.mde([0.1, 0.1], [500, 500], 1, None)
    assert stats.mde([0.1, 0.1], [2000, 2000], 1, None) == pytest.approx(base / 2)
    assert stats.mde([0.1, 0.1], [500, 500], 3, 0.0) < base
    assert stats.mde([0.1, 0.1], [500, 500], 3, 1.0) > stats.mde([0.1, 0.1], [500, 500], 3, 0.0)


def test_verdict_comes_from_the_interval_alone():
    assert stats.verdict(0.1, 2.0) == "better"
    assert stats.verdict(-3.0, -0.2) == "worse"
    assert stats.verdict(-0.1, 5.0) == "cannot tell"
    assert stats.verdict(0.0, 0.0) == "cannot tell"


def runs(*correct_lists):
    return [{f"i{k}": c for k, c in enumerate(correct)} for correct in correct_lists]


def test_comparison_reports_delta_interval_and_per_seed_tests():
    rng = np.random.default_rng(0)
    ours = {
        "photo": runs(*(rng.integers(0, 2, 200) for _ in range(2))),
        "rendition": runs(*(rng.integers(0, 2, 200) for _ in range(2))),
    }
    theirs = {
        "photo": runs(*(rng.integers(0, 2, 200) for _ in range(2))),
        "rendition": runs(*(rng.integers(0, 2, 200) for _ in range(2))),
    }
    out = paired_comparison(ours, theirs, ["rendition"], seed=0, key="x")
    assert set(out) == {"photo", "rendition", "ood_mean"}
    c = out["rendition"]
    assert c["low"] <= c["delta"] <= c["high"] and c["seeds"] == 2 and c["items"] == [200]
    assert len(c["mcnemar_p"]) == 2 and 0 < c["discordance"] < 1
    assert out["ood_mean"]["delta"] == c["delta"]  # one OOD split: its mean is the split
    assert paired_comparison(ours, theirs, ["rendition"], seed=0, key="x") == out  # seeded: repeatable


def test_fewer_seeds_or_no_shared_items_is_not_available():
    ours = {"photo": runs([1, 0, 1])}
    theirs = {"photo": runs([1, 1, 0], [0, 1, 1])}
    out = paired_comparison(ours, theirs, [], seed=0, key="x")
    assert "fewer seeds (1)" in out["photo"]["n_a"] and "n_a" in out["ood_mean"]
    other = {"photo": [{"j0": 1, "j1": 0}]}
    out = paired_comparison(other, ours, [], seed=0, key="x")
    assert out["photo"] == {"n_a": "no test items in common on photo"}


def test_one_reference_run_pairs_with_every_seed():
    paired = stats.align(runs([1, 1, 0], [1, 0, 0]), runs([0, 1, 0]))
    assert paired.seeds == 2 and paired.b.tolist() == [[0, 1, 0], [0, 1, 0]]
