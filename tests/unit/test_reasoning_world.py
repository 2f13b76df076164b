"""The embedded reasoning world (dcsft.data.reasoning_world): deterministic draws, answers that
agree with the drawing, balanced letters, distinct options and disjoint ID / OOD templates."""

from __future__ import annotations

import string
from collections import Counter

import numpy as np
import pytest

from dcsft.data import reasoning_world as rw
from dcsft.data.drawing import COLOURS
from dcsft.data.splits import ID_SPLITS, OOD_SPLITS, TRAIN_SOURCE


def items(n: int, style: str = "photo", templates: str = "train", pool: str = "test"):
    return [rw.draw_item(0, pool, i, style, templates) for i in range(n)]


def test_draws_are_deterministic_and_pools_differ():
    a, meta_a = rw.draw_item(0, "pool", 5, "photo", "train")
    b, meta_b = rw.draw_item(0, "pool", 5, "photo", "train")
    assert np.array_equal(np.asarray(a), np.asarray(b)) and meta_a == meta_b
    c, _ = rw.draw_item(0, "other", 5, "photo", "train")
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    assert a.size == (rw.SIZE, rw.SIZE)


@pytest.mark.parametrize("style", rw.STYLES)
def test_answer_agrees_with_the_drawing(style):
    for _, meta in items(80, style):
        assert meta["options"][rw.LETTERS.index(meta["answer"])] == meta["answer_text"]
        assert len(meta["options"]) == 4 and len(set(meta["options"])) == 4
        assert meta["answer_type"] == "choice" and meta["source"] == "embedded"
        assert meta["kinds"] == [meta["skill"]]
        if meta["skill"] == "counting":
            assert int(meta["answer_text"]) == meta["counts"][0]
        if meta["skill"] == "arithmetic":
            na, nb = meta["counts"]
            assert int(meta["answer_text"]) == (na + nb if meta["variant"] == "sum" else na - nb)
        if meta["skill"] == "chart":
            ordered = sorted(meta["values"])
            assert ordered[-1] - ordered[-2] >= 0.08 - 1e-9 and ordered[1] - ordered[0] >= 0.08 - 1e-9


@pytest.mark.parametrize("style", rw.STYLES)
def test_chart_answer_is_the_extreme_bar_in_pixels(style):
    """Bars of one chart share their width, so the answer's bar has the most (or fewest) pixels
    of its colour among the bars'."""
    checked = 0
    for image, meta in items(48, style):
        if meta["skill"] != "chart":
            continue
        pixels = np.asarray(image, dtype=np.float32)
        bars = [meta["answer_text"], *[c for c in meta["options"] if c != meta["answer_text"]]]
        area = {c: int((np.linalg.norm(pixels - COLOURS[c], axis=-1) < 45).sum()) for c in bars}
        drawn = sorted(bars, key=area.get)[-len(meta["values"]) :]
        pick = max if meta["variant"] == "tallest" else min
        assert pick(drawn, key=area.get) == meta["answer_text"], (meta, area)
        checked += 1
    assert checked == 12


def test_letters_are_balanced_exactly_per_block():
    letters = [meta["answer"] for _, meta in items(64)]
    for block in range(0, 64, 4):
        assert sorted(letters[block : block + 4]) == list(rw.LETTERS)
    skills = Counter((meta["skill"], meta["answer"]) for _, meta in items(64))
    assert len(skills) > 8  # a skill's answer is not tied to one letter


def test_skills_cycle():
    assert [meta["skill"] for _, meta in items(8)] == list(rw.SKILLS) * 2


def test_distractor_numbers_are_near_the_answer():
    for _, meta in items(80):
        if meta["skill"] in ("counting", "arithmetic"):
            answer = int(meta["answer_text"])
            assert all(abs(int(o) - answer) <= 3 and int(o) >= 0 for o in meta["options"])


def test_id_and_ood_templates_are_disjoint():
    train = {t for skill in rw.TEMPLATES["train"].values() for t in skill.values()}
    rephrased = {t for skill in rw.TEMPLATES["rephrased"].values() for t in skill.values()}
    assert not train & rephrased
    questions = {meta["question"] for _, meta in items(40, templates="train")}
    ood = {meta["question"] for _, meta in items(40, templates="rephrased")}
    assert not questions & ood


def test_splits_draw_what_they_say():
    assert ID_SPLITS["reasoning"] == "questions"
    assert TRAIN_SOURCE["reasoning"] == ("photo", "train")
    assert OOD_SPLITS["reasoning"] == {"rephrased": ("photo", "rephrased"), "rendered": ("rendered", "train")}


def test_problem_text_renders_lettered_options():
    _, meta = rw.draw_item(0, "pool", 0, "photo", "train")
    text = rw.problem_text(meta)
    assert meta["question"] in text
    for letter, option in zip(rw.LETTERS, meta["options"]):
        assert f"\n{letter}. {option}" in text
    fields = {f for _, f, _, _ in string.Formatter().parse(rw.PROMPT) if f}
    assert fields == {"question", "options"}


def test_unknown_style_or_templates_is_one_line():
    with pytest.raises(ValueError, match="unknown reasoning style"):
        rw.draw_item(0, "pool", 0, "sketch", "train")
    with pytest.raises(ValueError, match="unknown template set"):
        rw.draw_item(0, "pool", 0, "photo", "ood")
