"""Tasks: each is a `dcsft.tasks.base.Task` that owns its prompt, answer and verifier, the one
definition of "correct" that profiling, evaluation, the GRPO reward and the report all call.

`task:` in the config names a built-in task (`classification`, `grounding`, `reasoning`), a class
or reward function by import path (`mypkg.tasks:Counting`), or a `dcsft.tasks` entry point of an
installed package. A class that is not a `Task` subclass but defines `verify` gets `Task`'s defaults for
the rest; a plain callable is a TRL-style reward (`base.RewardTask`).

The verifier's version (`verifier_version`), part of every fingerprint scored by it (profile,
evaluate, GRPO), is a hash of the syntax tree of the module that defines the task, docstrings
removed: a change to the code reruns those stages, an edit to a docstring, a comment or the
formatting does not. Code the verifier imports from other modules is not covered; a task that
depends on such code sets `version` to pin its version by hand.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from functools import cache
from importlib import metadata

from dcsft.tasks.base import RewardTask, Task, TaskSettings, code_version
from dcsft.tasks.classification import Classification
from dcsft.tasks.grounding import Grounding
from dcsft.tasks.reasoning import Reasoning

BUILTIN: dict[str, type[Task]] = {
    "classification": Classification,
    "grounding": Grounding,
    "reasoning": Reasoning,
}
ENTRY_POINTS = "dcsft.tasks"  # the entry-point group an installed package registers its tasks in
DEFAULT_VERIFIER = "paper"


class TaskNotFound(ValueError):
    """A task name that names no usable task; the message is one line."""


def entry_point(name: str):
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINTS) if ep.name == name]
    return found[0] if found else None


def resolve(name: str) -> object:
    """The class or function `name` refers to: built-in, `module:attribute`, or an entry point."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise TaskNotFound(
                f"task {name!r}: cannot import module {module_name!r} ({err}); is its folder on PYTHONPATH?"
            ) from None
        try:
            return getattr(module, attribute)
        except AttributeError:
            raise TaskNotFound(f"task {name!r}: module {module_name!r} has no {attribute!r}") from None
    found = entry_point(name)
    if found is None:
        raise TaskNotFound(
            f"unknown task {name!r}; known: {', '.join(sorted(BUILTIN))}, an import path "
            f"(mypkg.tasks:Counting) or a {ENTRY_POINTS!r} entry point"
        )
    try:
        return found.load()
    except Exception as err:  # noqa: BLE001 - any failure of a third-party import is one line
        raise TaskNotFound(f"task {name!r}: entry point {found.value!r} cannot be loaded ({err})") from None


@cache
def task_class(name: str) -> type[Task] | RewardTask:
    """The Task class `name` refers to; a plain callable becomes a `RewardTask`."""
    target = resolve(name)
    if inspect.isclass(target):
        if not callable(getattr(target, "verify", None)) or target.verify is Task.verify:
            raise TaskNotFound(
                f"task {name!r}: class {target.__name__} has no verify(response, record) -> float method, "
                "which every task needs (dcsft.tasks.base.Task)"
            )
        return target if issubclass(target, Task) else type(target.__name__, (target, Task), {})
    if callable(target):
        return target
    raise TaskNotFound(f"task {name!r} is a {type(target).__name__}, not a Task class or a reward function")


def get_task(name: str, verifier: str = DEFAULT_VERIFIER, frame: str = "model") -> Task:
    """The task `name` refers to, set up with the study's verifier rule and scoring frame."""
    found = task_class(name)
    settings = TaskSettings(verifier, frame)
    task = found(settings) if inspect.isclass(found) else RewardTask(found, settings)
    if not task.name:
        task.name = name
    return task


def verifier_version(name: str, verifier: str = DEFAULT_VERIFIER) -> str:
    """The version of the task's verifier (see the module's docstring), plus the rule where the
    task has rules and it is not the default, so that naming the default reruns nothing."""
    task = get_task(name, verifier)
    source = task.function if isinstance(task, RewardTask) else type(task)
    version = task.version or code_version(sys.modules[source.__module__])
    return f"{version}+{verifier}" if has_rule(task, verifier) else version


def has_rule(task: Task, verifier: str) -> bool:
    """Whether `verifier` is a rule of the task other than its default one."""
    return verifier != DEFAULT_VERIFIER and verifier in task.rules


def profile_methods(task: Task) -> list[str]:
    """`exact` needs a verifier with a finite set of accepted answers (`accepted_answers`); `loss`
    needs only the gold answer, which every task has."""
    enumerable = type(task).accepted_answers is not Task.accepted_answers
    return ["sample", "adaptive", *(["exact"] if enumerable else []), "loss"]
