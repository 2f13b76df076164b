"""Comparing two bucketings: confusion matrix, agreement, Cohen's kappa (checked by hand),
the markdown table, and reading buckets from a run, the authors' lists or the manifest."""

import gzip
import json
from pathlib import Path

import pytest

from dcsft.compare import cohens_kappa, compare_buckets, format_comparison, load_buckets
from dcsft.errors import DataError
from dcsft.rundir import write_jsonl

SHARED_PAPER_DATA = Path(__file__).resolve().parents[3] / "shared" / "paper-data"

# Ten ids both sides hold, laid out so the confusion matrix (rows A, columns B) is
#            easy medium hard
#   easy       4     1     0      row totals 5, 4, 1
#   medium     1     2     1      column totals 5, 3, 2
#   hard       0     0     1
# p_o = 7/10, p_e = (5*5 + 4*3 + 1*2)/100 = 0.39, kappa = (0.7 - 0.39)/(1 - 0.39) = 0.31/0.61.
PAIRS = (
    [("easy", "easy")] * 4
    + [("easy", "medium"), ("medium", "easy")]
    + [("medium", "medium")] * 2
    + [("medium", "hard"), ("hard", "hard")]
)
HAND_KAPPA = 0.31 / 0.61


def sides():
    a = {f"id{i}": x for i, (x, _) in enumerate(PAIRS)}
    b = {f"id{i}": y for i, (_, y) in enumerate(PAIRS)}
    a.update({"only-a-1": "easy", "only-a-2": "hard"})
    b["only-b"] = "medium"
    return a, b


def test_confusion_matrix_agreement_and_kappa_by_hand():
    result = compare_buckets(*sides())
    assert result["matrix"] == [[4, 1, 0], [1, 2, 1], [0, 0, 1]]
    assert result["n"] == 10
    assert result["agreement"] == pytest.approx(0.7)
    assert result["kappa"] == pytest.approx(HAND_KAPPA)  # 0.5082
    assert result["a_counts"] == {"easy": 5, "medium": 4, "hard": 1}
    assert result["b_counts"] == {"easy": 5, "medium": 3, "hard": 2}
    assert (result["only_a"], result["only_b"]) == (2, 1)


def test_kappa_edge_cases():
    assert cohens_kappa([[3, 0, 0], [0, 2, 0], [0, 0, 1]]) == pytest.approx(1.0)
    # Agreement no better than the marginals predict: a = e,e,h,h and b = e,h,e,h.
    assert cohens_kappa([[1, 0, 1], [0, 0, 0], [1, 0, 1]]) == pytest.approx(0.0)
    assert cohens_kappa([[0, 0, 0], [0, 5, 0], [0, 0, 0]]) is None  # one bucket on both sides: undefined
    assert cohens_kappa([[0] * 3] * 3) is None


def test_kappa_matches_a_library_where_installed():
    a, b = sides()
    ids = [i for i in a if i in b]
    try:
        from sklearn.metrics import cohen_kappa_score

        expected = cohen_kappa_score([a[i] for i in ids], [b[i] for i in ids])
    except ImportError:
        inter_rater = pytest.importorskip(
            "statsmodels.stats.inter_rater", reason="neither scikit-learn nor statsmodels is installed"
        )
        expected = inter_rater.cohens_kappa(compare_buckets(a, b)["matrix"]).kappa
    assert compare_buckets(a, b)["kappa"] == pytest.approx(expected)


def test_authors_word_middle_and_unknown_buckets():
    assert compare_buckets({"x": "middle"}, {"x": "Medium"})["matrix"][1][1] == 1
    with pytest.raises(DataError, match=r"id x: unknown bucket 'tricky'"):
        compare_buckets({"x": "tricky"}, {"x": "easy"})


def test_format_comparison_is_a_markdown_table():
    text = format_comparison(compare_buckets(*sides()), "dcsft", "authors")
    assert text == (
        "| dcsft \\ authors | easy | medium | hard | total |\n"
        "|---|---:|---:|---:|---:|\n"
        "| easy | 4 | 1 | 0 | 5 |\n"
        "| medium | 1 | 2 | 1 | 4 |\n"
        "| hard | 0 | 0 | 1 | 1 |\n"
        "| total | 5 | 3 | 2 | 10 |\n\n"
        "10 samples in both: agreement 70.0%, Cohen's kappa 0.508; 2 only in dcsft, 1 only in authors.\n"
    )


def test_run_directory_assignments_first_then_profile(tmp_path):
    run = tmp_path / "run"
    write_jsonl(
        run / "03_profile" / "profile.jsonl",
        [
            {"id": "a", "pass_count": 8, "k": 8},
            {"id": "b", "pass_count": 3, "k": 8},
            {"id": "c", "pass_count": 0, "k": 8},
        ],
    )
    assert load_buckets(run) == {"a": "easy", "b": "medium", "c": "hard"}
    write_jsonl(
        run / "04_curate" / "assignments.jsonl",
        [{"id": "a", "bucket": "easy", "pass_count": 8, "k": 8}, {"id": "b", "bucket": "hard"}],
    )
    assert load_buckets(run) == {"a": "easy", "b": "hard"}
    assert load_buckets(run / "03_profile" / "profile.jsonl")["c"] == "hard"
    assert load_buckets(run / "04_curate" / "assignments.jsonl")["b"] == "hard"


def authors_row(image: str) -> dict:
    return {
        "messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "goose"}],
        "images": [image],
    }


def test_the_authors_bucket_lists(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    lists = {
        "easy": ["n01/n01_1.JPEG"],
        "middle": ["n01/n01_2.JPEG", "n02/n02_5.JPEG"],
        "hard": ["n02/n02_1.JPEG"],
    }
    for bucket, files in lists.items():
        rows = [authors_row(f"/data/dataset/Imagenet/train/{f}") for f in files]
        if bucket == "hard":  # plain .json works as well as .json.gz
            (folder / f"imagenet_{bucket}_sft_7b.json").write_text(json.dumps(rows))
        else:
            (folder / f"imagenet_{bucket}_sft_7b.json.gz").write_bytes(
                gzip.compress(json.dumps(rows).encode())
            )
    assert load_buckets(folder, size="7b") == {
        "train/n01/n01_1.JPEG": "easy",
        "train/n01/n01_2.JPEG": "medium",
        "train/n02/n02_5.JPEG": "medium",
        "train/n02/n02_1.JPEG": "hard",
    }
    with pytest.raises(
        DataError,
        match=r"no 04_curate/assignments.jsonl, 03_profile/profile.jsonl or authors' "
        r"imagenet_easy_sft_3b.json.gz in it",
    ):
        load_buckets(folder, size="3b")


def test_the_shipped_manifest():
    buckets = load_buckets("paper:3b")
    assert len(buckets) == 9600
    assert list(buckets.values()).count("hard") == 1420
    three_vs_seven = compare_buckets(buckets, load_buckets("paper:7b"))
    assert three_vs_seven["n"] == 9600 and three_vs_seven["only_a"] == 0
    assert three_vs_seven["b_counts"] == {"easy": 4704, "medium": 3598, "hard": 1298}


def test_unreadable_inputs(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_buckets(tmp_path / "nothing.jsonl")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(DataError, match="not a run directory"):
        load_buckets(other)
    bad = tmp_path / "profile.jsonl"
    bad.write_text('{"id": "a", "pass_count": 9, "k": 8}\n')
    with pytest.raises(DataError, match=r"profile.jsonl: line 1: no usable pass_count and k"):
        load_buckets(bad)


@pytest.mark.skipif(not SHARED_PAPER_DATA.is_dir(), reason="the authors' lists are not beside this checkout")
def test_authors_lists_and_manifest_give_the_same_ids():
    result = compare_buckets(load_buckets(SHARED_PAPER_DATA, size="3b"), load_buckets("paper:3b"))
    assert (result["n"], result["only_a"], result["only_b"], result["kappa"]) == (9600, 0, 0, 1.0)
