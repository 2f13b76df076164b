"""The classification verifier: the paper's rule (strip whitespace, strip a trailing period,
case-insensitive exact match) and the TRL-style reward callable built on it."""

import pytest

from dcsft.tasks.classification import PROMPT, is_correct, normalize, reward, score


def test_prompt_is_the_papers():
    assert PROMPT == "Please provide the object name in the image. Output the answer using one word."


@pytest.mark.parametrize(
    "response",
    [
        "goose",
        "Goose",
        "GOOSE",
        "goose.",
        "Goose.",
        " GOOSE \n",
        "\tgoose.\n",
        "goose .",  # the period is stripped, then the whitespace before it
        "  gOoSe.  ",
    ],
)
def test_correct_variants(response):
    assert is_correct(response, "goose")
    assert score(response, "goose") == 1.0


@pytest.mark.parametrize(
    "response",
    [
        "goose..",  # only ONE trailing period is stripped
        ".goose",  # a leading period is not stripped
        "geese",
        "goose!",
        "a goose",
        "goose bird",
        "gooses",
        "goos",
        "go ose",
        "The answer is goose.",
    ],
)
def test_wrong_answers(response):
    assert not is_correct(response, "goose")
    assert score(response, "goose") == 0.0


def test_solution_is_normalized_too():
    assert score("goose", "Goose.") == 1.0
    assert score("GOOSE.", " goose ") == 1.0


def test_normalize():
    assert normalize(" Goose. ") == "goose"
    assert normalize("goose..") == "goose."
    assert normalize("") == ""
    assert normalize(".") == ""


@pytest.mark.parametrize("response", ["", " ", "\n", "."])
def test_empty_response_is_wrong(response):
    assert score(response, "goose") == 0.0


@pytest.mark.parametrize("response", [None, 3, 3.0, ["goose"], {"content": "goose"}, b"goose"])
def test_non_string_scores_zero_without_raising(response):
    assert score(response, "goose") == 0.0


def test_score_returns_float():
    assert type(score("goose", "goose")) is float
    assert type(score(None, "goose")) is float


def test_reward_conversational_completions():
    completions = [
        [{"role": "assistant", "content": "star"}],
        [{"role": "assistant", "content": "Star."}],
        [{"role": "assistant", "content": "moon"}],
        [{"role": "assistant", "content": " HEART \n"}],
    ]
    assert reward(completions, solution=["star", "star", "star", "heart"]) == [1.0, 1.0, 0.0, 1.0]


def test_reward_uses_last_turn():
    completions = [[{"role": "assistant", "content": "moon"}, {"role": "assistant", "content": "star"}]]
    assert reward(completions, solution=["star"]) == [1.0]


def test_reward_plain_strings():
    assert reward(["star", "moon.", "STAR", ""], solution=["star", "moon", "moon", "star"]) == [
        1.0,
        1.0,
        0.0,
        0.0,
    ]


def test_reward_ignores_extra_trl_kwargs_and_bad_completions():
    out = reward(
        ["star", None, [], [{"role": "assistant", "content": None}]],
        solution=["star"] * 4,
        prompts=["p"] * 4,
        completion_ids=[[1]] * 4,
        trainer_state=None,
    )
    assert out == [1.0, 0.0, 0.0, 0.0]
    assert all(type(x) is float for x in out)
