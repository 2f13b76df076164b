"""The authors' rollout files imported as a dcsft profile: matching by image and question
across dataset roots, rows in profile.jsonl's format, and one-line errors for bad files."""

import json
from pathlib import Path

import pytest

from dcsft.compare import load_buckets
from dcsft.curate import bucket_of
from dcsft.data.rollouts import import_rollouts
from dcsft.errors import DataError
from dcsft.rundir import write_jsonl
from dcsft.tasks.classification import PROMPT

AUTHORS_TRAIN = "/data/dataset/Imagenet/train"


def record(root: Path, wnid: str, stem: str, answer: str) -> dict:
    return {
        "id": f"train/{wnid}/{stem}.JPEG",
        "problem": PROMPT,
        "solution": answer,
        "image": str(root / "train" / wnid / f"{stem}.JPEG"),
        "meta": {"wnid": wnid},
    }


def result(wnid: str, stem: str, answer: str, output: str, correct, question=PROMPT) -> dict:
    return {
        "image": f"{AUTHORS_TRAIN}/{wnid}/{stem}.JPEG",
        "question": question,
        "ground_truth": answer,
        "model_output": output,
        "extracted_answer": output,
        "correct": correct,
    }


def write_draw(path: Path, results: list[dict]) -> Path:
    accuracy = sum(bool(r["correct"]) for r in results) / len(results)
    path.write_text(json.dumps({"accuracy": accuracy, "results": results}))
    return path


@pytest.fixture
def records(tmp_path) -> list[dict]:
    root = tmp_path / "my-imagenet"
    return [
        record(root, "n01", "n01_1", "goose"),
        record(root, "n01", "n01_2", "goose"),
        record(root, "n02", "n02_1", "sundial"),
        record(root, "n02", "n02_7", "sundial"),
    ]


# Per sample, the outcomes of three draws: n01_1 always right, n01_2 mixed, n02_1 never right;
# n09_1 is not in the training records, n02_7 has no rollouts.
OUTCOMES = {
    ("n01", "n01_1", "goose"): [1, True, 1],
    ("n01", "n01_2", "goose"): [0, 1, False],
    ("n02", "n02_1", "sundial"): [0, 0, 0],
    ("n09", "n09_1", "warthog"): [1, 0, 1],
}


@pytest.fixture
def draws(tmp_path) -> list[Path]:
    files = []
    for d in range(3):
        results = [result(w, s, a, a if c[d] else "swan", c[d]) for (w, s, a), c in OUTCOMES.items()]
        if d == 1:
            results.reverse()  # each draw may list the samples in its own order
            results[-1]["question"] = "<image>" + PROMPT  # n01_1 asked with ms-swift's placeholder
        files.append(write_draw(tmp_path / f"rollout_{d}.json", results))
    return files


def test_rows_in_profile_format_keyed_by_record_id(draws, records):
    profile = import_rollouts(draws, records)
    assert profile.k == 3
    assert profile.rows == [
        {
            "id": "train/n01/n01_1.JPEG",
            "solution": "goose",
            "responses": ["goose"] * 3,
            "correct": [1, 1, 1],
            "pass_count": 3,
            "k": 3,
            "pass_rate": 1.0,
            "prompt_tokens": 0,
            "generated_tokens": 0,
            "forwarded_tokens": 0,
        },
        {
            "id": "train/n01/n01_2.JPEG",
            "solution": "goose",
            "responses": ["swan", "goose", "swan"],
            "correct": [0, 1, 0],
            "pass_count": 1,
            "k": 3,
            "pass_rate": 1 / 3,
            "prompt_tokens": 0,
            "generated_tokens": 0,
            "forwarded_tokens": 0,
        },
        {
            "id": "train/n02/n02_1.JPEG",
            "solution": "sundial",
            "responses": ["swan"] * 3,
            "correct": [0, 0, 0],
            "pass_count": 0,
            "k": 3,
            "pass_rate": 0.0,
            "prompt_tokens": 0,
            "generated_tokens": 0,
            "forwarded_tokens": 0,
        },
    ]
    assert [bucket_of(r["pass_count"], r["k"]) for r in profile.rows] == ["easy", "medium", "hard"]
    assert profile.unmatched == [f"{AUTHORS_TRAIN}/n09/n09_1.JPEG"]
    assert profile.unprofiled == ["train/n02/n02_7.JPEG"]
    assert profile.summary() == (
        "3 samples profiled from 3 draws; 1 rollout samples matched no training record "
        f"(first: {AUTHORS_TRAIN}/n09/n09_1.JPEG); 1 training records have no rollouts "
        "(first: train/n02/n02_7.JPEG)"
    )


def test_written_rows_are_read_back_as_buckets(draws, records, tmp_path):
    run = tmp_path / "run"
    write_jsonl(run / "03_profile" / "profile.jsonl", import_rollouts(draws, records).rows)
    assert load_buckets(run) == {
        "train/n01/n01_1.JPEG": "easy",
        "train/n01/n01_2.JPEG": "medium",
        "train/n02/n02_1.JPEG": "hard",
    }


def test_another_question_does_not_match(tmp_path, records):
    path = write_draw(
        tmp_path / "r.json", [result("n01", "n01_1", "goose", "goose", 1, question="What is it?")]
    )
    profile = import_rollouts([path], records)
    assert profile.rows == [] and len(profile.unmatched) == 1


def test_flat_layout_records_match_by_unique_file_name(tmp_path):
    val = [
        {
            "id": "val/n01/ILSVRC2012_val_1.JPEG",
            "problem": PROMPT,
            "solution": "goose",
            "image": str(tmp_path / "val" / "ILSVRC2012_val_1.JPEG"),
        }
    ]
    path = write_draw(
        tmp_path / "r.json",
        [
            {
                "image": "/data/dataset/Imagenet/val/n01/ILSVRC2012_val_1.JPEG",
                "question": PROMPT,
                "ground_truth": "goose",
                "model_output": "Goose.",
                "extracted_answer": "Goose",
                "correct": True,
            }
        ],
    )
    assert import_rollouts([path], val).rows[0]["correct"] == [1]


def test_label_mismatches_are_counted(tmp_path, records):
    path = write_draw(tmp_path / "r.json", [result("n01", "n01_1", "swan", "swan", 1)])
    profile = import_rollouts([path], records)
    assert profile.label_mismatches == ["train/n01/n01_1.JPEG"]
    assert "1 ground truths differ from the record's answer" in profile.summary()


def one_line_error(files, records) -> str:
    with pytest.raises(DataError) as err:
        import_rollouts(files, records)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("value", [2, "yes", 0.5, None])
def test_non_boolean_correct_names_file_and_index(tmp_path, records, value):
    path = write_draw(
        tmp_path / "r.json",
        [result("n01", "n01_1", "goose", "goose", 1), result("n01", "n01_2", "goose", "goose", 1)],
    )
    data = json.loads(path.read_text())
    data["results"][1]["correct"] = value
    path.write_text(json.dumps(data))
    assert (
        one_line_error([path], records)
        == f"{path}: results[1]: correct must be 0/1 or true/false, found {value!r}"
    )


def test_not_a_rollout_file(tmp_path, records):
    broken = tmp_path / "broken.json"
    broken.write_text('{"accuracy": 0.5, "results": [')
    assert one_line_error([broken], records).startswith(f"{broken}: line 1 column")
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([result("n01", "n01_1", "goose", "goose", 1)]))
    assert one_line_error([listed], records) == (
        f'{listed}: expected a rollout file {{"accuracy", "results": [...]}}, found list'
    )
    partial = write_draw(tmp_path / "partial.json", [{"image": "a/b.JPEG", "correct": 1}])
    assert one_line_error([partial], records) == f"{partial}: results[0]: missing field(s) question"


def test_a_sample_listed_twice(tmp_path, records):
    twice = write_draw(
        tmp_path / "twice.json",
        [
            result("n01", "n01_1", "goose", "goose", 1),
            result("n01", "n01_2", "goose", "goose", 1),
            result("n01", "n01_1", "goose", "swan", 0),
        ],
    )
    assert one_line_error([twice], records) == (
        f"{twice}: results[2] repeats the sample of results[0] ({AUTHORS_TRAIN}/n01/n01_1.JPEG)"
    )


def test_draws_over_different_samples(tmp_path, records):
    first = write_draw(
        tmp_path / "d0.json",
        [result("n01", "n01_1", "goose", "goose", 1), result("n01", "n01_2", "goose", "goose", 1)],
    )
    other = write_draw(
        tmp_path / "d1.json",
        [result("n01", "n01_1", "goose", "goose", 1), result("n02", "n02_1", "sundial", "goose", 0)],
    )
    assert one_line_error([first, other], records) == (
        f"{other}: results[1]: draws over different samples: {AUTHORS_TRAIN}/n02/n02_1.JPEG is not in "
        f"{first} (1 not there, 1 of it missing here)"
    )
    with pytest.raises(DataError, match="no rollout files given"):
        import_rollouts([], records)
