"""The reward GRPO sees: the task's verifier, made safe and counted."""

import math

from dcsft.tasks.classification import Classification
from dcsft.train.grpo import CountedReward


def _turns(*texts):
    return [[{"role": "assistant", "content": t}] for t in texts]


def test_task_reward_through_the_wrapper_is_the_verifier():
    reward = CountedReward(Classification().reward)
    logged = []
    values = reward(
        _turns("Circle.", "square", " circle "),
        solution=["circle"] * 3,
        completion_ids=[[1, 2], [3], [4]],
        log_metric=lambda name, value: logged.append((name, value)),
    )
    assert values == [1.0, 0.0, 1.0]
    assert reward.failures == 0 and logged == [("reward_failures", 0.0)]
    assert reward.__name__ == "reward"


def test_one_raising_completion_scores_zero_and_is_counted():
    def picky(completions, solution, **_):
        if any("boom" in c for c in completions):
            raise RuntimeError("verifier crashed")
        return [float(c == s) for c, s in zip(completions, solution)]

    reward, logged = CountedReward(picky), []
    assert reward(["a", "boom", "b"], solution=["a", "a", "b"], log_metric=lambda *m: logged.append(m)) == [
        1.0,
        0.0,
        1.0,
    ]
    assert reward.failures == 1 and logged == [("reward_failures", 1.0)]


def test_non_numbers_score_zero_and_are_counted():
    reward = CountedReward(lambda completions, **_: [1, None, "yes", math.nan, math.inf, 0.5, True])
    assert reward(list("abcdefg")) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0]
    assert reward.failures == 4


def test_wrong_number_of_rewards_falls_back_to_one_at_a_time():
    reward = CountedReward(lambda completions, **_: [1.0])  # always one value
    assert reward(["a", "b", "c"]) == [1.0, 1.0, 1.0]
    assert reward.failures == 0


def test_failures_accumulate_over_calls():
    reward = CountedReward(lambda completions, **_: 1 / 0)
    reward(["a", "b"])
    reward(["c"])
    assert reward.failures == 3
