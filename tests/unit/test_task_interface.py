"""The Task interface: one definition of "correct" for profiling, evaluation and the GRPO reward,
tasks named by import path, and the verifier's version rule."""

import json
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from dcsft.cli import app
from dcsft.evaluate import score_row, task_stats
from dcsft.profiling import Profiler
from dcsft.tasks import TaskNotFound, code_version, get_task, profile_methods, task_class, verifier_version
from dcsft.tasks.base import RewardTask, Task
from dcsft.tasks.grounding import Grounding
from dcsft.train.grpo import CountedReward, to_dataset

# A grounding record as prepare writes it: a 100 x 100 frame, the truth against the right edge.
RECORD = {
    "id": "g0",
    "image": "unused.png",
    "problem": "Please provide the bounding box of the region this sentence describes: the bar.",
    "solution": "[50, 0, 100, 10]",
    "meta": {"size": [100, 100], "box": [50, 0, 100, 10]},
}
# Boxes partly outside the image: clipped to it, the first two match the truth (IoU 1 and 0.8);
# unclipped, the first would score IoU 0.45 and be wrong. The last has no box.
RESPONSES = ["[50, 0, 160, 10]", "[40, -5, 100, 10]", "[-50, -50, 10, 10]", "no box"]
EXPECTED = [1, 1, 0, 0]


def profiled(task, record, responses):
    profiler = Profiler(model=None, processor=None, task=task, p=None, seed=0)
    return profiler.row(record, responses, 0, 0, 0)


def test_profiling_evaluation_and_the_grpo_reward_agree_on_boxes_outside_the_image():
    task = get_task("grounding")
    profile = profiled(task, RECORD, RESPONSES)["correct"]
    evaluation = [score_row(task, RECORD, response)["correct"] for response in RESPONSES]
    rows = to_dataset([RECORD] * len(RESPONSES))  # the GRPO dataset: the record travels whole
    reward = CountedReward(task.reward)(list(RESPONSES), record=rows["record"], solution=rows["solution"])
    assert profile == evaluation == reward == EXPECTED
    assert json.loads(rows["record"][0])["meta"]["size"] == [100, 100]


class Flaky(Task):
    """Raises on one response, answers out of range on another."""

    def verify(self, response, record):
        if response == "boom":
            raise RuntimeError("verifier crashed")
        return {"two": 2.0, "nan": float("nan"), "yes": True}.get(response, 0.5)


def test_a_verifier_that_fails_scores_zero_and_is_counted_everywhere():
    task, responses = Flaky(), ["boom", "two", "nan", "yes", "half"]
    row = profiled(task, RECORD, responses)
    assert row["scores"] == [0.0, 0.0, 0.0, 1.0, 0.5] and row["verifier_failures"] == 3
    assert row["correct"] == [0, 0, 0, 1, 0]  # correct means reaching pass_score (1.0)
    rows = [score_row(task, RECORD, r) for r in responses]
    assert task_stats(task, rows)["verifier_failures"] == 3
    counted = CountedReward(task.reward)
    assert counted(responses, record=[RECORD] * 5) == [0.0, 0.0, 0.0, 1.0, 0.5]
    assert counted.failures == 3


def write_module(tmp_path, monkeypatch, name, source):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # each version is read from its source
    sys.modules.pop(name, None)
    task_class.cache_clear()


def test_a_task_by_import_path_a_duck_class_and_a_reward_function(tmp_path, monkeypatch):
    write_module(
        tmp_path,
        monkeypatch,
        "usertasks",
        """
        class Duck:  # not a Task subclass: Task's defaults fill in the rest
            def verify(self, response, record):
                return float(response.strip() == record["solution"])

        def exact_reward(completions, solution, **_):
            return [float(c == s) for c, s in zip(completions, solution)]

        class NoVerify:
            def prompt(self, record):
                return "?"
        """,
    )
    duck = get_task("usertasks:Duck")
    assert isinstance(duck, Task) and duck.name == "usertasks:Duck"
    assert duck.verify(" 3 ", {"solution": "3"}) == 1.0 and duck.answer({"solution": "3"}) == "3"
    assert profile_methods(duck) == ["sample", "adaptive", "loss"]  # no accepted_answers: no exact
    reward = get_task("usertasks:exact_reward")
    assert isinstance(reward, RewardTask) and reward.verify("3", {"solution": "3"}) == 1.0
    with pytest.raises(TaskNotFound, match="class NoVerify has no verify"):
        get_task("usertasks:NoVerify")
    with pytest.raises(TaskNotFound, match="module 'usertasks' has no 'Missing'"):
        get_task("usertasks:Missing")
    with pytest.raises(TaskNotFound, match="cannot import module 'nowhere'"):
        get_task("nowhere:Task")


@pytest.mark.parametrize(
    "task, says",
    [
        ("nowhere:Counting", "cannot import module 'nowhere'"),
        ("json:Missing", "module 'json' has no 'Missing'"),
        ("json:JSONDecoder", "class JSONDecoder has no verify"),
        ("counting", "unknown task 'counting'"),
    ],
)
def test_a_bad_task_is_one_line_through_the_cli(task, says):
    result = CliRunner().invoke(app, ["plan", "--set", f"task={task}"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], result.output


def test_the_version_ignores_docstrings_comments_and_layout_but_not_code(tmp_path, monkeypatch):
    code = '''
        """A task."""
        from dcsft.tasks.base import Task

        class Half(Task):
            """Half credit."""

            def verify(self, response, record):
                return 0.5
        '''
    versions = []
    for source in (
        code,
        code.replace('"""Half credit."""', '"""Half credit, documented at length."""')
        + "        # a comment\n",
        code.replace("return 0.5", "return (\n                    0.5\n                )"),
        code.replace("return 0.5", "return 0.25"),
    ):
        write_module(tmp_path, monkeypatch, "halftask", source)
        versions.append(verifier_version("halftask:Half"))
    assert versions[0] == versions[1] == versions[2] != versions[3]


def test_a_pinned_version_and_the_builtin_rule():
    class Pinned(Grounding):
        version = "v2"

    assert Pinned().version == "v2"
    import dcsft.tasks.grounding as grounding_module

    assert verifier_version("grounding") == code_version(grounding_module)
    assert verifier_version("classification", "authors").endswith("+authors")
