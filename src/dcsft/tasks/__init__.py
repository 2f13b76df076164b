"""Tasks: each module owns its prompt, answer parser and verifier, the one definition of
"correct" that profiling, evaluation and rewards all call.

A task with several verifier rules (classification: `RULES`, chosen by the config's `verifier`)
names the functions that take one in `RULE_FUNCTIONS`; `get_task(name, verifier)` hands them out
with the rule bound, so profiling, evaluation and the GRPO reward all score by the same rule. A
task without `RULES` (grounding: IoU >= 0.5) ignores `verifier`."""

import functools
import hashlib
import inspect

from dcsft.tasks import classification, grounding

TASKS = {"classification": classification, "grounding": grounding}
DEFAULT_VERIFIER = "paper"


class WithRule:
    """A task module whose scoring functions apply one verifier rule; every other attribute is
    the module's own."""

    def __init__(self, task, rule: str):
        self.task = task
        self.rule = rule

    def __getattr__(self, name: str):
        value = getattr(self.task, name)
        return functools.partial(value, rule=self.rule) if name in self.task.RULE_FUNCTIONS else value


def verifier_version(name: str, verifier: str = DEFAULT_VERIFIER) -> str:
    """A hash of the task module's source, plus the rule where it is not the default: stages
    scored by its verifier (profile, evaluate, GRPO) rerun when the definition of "correct"
    changes; the default rule adds nothing, so naming it explicitly reruns nothing."""
    task = get_task(name)
    version = hashlib.sha256(inspect.getsource(task).encode()).hexdigest()[:12]
    return f"{version}+{verifier}" if has_rule(task, verifier) else version


def has_rule(task, verifier: str) -> bool:
    """Whether `verifier` is a rule of the task other than its default one."""
    return verifier != DEFAULT_VERIFIER and hasattr(task, "RULES")


def profile_methods(task) -> list[str]:
    """`exact` needs a verifier with a finite set of accepted answers (`accepted_answers`)."""
    return ["sample", "adaptive", *(["exact"] if hasattr(task, "accepted_answers") else [])]


def get_task(name: str, verifier: str = DEFAULT_VERIFIER):
    """The task's module, or with a `verifier` other than the default one, the module with that
    rule bound into its scoring functions."""
    try:
        task = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None
    return WithRule(task, verifier) if has_rule(task, verifier) else task
