"""Difficulty buckets from pass counts, the proportions table, and each method's training subset."""

import pytest

from dcsft.curate import BUCKETS, bucket_of, proportions
from dcsft.train.run import METHOD_BUCKETS, subset


def test_bucket_of_all_pass_counts_k8():
    assert [bucket_of(n, 8) for n in range(9)] == ["hard"] + ["medium"] * 7 + ["easy"]


def test_bucket_of_k1_has_no_medium():
    assert bucket_of(0, 1) == "hard"
    assert bucket_of(1, 1) == "easy"


def test_bucket_of_k2():
    assert [bucket_of(n, 2) for n in range(3)] == ["hard", "medium", "easy"]


@pytest.mark.parametrize("pass_count, k", [(-1, 8), (9, 8), (2, 1), (-1, 0)])
def test_bucket_of_out_of_range(pass_count, k):
    with pytest.raises(ValueError, match=str(pass_count)):
        bucket_of(pass_count, k)


def test_proportions():
    assignments = [{"bucket": b} for b in ["easy"] * 5 + ["medium"] * 3 + ["hard"] * 4]
    table = proportions(assignments)
    assert table["total"] == 12
    assert {b: table[b]["count"] for b in BUCKETS} == {"easy": 5, "medium": 3, "hard": 4}
    assert table["easy"]["percent"] == 41.7 and table["medium"]["percent"] == 25.0
    assert table["hard"]["percent"] == 33.3
    assert sum(table[b]["count"] for b in BUCKETS) == table["total"]
    assert sum(table[b]["percent"] for b in BUCKETS) == pytest.approx(100, abs=0.15)


def test_proportions_thirds_and_missing_bucket():
    table = proportions([{"bucket": "easy"}, {"bucket": "medium"}, {"bucket": "medium"}])
    assert table["hard"] == {"count": 0, "percent": 0.0}
    assert table["medium"]["percent"] == 66.7 and table["easy"]["percent"] == 33.3
    assert sum(table[b]["percent"] for b in BUCKETS) == pytest.approx(100, abs=0.15)


def test_proportions_empty():
    table = proportions([])
    assert table["total"] == 0
    assert all(table[b] == {"count": 0, "percent": 0.0} for b in BUCKETS)


def _buckets(easy=10, medium=3, hard=5) -> dict[str, list[dict]]:
    return {
        name: [{"id": f"{name}-{i}", "solution": name} for i in range(n)]
        for name, n in (("easy", easy), ("medium", medium), ("hard", hard))
    }


def _ids(records):
    return [r["id"] for r in records]


def test_method_buckets():
    assert METHOD_BUCKETS == {
        "sft": ("easy", "medium", "hard"),
        "sft-e": ("easy",),
        "sft-m": ("medium",),
        "sft-h": ("hard",),
        "sft-em": ("easy", "medium"),
        "curriculum": ("easy", "medium", "hard"),
        "grpo": ("easy", "medium", "hard"),
    }


def test_subset_unbalanced():
    buckets = _buckets()
    every = _ids(buckets["easy"] + buckets["medium"] + buckets["hard"])
    assert _ids(subset("sft", buckets, balance=False, seed=0)) == every
    assert _ids(subset("sft-em", buckets, balance=False, seed=0)) == _ids(buckets["easy"] + buckets["medium"])
    assert _ids(subset("sft-m", buckets, balance=False, seed=0)) == _ids(buckets["medium"])
    assert _ids(subset("sft-e", buckets, balance=False, seed=0)) == _ids(buckets["easy"])
    assert _ids(subset("sft-h", buckets, balance=False, seed=0)) == _ids(buckets["hard"])


def test_subset_does_not_mutate_buckets():
    buckets = _buckets()
    before = {b: list(r) for b, r in buckets.items()}
    subset("sft", buckets, balance=True, seed=0)
    assert buckets == before


@pytest.mark.parametrize("method", list(METHOD_BUCKETS))
def test_subset_balanced_caps_at_smallest_bucket(method):
    buckets = _buckets(easy=10, medium=3, hard=5)
    chosen = subset(method, buckets, balance=True, seed=0)
    assert len(chosen) == 3 * len(METHOD_BUCKETS[method])
    for bucket in METHOD_BUCKETS[method]:
        picked = [r for r in chosen if r["solution"] == bucket]
        assert len(picked) == 3
        assert len({r["id"] for r in picked}) == 3  # no duplicates
        assert all(r in buckets[bucket] for r in picked)


def test_subset_balanced_is_deterministic_for_a_seed():
    buckets = _buckets(easy=40, medium=10, hard=25)
    a = _ids(subset("sft", buckets, balance=True, seed=1))
    b = _ids(subset("sft", buckets, balance=True, seed=1))
    assert a == b
    others = {tuple(_ids(subset("sft", buckets, balance=True, seed=s))) for s in range(2, 6)}
    assert any(other != tuple(a) for other in others)  # the seed does matter


def test_subset_balanced_same_sample_across_methods():
    """A bucket's balanced sample is the same in every method that uses it, so methods differ only
    in which buckets they add."""
    buckets = _buckets(easy=40, medium=10, hard=25)
    sft = _ids(subset("sft", buckets, balance=True, seed=3))
    em = _ids(subset("sft-em", buckets, balance=True, seed=3))
    e = _ids(subset("sft-e", buckets, balance=True, seed=3))
    h = _ids(subset("sft-h", buckets, balance=True, seed=3))
    assert sft == em + h
    assert em[:10] == e


def test_subset_balanced_ignores_empty_buckets_for_the_cap():
    buckets = _buckets(easy=6, medium=4, hard=0)
    assert subset("sft-h", buckets, balance=True, seed=0) == []
    assert subset("sft-h", buckets, balance=False, seed=0) == []
    assert len(subset("sft-e", buckets, balance=True, seed=0)) == 4
    assert len(subset("sft", buckets, balance=True, seed=0)) == 8


def test_subset_all_empty():
    buckets = _buckets(0, 0, 0)
    for method in METHOD_BUCKETS:
        assert subset(method, buckets, balance=True, seed=0) == []


def test_subset_unknown_method():
    with pytest.raises(KeyError):
        subset("ppo", _buckets(), balance=False, seed=0)


def test_kinds_by_bucket_counts_each_kind_and_the_samples_of_none():
    from dcsft.curate import kinds_by_bucket, record_kinds
    from dcsft.report.tables import kinds_table

    assignments = [
        {"bucket": "hard", "kinds": ["mislabeled", "context"]},
        {"bucket": "hard", "kinds": ["mislabeled"]},
        {"bucket": "easy", "kinds": ["context"]},
        {"bucket": "medium", "kinds": []},
    ]
    table = kinds_by_bucket(assignments)
    assert table == {
        "context": {"easy": 1, "medium": 0, "hard": 1},
        "mislabeled": {"easy": 0, "medium": 0, "hard": 2},
        "none": {"easy": 0, "medium": 1, "hard": 0},
    }
    assert "| wrong label | 2 | 0.0% (0) | 0.0% (0) | 100.0% (2) |" in kinds_table(table)
    # Records drawn before kinds existed name their noise only.
    assert record_kinds({"noise": "ambiguous"}) == ["ambiguous"] and record_kinds({"noise": None}) == []
