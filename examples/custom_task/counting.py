"""Counting shapes: a user task for dcsft, written outside the package.

The model sees an image with a few shapes and answers how many there are. The verifier gives
partial credit, so a near miss on a large count scores more than a wild guess; a response counts
as correct (profile's `correct`, evaluate's accuracy) only when the count is exact.

Use it by import path, with this folder on the Python path (see README.md beside this file):

    PYTHONPATH=examples/custom_task dcsft study examples/custom_task/study.yaml

which names the task as `task: counting:Counting`. The records come from make_records.py.
"""

from __future__ import annotations

import re
from collections import Counter

from dcsft.tasks.base import Task

PROMPT = "How many shapes are in the image? Answer with a number."

# Number words up to twenty: enough for any count this task draws, and what a model that answers
# in words would write for them.
NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
WORD_VALUES = {word: value for value, word in enumerate(NUMBER_WORDS)}

# A number written in digits (an optional decimal part, so that "3.5" is not read as 3) or as a
# whole word (so that "someone" is not read as one). A trailing period is not a decimal part:
# "3." is 3. Signs are not read: a count is never negative, and "-2" is read as 2.
NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?|\b(?:" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)


def parse_count(text: str) -> int | float | None:
    """The first number in `text`, as an int when it is whole, else a float; None if it has none.

    Args:
        text (`str`):
            A model's response, or a record's solution.

    Returns:
        `int`, `float` or `None`: e.g. `"There are 3 shapes."` -> 3, `"Four."` -> 4, `"2.5"` -> 2.5,
        `"1 or 2"` -> 1 (the first number is the answer), `"many"` -> None.
    """
    found = NUMBER.search(text)
    if found is None:
        return None
    token = found.group(0).lower()
    if token in WORD_VALUES:
        return WORD_VALUES[token]
    # float, not int, for digits too: int() refuses strings of over 4,300 digits, and a response
    # may hold one; so long a number is a float (inf), which scores 0 like any wild guess.
    value = float(token)
    return int(value) if value.is_integer() else value


def credit(predicted: int | float | None, truth: int) -> float:
    """The partial-credit score of a predicted count.

    Args:
        predicted (`int`, `float` or `None`):
            The count the response gives (`parse_count`), None when it gives none.
        truth (`int`):
            The true count.

    Returns:
        `float` in [0, 1]: 1.0 for the exact count, else `max(0, 1 - |predicted - truth| / truth)`:
        off by one on 4 shapes scores 0.75, off by one on 1 shape scores 0, and a count at least
        twice the truth scores 0. No number scores 0. A true count of 0 has no scale to be near
        to, so there only the exact answer scores (1.0, else 0.0).
    """
    if predicted is None:
        return 0.0
    if predicted == truth:
        return 1.0
    if truth <= 0:
        return 0.0
    return max(0.0, 1.0 - abs(predicted - truth) / truth)


class Counting(Task):
    """How many shapes an image holds, answered as a number and scored with partial credit.

    A record's `solution` is the count in digits (`"3"`); `meta.count` holds it too, but the
    verifier reads the solution, so that the task also works as a plain TRL reward on a dataset
    with a `solution` column (`Task.reward`).

    Class attributes:
        name (`str`):
            How reports and logs name the task.
        metric (`str`):
            How a report names what counts as correct: the exact count. The partial credit is the
            score in profile rows' `scores` and the GRPO reward; `correct` is `score >= pass_score`.
        pass_score (`float`, inherited, 1.0):
            Only the exact count is correct; a near miss (0.75) is not.
        prompt_presets (`dict[str, str]`):
            The prompt, as the task's `paper` preset: the report states it, and records that ask it
            are recognised as worded by dcsft (make_records.py writes it as every record's problem).
    """

    name = "counting"
    metric = "exact count"
    prompt_presets = {"paper": PROMPT}

    def verify(self, response: str, record: dict) -> float:
        """The response's score.

        Args:
            response (`str`):
                The model's answer text.
            record (`dict`):
                The record asked, `{id, image, problem, solution, meta}`; only `solution` is read.

        Returns:
            `float` in [0, 1]: `credit(parse(response), true count)`; a response without a number
            scores 0.
        """
        return credit(self.parse(response), self.truth(record))

    def parse(self, response: str) -> int | float | None:
        """The count a response gives: its first number, in digits or as a word (`parse_count`);
        None when it gives none, which evaluate counts as unparsable."""
        return parse_count(response)

    def truth(self, record: dict) -> int:
        """The record's true count, from its solution (written in digits by make_records.py)."""
        count = parse_count(record["solution"])
        if not isinstance(count, int):
            raise ValueError(f"record {record.get('id')!r}: solution {record['solution']!r} is not a count")
        return count

    def accepted_answers(self, record: dict) -> list[str]:
        """The exact-count answers `profile.method: exact` sums the probability of.

        Args:
            record (`dict`):
                The record asked.

        Returns:
            `list[str]`: the count in digits and as a word (lower-case and capitalised), each with
            and without a trailing period: `["3", "3.", "three", "three.", "Three", "Three."]`.
            Each scores 1.0. Longer correct answers ("There are 3 shapes.") also score 1.0 but are
            not listed, so `exact` slightly underestimates the pass rate of a model that writes
            them; SFT here trains the bare digit, the answer the model gives.
        """
        count = self.truth(record)
        forms = [str(count)]
        if count < len(NUMBER_WORDS):
            forms += [NUMBER_WORDS[count], NUMBER_WORDS[count].capitalize()]
        return [form + end for form in forms for end in ("", ".")]

    def record_problem(self, record: dict) -> str | None:
        """Why a record is unusable: a solution that is not a whole count (None: usable). `dcsft
        plan` counts such records, and stages that read prepared records skip them."""
        count = parse_count(record["solution"])
        return None if isinstance(count, int) else f"solution {record['solution']!r} is not a whole count"

    def prepare_record(self, record: dict, context) -> tuple[dict | None, str | None]:
        """The record as it is, or (None, why) for an unusable one, so that prepare skips it with
        its reason (01_prepare/skipped.jsonl) instead of `split_stats` failing on it; prepare
        calls this hook, not `record_problem`, on every loaded record."""
        problem = self.record_problem(record)
        return (None, problem) if problem else (record, None)

    def split_stats(self, records: list[dict]) -> dict:
        """How many prepared records hold each count (prepare's stats.json), to see the mix at a
        glance; `{}` for no records (the records source calls it so to ask which keys it gives)."""
        if not records:
            return {}
        counts = Counter(self.truth(r) for r in records)
        return {"counts": {str(n): counts[n] for n in sorted(counts)}}
