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


def items(n: int, style: str = "photo", templates: str = "train", pool: str = "test", size: int = rw.SIZE):
    return [rw.draw_item(0, pool, i, style, templates, size=size) for i in range(n)]


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


def number_items(n: int) -> list[dict]:
    metas = [meta for _, meta in items(n, size=32)]
    return [m for m in metas if m["skill"] in ("counting", "arithmetic")]


def test_number_options_come_from_the_skills_answers():
    for meta in number_items(80):
        support = rw.COUNTS if meta["skill"] == "counting" else rw.ARITHMETIC[meta["variant"]]
        assert all(int(o) in support for o in meta["options"])


def test_number_options_do_not_tell_the_answer():
    """The answer's rank among the sorted options is uniform, and so is the answer: the options
    alone cannot name it. (Version 1 drew distractors near the answer, which put it in the middle:
    a lookup table over option sets named it on 66-71% of items.)"""
    metas = number_items(1600)
    ranks = Counter(sorted(map(int, m["options"])).index(int(m["answer_text"])) for m in metas)
    assert sorted(ranks) == [0, 1, 2, 3]
    assert all(0.2 < ranks[r] / len(metas) < 0.3 for r in ranks), ranks
    counts = Counter(int(m["answer_text"]) for m in metas if m["skill"] == "counting")
    assert sorted(counts) == list(rw.COUNTS) and max(counts.values()) < 1.5 * min(counts.values())


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


def test_a_new_world_version_prepares_and_builds_again(monkeypatch):
    """The world's version is part of prepare's fingerprint and of the reasoning base's key; the
    other tasks' fingerprints do not carry it."""
    from dcsft import prepare
    from dcsft.config import load_config
    from dcsft.models.base import embedded_key

    reasoning = load_config(overrides=["task=reasoning", "pretrain.reasoning.steps=100"])
    classification = load_config().for_task("classification")
    before = [prepare.stage_fingerprint(c) for c in (reasoning, classification)]
    key = embedded_key(reasoning.pretrain)
    monkeypatch.setattr(rw, "VERSION", rw.VERSION + 1)
    assert prepare.stage_fingerprint(reasoning) != before[0]
    assert prepare.stage_fingerprint(classification) == before[1]
    assert embedded_key(reasoning.pretrain) != key
