"""Tasks: each module owns its prompt, answer parser and verifier, the one definition of
"correct" that profiling, evaluation and rewards all call."""

from dcsft.tasks import classification

TASKS = {"classification": classification}


def profile_methods(task) -> list[str]:
    """`exact` needs a verifier with a finite set of accepted answers (`accepted_answers`)."""
    return ["sample", "adaptive", *(["exact"] if hasattr(task, "accepted_answers") else [])]


def get_task(name: str):
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None
