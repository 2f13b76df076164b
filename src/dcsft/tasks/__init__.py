"""Tasks: each module owns its prompt, answer parser and verifier, the one definition of
"correct" that profiling, evaluation and rewards all call."""

import hashlib
import inspect

from dcsft.tasks import classification, grounding

TASKS = {"classification": classification, "grounding": grounding}


def verifier_version(name: str) -> str:
    """A hash of the task module's source: stages scored by its verifier (profile, evaluate,
    GRPO) rerun when the definition of "correct" changes."""
    return hashlib.sha256(inspect.getsource(get_task(name)).encode()).hexdigest()[:12]


def profile_methods(task) -> list[str]:
    """`exact` needs a verifier with a finite set of accepted answers (`accepted_answers`)."""
    return ["sample", "adaptive", *(["exact"] if hasattr(task, "accepted_answers") else [])]


def get_task(name: str):
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None
