"""Phase 4's examples (dcsft.models.pretrain_reasoning): each task's prompt and answer, and steps
split by the configured shares."""

from __future__ import annotations

from collections import Counter

import numpy as np

from dcsft.config import ReasoningPretrainConfig
from dcsft.data import reasoning_world as rw
from dcsft.models.pretrain_reasoning import PHASE4_TASKS, phase4_pair, phase4_task, reasoning_prompts


def meta() -> dict:
    return rw.draw_item(0, "pool", 2, "photo", "train", size=32)[1]


def test_choice_asks_the_question_with_lettered_options_and_answers_the_letter():
    m = meta()
    prompt, answer = phase4_pair("choice", np.random.default_rng(0), m, reasoning_prompts())
    assert m["question"] in prompt and rw.render_options(m["options"]) in prompt
    assert answer == m["answer"]


def test_direct_answers_with_the_options_text():
    m = meta()
    assert phase4_pair("direct", np.random.default_rng(0), m, reasoning_prompts()) == (
        m["question"],
        m["answer_text"],
    )


def test_select_names_the_answer_and_asks_its_letter():
    m = meta()
    prompt, answer = phase4_pair("select", np.random.default_rng(0), m, reasoning_prompts())
    assert f"Which option is {m['answer_text']}?" in prompt and m["question"] not in prompt
    assert rw.render_options(m["options"]) in prompt and answer == m["answer"]


def test_steps_follow_the_shares():
    r = ReasoningPretrainConfig(choice=0.45, direct=0.25, select=0.2)
    draws = Counter(phase4_task(r, u) for u in np.random.default_rng(0).random(20000))
    for task, share in [("choice", 0.45), ("direct", 0.25), ("select", 0.2), ("replay", 0.1)]:
        assert abs(draws[task] / 20000 - share) < 0.015, draws
    assert set(PHASE4_TASKS) | {"replay"} == set(draws)
    without = ReasoningPretrainConfig(choice=0.6, direct=0.3, select=0.0)  # never drawn
    assert "select" not in {phase4_task(without, u) for u in np.linspace(0, 0.999, 1000)}
