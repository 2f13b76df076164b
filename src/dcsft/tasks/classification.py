"""Image classification with a one-word answer (ImageNet in the paper, the shape world here).

Correct means the response equals the answer, case-insensitively, after the verifier rule's
normalisation (`verifier` in the config; both rules apply to the answer as to the response):
- `paper` (the default), the rule as the paper states it: strip whitespace, then one trailing
  period, nothing more (`goose.` is correct, `goose .`, `goose..` and `.goose` are not);
- `authors`, the released code's `strip().strip('.')` (byyx666/DC-SFT: the ExactAccuracy reward
  and `exact` in infer/test_dp.py): whitespace, then every leading and trailing period
  (`goose..` and `.goose` are correct, `goose .` is not), for number-for-number comparison with
  the authors' files.
Under either rule an empty answer is never correct (the authors' code would accept `.` for an
empty label; dcsft's loaders skip empty labels, so no score differs).
"""

from __future__ import annotations

from dcsft.tasks.base import Task

PROMPT = "Please provide the object name in the image. Output the answer using one word."
METRIC = "exact match"  # how a report names what counts as correct


def paper_form(text: str) -> str:
    """The paper's stated rule: whitespace, then one trailing period."""
    return text.strip().removesuffix(".")


def authors_form(text: str) -> str:
    """The authors' code: whitespace, then every leading and trailing period."""
    return text.strip().strip(".")


RULES = {"paper": paper_form, "authors": authors_form}  # by the config's `verifier`


def normalize(text: str, rule: str = "paper") -> str:
    return RULES[rule](text).lower()


def is_correct(response: str, solution: str, rule: str = "paper") -> bool:
    """An empty answer is never correct, even against an empty label that slipped through."""
    answer = normalize(response, rule)
    return bool(answer) and answer == normalize(solution, rule)


def accepted_answers(solution: str, rule: str = "paper") -> list[str]:
    """The answer strings `profile.method=exact` sums the probability of: the answer as given,
    lower-case and capitalised, each with and without the trailing period, kept only where the
    rule accepts them. The rules also accept other capitalisations and surrounding whitespace
    (`authors`: extra periods too); those are not counted, so exact slightly underestimates
    P(correct) by their mass (benchmarks/profile_speed.py measures how many sampled correct
    answers fall outside this set)."""
    base = normalize(solution, rule)
    candidates = [form + end for form in (solution.strip(), base, base.capitalize()) for end in ("", ".")]
    return [answer for answer in dict.fromkeys(candidates) if is_correct(answer, solution, rule)]


def score(response: object, solution: str, rule: str = "paper") -> float:
    """1.0 if correct else 0.0; a response that is not text scores 0 rather than raising."""
    return float(isinstance(response, str) and is_correct(response, solution, rule))


class Classification(Task):
    """The class name in one word, scored by exact match under the study's `verifier` rule."""

    name = "classification"
    metric = METRIC
    rules = ("authors",)
    prompt_presets = {"paper": PROMPT}

    @property
    def rule(self) -> str:
        return self.settings.verifier if self.settings.verifier in RULES else "paper"

    def verify(self, response: str, record: dict) -> float:
        return score(response, record["solution"], self.rule)

    def accepted_answers(self, record: dict) -> list[str]:
        return accepted_answers(record["solution"], self.rule)

    def split_stats(self, records: list[dict]) -> dict:
        """The class names, which the records source checks every later split against."""
        return {"classes": sorted({r["solution"] for r in records})}
