"""Training sets of the methods beyond one bucket: the hard-fraction mix and the curriculum."""

import pytest

from dcsft.train.run import curriculum, hard_mix
from dcsft.train.sft import samples_seen


def _records(name, n):
    return [{"id": f"{name}-{i}"} for i in range(n)]


@pytest.mark.parametrize("percent, n_hard", [(0, 0), (5, 10), (15, 34), (50, 190)])
def test_hard_mix_reaches_the_share(percent, n_hard):
    medium, hard = _records("m", 190), _records("h", 500)
    mix, reached = hard_mix(medium, hard, percent, seed=0)
    drawn = [r for r in mix if r["id"].startswith("h")]
    assert mix[:190] == medium and len(drawn) == n_hard
    assert len({r["id"] for r in drawn}) == n_hard
    assert abs(reached - percent) < 0.5
    assert reached == round(100 * n_hard / len(mix), 2)


def test_hard_mix_with_too_few_hard_uses_them_all_and_says_so():
    mix, reached = hard_mix(_records("m", 100), _records("h", 3), 15, seed=0)
    assert len(mix) == 103 and reached == round(300 / 103, 2)


def test_hard_mix_is_seeded():
    medium, hard = _records("m", 100), _records("h", 200)
    assert hard_mix(medium, hard, 15, seed=1) == hard_mix(medium, hard, 15, seed=1)
    assert hard_mix(medium, hard, 15, seed=1) != hard_mix(medium, hard, 15, seed=2)


def _assignments():
    rows = [
        ("e1", "easy", 8),
        ("m1", "medium", 2),
        ("h1", "hard", 0),
        ("m2", "medium", 7),
        ("e2", "easy", 8),
        ("m3", "medium", 4),
        ("h2", "hard", 0),
    ]
    return [{"id": i, "bucket": b, "pass_count": c, "k": 8} for i, b, c in rows]


def test_curriculum_goes_easy_to_hard_and_easier_first_within_a_bucket():
    train = {a["id"]: {"id": a["id"]} for a in _assignments()}
    order = [r["id"] for r in curriculum(_assignments(), train, total=7, seed=0)]
    assert sorted(order[:2]) == ["e1", "e2"]
    assert order[2:5] == ["m2", "m3", "m1"]
    assert sorted(order[5:]) == ["h1", "h2"]


def test_curriculum_stretches_over_the_whole_run():
    train = {a["id"]: {"id": a["id"]} for a in _assignments()}
    order = [r["id"] for r in curriculum(_assignments(), train, total=70, seed=0)]
    assert len(order) == 70
    assert all(order.count(i) == 10 for i in train)  # every sample read equally often
    buckets = [i[0] for i in order]
    assert buckets == sorted(buckets, key="emh".index)  # never goes back to an easier bucket


def test_curriculum_thinned_keeps_its_order():
    train = {a["id"]: {"id": a["id"]} for a in _assignments()}
    order = [r["id"][0] for r in curriculum(_assignments(), train, total=3, seed=0)]
    assert order == ["e", "m", "h"]


def test_curriculum_of_nothing_is_empty():
    assert curriculum([], {}, total=10, seed=0) == []


@pytest.mark.parametrize(
    "n, batch, micro, seen", [(48, 8, 6, 48), (3, 8, 6, 18), (18, 8, 6, 36), (10, 4, 4, 14), (100, 8, 3, 24)]
)
def test_samples_seen_counts_short_last_batches(n, batch, micro, seen):
    assert samples_seen(n, batch, micro) == seen
