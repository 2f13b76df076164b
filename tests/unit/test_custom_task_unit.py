"""The user task of examples/custom_task (counting shapes): its parser and partial-credit verifier,
how dcsft resolves and calls it, its records as make_records.py draws them, and the one-line
errors a user gets for a task path that does not import or a class without a verifier."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_cli_data import invoke as run_cli
from test_cli_data import one_error_line

from dcsft.data.formats import import_records
from dcsft.tasks import get_task, profile_methods, task_class, verifier_version
from dcsft.tasks.base import score

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_task"
RECORD = {"id": "c0", "image": "unused.png", "problem": "How many?", "solution": "4", "meta": {"count": 4}}


@pytest.fixture(scope="module", autouse=True)
def example_on_path():
    """examples/custom_task on sys.path, as PYTHONPATH puts it for the CLI."""
    sys.path.insert(0, str(EXAMPLE))
    task_class.cache_clear()
    yield
    sys.path.remove(str(EXAMPLE))
    for name in ("counting", "make_records"):
        sys.modules.pop(name, None)
    task_class.cache_clear()


@pytest.fixture
def counting():
    return importlib.import_module("counting")


@pytest.mark.parametrize(
    "response, parsed, expected",
    [
        ("4", 4, 1.0),
        ("4.", 4, 1.0),
        (" Four. ", 4, 1.0),
        ("There are 4 shapes.", 4, 1.0),
        ("3", 3, 0.75),  # off by one on 4 shapes
        ("five", 5, 0.75),
        ("2", 2, 0.5),
        ("4.5", 4.5, 0.875),  # a decimal part is read, not dropped
        ("8", 8, 0.0),  # twice the truth or more: no credit
        ("12", 12, 0.0),
        ("0", 0, 0.0),
        ("3 or 4", 3, 0.75),  # the first number is the answer
        ("someone", None, 0.0),  # "one" only as a whole word
        ("many", None, 0.0),
        ("", None, 0.0),
    ],
)
def test_verify_gives_partial_credit_by_distance(counting, response, parsed, expected):
    task = counting.Counting()
    assert task.parse(response) == parsed
    assert task.verify(response, RECORD) == pytest.approx(expected)


def test_one_shape_has_no_near_miss_and_zero_shapes_only_an_exact_answer(counting):
    task = counting.Counting()
    assert task.verify("2", {**RECORD, "solution": "1"}) == 0.0
    assert task.verify("0", {**RECORD, "solution": "0"}) == 1.0
    assert task.verify("1", {**RECORD, "solution": "0"}) == 0.0


@given(truth=st.integers(1, 30), predicted=st.integers(0, 10**6), tail=st.sampled_from(["", ".", " shapes"]))
def test_verify_is_the_documented_formula(truth, predicted, tail):
    task = importlib.import_module("counting").Counting()
    record = {**RECORD, "solution": str(truth)}
    expected = 1.0 if predicted == truth else max(0.0, 1 - abs(predicted - truth) / truth)
    assert task.verify(f"{predicted}{tail}", record) == pytest.approx(expected)


@given(st.text())
def test_every_response_scores_in_range_without_raising(response):
    task = importlib.import_module("counting").Counting()
    value = task.verify(response, RECORD)
    assert 0.0 <= value <= 1.0
    assert score(task, response, RECORD) == (value, False)  # dcsft's scorer: no verifier failure


@given(st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=40))
def test_text_without_a_digit_or_number_word_has_no_answer(text):
    counting = importlib.import_module("counting")
    if not any(word in text.lower() for word in counting.NUMBER_WORDS):
        assert counting.parse_count(text) is None


@given(st.integers(0, 20))
def test_every_accepted_answer_is_an_exact_count(count):
    task = importlib.import_module("counting").Counting()
    record = {**RECORD, "solution": str(count)}
    accepted = task.accepted_answers(record)
    assert {str(count), f"{count}."} <= set(accepted)
    assert all(task.verify(answer, record) == 1.0 for answer in accepted)
    assert all(task.verify(str(other), record) < 1.0 for other in range(21) if other != count)


def test_dcsft_resolves_the_task_by_import_path(counting):
    task = get_task("counting:Counting")
    assert isinstance(task, counting.Counting) and task.name == "counting"
    assert "exact" in profile_methods(task)  # accepted_answers is defined
    assert len(verifier_version("counting:Counting")) == 12  # a hash of counting.py's code
    # as a TRL reward on a dataset with a solution column (no record column)
    assert task.reward(["4", "3", "no idea"], solution=["4", "4", "4"]) == [1.0, 0.75, 0.0]


def test_record_problem_and_split_stats(counting):
    task = counting.Counting()
    assert task.record_problem(RECORD) is None
    assert "not a whole count" in task.record_problem({**RECORD, "solution": "a few"})
    assert task.prepare_record({**RECORD, "solution": "2.5"}, None)[0] is None
    assert task.split_stats([]) == {}
    assert task.split_stats([RECORD, {**RECORD, "solution": "1"}, RECORD]) == {"counts": {"1": 1, "4": 2}}


def test_make_records_draws_disjoint_deterministic_records(tmp_path):
    make_records = importlib.import_module("make_records")
    sizes = {"coldstart": 6, "train": 7, "test": 5, "outline": 5}
    first = make_records.write_records(tmp_path / "a", sizes, seed=3)
    again = make_records.write_records(tmp_path / "b", sizes, seed=3)
    images = set()
    for split, path in first.items():
        loaded = import_records(path)  # dcsft's reader: every record usable, image paths resolved
        assert not loaded.skipped and len(loaded.records) == sizes[split]
        assert [r["solution"] for r in loaded.records] == [str(1 + i % 5) for i in range(sizes[split])]
        for record, other in zip(loaded.records, import_records(again[split]).records):
            with Image.open(record["image"]) as image, Image.open(other["image"]) as twin:
                assert image.size == (84, 84)
                assert image.convert("RGB").tobytes() == twin.convert("RGB").tobytes()
        images |= {r["image"] for r in loaded.records}
    assert len(images) == sum(sizes.values())  # no image in two splits


def test_the_committed_records_are_what_make_records_draws(tmp_path):
    make_records = importlib.import_module("make_records")
    committed = EXAMPLE / "records"
    files = make_records.write_records(tmp_path, make_records.DEFAULT_SIZES, seed=0)
    for split, path in files.items():
        assert json.loads(path.read_text()) == json.loads((committed / f"{split}.json").read_text()), split
    for png in sorted((tmp_path / "images").glob("*.png")):
        with Image.open(png) as drawn, Image.open(committed / "images" / png.name) as kept:
            assert drawn.convert("RGB").tobytes() == kept.convert("RGB").tobytes(), png.name
    assert len(list((committed / "images").glob("*.png"))) == sum(make_records.DEFAULT_SIZES.values())


def invoke(*args) -> str:
    """The CLI in this process; its output, which must be one error line and exit code 2."""
    return one_error_line(run_cli(*args))


def test_a_task_path_that_does_not_import_is_one_line(tmp_path):
    line = invoke(
        "study", EXAMPLE / "study.yaml", "--set", "task=nope:Nothing", "--run-dir", tmp_path / "run"
    )
    assert "task 'nope:Nothing': cannot import module 'nope'" in line
    assert not (tmp_path / "run").exists()  # refused before any work


def test_a_class_without_verify_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "noverify.py").write_text(
        textwrap.dedent(
            """
            from dcsft.tasks.base import Task


            class Counting(Task):
                name = "counting"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    task_class.cache_clear()
    line = invoke(
        "study", EXAMPLE / "study.yaml", "--set", "task=noverify:Counting", "--run-dir", tmp_path / "run"
    )
    assert "class Counting has no verify(response, record) -> float method" in line
    sys.modules.pop("noverify", None)
    task_class.cache_clear()
