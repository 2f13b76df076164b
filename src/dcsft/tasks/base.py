"""The Task interface: what a task is, as every stage sees it.

A task says how a record is asked (`prompt`), what SFT trains on (`answer`) and what counts as
correct (`verify`, a score in [0, 1]). Profiling, evaluation, the GRPO reward and the report all
call these methods and nothing else, so a task is one definition of "correct" for the whole study.
Records are dicts `{id, image, problem, solution, meta}` (dcsft.data.records).

Write a task by subclassing `Task` and overriding `verify` (and whichever optional hook applies);
name it in the config as `task: mypkg.tasks:Counting` or through a `dcsft.tasks` entry point
(dcsft.tasks.get_task). A plain callable with the signature of TRL's rewards,
`reward(completions, solution, **columns) -> list[float]`, is also a task (`RewardTask`).

Required:
    verify(response, record) -> float
        The response's score in [0, 1]: 1.0 / 0.0 for a pass/fail task, partial credit for a
        graded one. A response counts as correct when its score reaches `pass_score`. A verifier
        that raises or returns anything else is scored 0 and counted (`scored`), never fatal.
Optional (the defaults suit a task whose records carry their own prompt and answer):
    name, metric, pass_score, version,   class attributes, see below
    rules, prompt_presets, placeholders, coordinates
    prompt(record) -> str                the question put to the model (default: record["problem"])
    answer(record) -> str                the text SFT trains on (default: record["solution"]);
                                         prepare writes both into every record it prepares, so
                                         generation, training, export and `profile.method: loss`
                                         all read them as the record's problem and solution
    accepted_answers(record)             the finite list of accepted answer strings, which
                                         `profile.method: exact` sums the probability of; None
                                         (the default): not enumerable, `exact` is refused
    parse(response)                      the answer the response gives, for reports; None when it
                                         gives none (counted as unparsable)
    record_problem(record)               why a loaded record is unusable (None: usable); prepare
                                         skips such records with this reason
    prepare_record(record, context)      a loaded record made ready for the model (e.g. a box
                                         mapped into the model's frame): (record, None) or
                                         (None, why it was skipped)
    split_stats(records)                 extra facts prepare records about the prepared records
    template_fields(meta)                the text each prompt placeholder takes for a record
    response_stats(responses, records)   facts about a split's responses that evaluate reports
                                         beside accuracy (reasoning: how many kept the R1
                                         format), never part of the score; {} by default
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class TaskSettings:
    """The study settings a task may read: `verifier`, the config's rule name for tasks with
    several (classification: paper / authors), and `frame`, where coordinates are scored
    (grounding: `model` or `original`, evaluation only)."""

    verifier: str = "paper"
    frame: str = "model"


@dataclass(frozen=True)
class PrepareContext:
    """What prepare knows when it readies a record: the wording in force (dcsft.conventions.Wording)
    and the model's resize bounds."""

    wording: Any
    min_pixels: int
    max_pixels: int


class Task:
    """Base class of every task; override `verify` and the optional hooks that apply."""

    name: ClassVar[str] = ""  # how configs and reports name the task
    metric: ClassVar[str] = "score = 1"  # how a report names what counts as correct
    pass_score: ClassVar[float] = 1.0  # a response is correct when its score reaches this
    # The verifier's version in fingerprints (profile, evaluate, GRPO): None hashes the code of
    # the task's module (dcsft.tasks.verifier_version); a string pins it by hand.
    version: ClassVar[str | None] = None
    rules: ClassVar[tuple[str, ...]] = ()  # rule names `verifier` may choose, beside "paper"
    # Prompt templates prepare can word records with (`prompts.<task>` names one; "paper" is the
    # default) and the meta fields a template must hold as {placeholders}; none: records keep
    # their own problem.
    prompt_presets: ClassVar[dict[str, str]] = {}
    placeholders: ClassVar[frozenset[str]] = frozenset()
    # Whether answers hold box coordinates, written in `model.box_format`'s convention and
    # `prompts.answer_format` (dcsft.conventions)
    coordinates: ClassVar[bool] = False

    def __init__(self, settings: TaskSettings = TaskSettings()):
        self.settings = settings

    def verify(self, response: str, record: dict) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define verify(response, record) -> float")

    def prompt(self, record: dict) -> str:
        return record["problem"]

    def answer(self, record: dict) -> str:
        return record["solution"]

    def accepted_answers(self, record: dict) -> list[str] | None:
        return None

    def parse(self, response: str) -> Any:
        return response.strip() or None

    def record_problem(self, record: dict) -> str | None:
        return None

    def prepare_record(self, record: dict, context: PrepareContext) -> tuple[dict | None, str | None]:
        """By default: the record as it is, or skipped for its `record_problem`."""
        problem = self.record_problem(record)
        return (None, problem) if problem else (record, None)

    def split_stats(self, records: list[dict]) -> dict:
        return {}

    def template_fields(self, meta: dict) -> dict[str, str]:
        """The values a prompt template's placeholders take for a record's meta (default: the
        meta fields of the same names); a task renders structured fields here, e.g. a list of
        options as lettered lines."""
        return {name: meta[name] for name in self.placeholders}

    def response_stats(self, responses: list, records: list[dict]) -> dict:
        """Facts about one split's responses (paired with their records) that evaluate writes
        beside accuracy in scores.json, e.g. the share that kept a required format; {} by default."""
        return {}

    def reward(self, completions: list, record: list | None = None, **columns: list) -> list[float]:
        """The GRPO reward as TRL calls it. dcsft's GRPO dataset has a `record` column of whole
        records (as JSON, dcsft.train.grpo.to_dataset), so the reward is `verify` on the same
        record that profiling and evaluation score. Called as a plain TRL reward on a dataset
        without it, each row's `solution` and other columns (e.g. grounding's `size`,
        `box_format`) make the record, the columns as its meta. Raising and out-of-range values
        are left to the caller, which scores them 0 and counts them."""
        if record is None:
            solutions = columns.pop("solution")
            rows = {k: v for k, v in columns.items() if isinstance(v, list) and len(v) == len(solutions)}
            record = [
                {"solution": solution, "meta": {name: values[i] for name, values in rows.items()}}
                for i, solution in enumerate(solutions)
            ]
        records = [json.loads(r) if isinstance(r, str) else r for r in record]
        return [self.verify(completion_text(c), r) for c, r in zip(completions, records, strict=True)]


def completion_text(completion: object) -> object:
    """A TRL completion's text: a string, or the last turn of [{"role", "content"}] messages."""
    if isinstance(completion, list) and completion:
        return completion[-1].get("content") if isinstance(completion[-1], dict) else completion[-1]
    return completion


@dataclass
class Scored:
    """A verifier's verdicts on many responses, with how many failed (raised or gave no score in
    [0, 1]) and so scored 0."""

    scores: list[float]
    failures: int = 0


def usable(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )


def score(task: Task, response: object, record: dict) -> tuple[float, bool]:
    """(the response's score, whether the verifier failed): a response that is not text, a verifier
    that raises, or one that returns anything but a number in [0, 1] scores 0."""
    if not isinstance(response, str):
        return 0.0, False
    try:
        value = task.verify(response, record)
    except Exception:  # noqa: BLE001 - a user's verifier may raise anything; it is counted, not fatal
        return 0.0, True
    if isinstance(value, bool):
        value = float(value)
    return (float(value), False) if usable(value) else (0.0, True)


def score_all(task: Task, responses: list, records: list[dict]) -> Scored:
    verdicts = [score(task, response, record) for response, record in zip(responses, records, strict=True)]
    return Scored([value for value, _ in verdicts], sum(failed for _, failed in verdicts))


def correct(task: Task, value: float) -> int:
    return int(value >= task.pass_score)


class RewardTask(Task):
    """A task from a plain callable with the signature of TRL's rewards:
    `reward(completions, solution, **columns) -> list[float]`. It is called one response at a
    time with the record's solution and meta fields as columns."""

    metric = "reward = 1"

    def __init__(self, function: Callable, settings: TaskSettings = TaskSettings()):
        super().__init__(settings)
        self.function = function
        self.name = getattr(function, "__name__", "reward")

    def verify(self, response: str, record: dict) -> float:
        meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
        columns = {key: [value] for key, value in meta.items() if key not in ("completions", "solution")}
        return list(self.function([response], solution=[record["solution"]], **columns))[0]


def code_version(module) -> str:
    """A hash of a module's syntax tree without its docstrings: comments, formatting and
    docstrings leave it unchanged, any change to the code changes it."""
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:12]
