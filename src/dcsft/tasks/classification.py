"""Image classification with a one-word answer (ImageNet in the paper, the shape world here).

Correct means: the response equals the answer after stripping whitespace and one trailing
period, case-insensitively (the paper's verifier).
"""

from __future__ import annotations

PROMPT = "Please provide the object name in the image. Output the answer using one word."
METRIC = "exact match"  # how a report names what counts as correct


def normalize(text: str) -> str:
    text = text.strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text.lower()


def is_correct(response: str, solution: str) -> bool:
    """An empty answer is never correct, even against an empty label that slipped through."""
    answer = normalize(response)
    return bool(answer) and answer == normalize(solution)


def accepted_answers(solution: str) -> list[str]:
    """The answer strings `profile.method=exact` sums the probability of: the answer as given,
    lower-case and capitalised, each with and without the trailing period. The verifier also
    accepts other capitalisations and surrounding whitespace; those are not counted, so exact
    slightly underestimates P(correct) by their mass (benchmarks/profile_speed.py measures how
    many sampled correct answers fall outside this set)."""
    base = normalize(solution)
    forms = dict.fromkeys([solution.strip(), base, base.capitalize()])
    return [form + end for form in forms for end in ("", ".")]


def score(response: object, solution: str) -> float:
    """1.0 if correct else 0.0; a response that is not text scores 0 rather than raising."""
    return float(isinstance(response, str) and is_correct(response, solution))


def score_record(response: object, record: dict, frame: str = "model") -> float:
    """`frame` is for tasks whose answers have coordinates; a class name has none."""
    return score(response, record["solution"])


def reward(completions: list, solution: list[str], **_: object) -> list[float]:
    """TRL-style reward callable: completions are strings or [{"role", "content"}] turns."""
    texts = [c[-1]["content"] if isinstance(c, list) and c else c for c in completions]
    return [score(text, answer) for text, answer in zip(texts, solution, strict=True)]
