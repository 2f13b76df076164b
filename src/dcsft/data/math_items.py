"""One benchmark row read into a reasoning item: its question, options, answer type and answer,
or why it is left out (dcsft.data.math_benchmarks reads the rows; the reasoning task verifies the
records made of the items).

What is kept, and what is left out (`Unsupported`, counted with its reason, never scored by a
guess): multiple-choice items, and free-form items whose answer is a number. A free-form answer
that is not a number (an expression, a text, a list) needs a judge model: unsupported. An item
with several images is unsupported too (a record carries one image; MMMU's image_2..image_7).
An item whose answer names several options (`AC`) is unsupported. Bad input (`BadItem`, a
counted skip with one line naming the file and the row): an answer that is an option letter
while the question lists no options, an answer outside the options, an empty question, no image,
an image that does not decode. A file without a layout's columns is one DataError naming them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from dcsft.tasks import reasoning

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# An option marker: a letter and `.`, `:`, `)` or a CJK mark, at the start of the text or of a line,
# or after a blank or `;` (WeMath's `A. 1;B. 2`); `(A)` too.
_MARKER = r"(?:^|(?<=[\s;；]))\(?{letter}\s*[.:：．、)]"
_HEADER = re.compile(r"(?:\n|^)\s*(?:choices|options|选项)\s*[:：]?\s*$", re.IGNORECASE)
_LETTER = re.compile(r"^\(?([A-Z])\)?\.?$")
_LETTERS = re.compile(r"^[A-Z](?:\s*[,，、;]?\s*[A-Z])+$")


class BadItem(Exception):
    """A row that is broken: its reason is one line (a counted skip, or the error of
    `data.bad_images: error`)."""


class Unsupported(Exception):
    """A row dcsft cannot score without a judge model, or cannot carry: left out and counted."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"unsupported ({kind}): {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Item:
    """A row as the reasoning task reads it (the record contract of the module's docstring)."""

    question: str
    options: list[str]
    answer: str
    answer_type: str  # choice | numeric
    meta: dict = field(default_factory=dict)  # the layout's own fields


# ---------------------------------------------------------------- parsing the text


def split_options(text: str) -> tuple[str, list[str]]:
    """(the question without its options, the option texts in letter order) of a question that
    lists its options inline: lines `A. ...`, `B. ...` (or `A:`, `(A)`, `A)`), or on one line.
    The options are the last run of markers A, B, C, ... that reaches the end of the text; a
    `Choices:` header before them is dropped. No such run of two or more: (text, [])."""
    text = text.strip()
    starts = list(re.finditer(_MARKER.format(letter="A"), text, re.MULTILINE))
    for first in reversed(starts):
        marks, position = [first], first.end()
        for letter in LETTERS[1:]:
            found = re.compile(_MARKER.format(letter=letter), re.MULTILINE).search(text, position)
            if found is None:
                break
            marks.append(found)
            position = found.end()
        if len(marks) < 2:
            continue
        ends = [m.start() for m in marks[1:]] + [len(text)]
        options = [text[m.end() : end].strip().rstrip(";； ").strip() for m, end in zip(marks, ends)]
        stem = _HEADER.sub("", text[: first.start()].rstrip()).strip()
        return stem, options
    return text, []


def clean(value: object) -> str:
    """A text cell stripped; None is empty."""
    return "" if value is None else str(value).strip()


def answer_text(value: object) -> str:
    """An answer cell as written, without blanks or enclosing `$...$`."""
    text = clean(value)
    if len(text) > 1 and text.startswith("$") and text.endswith("$"):
        text = text.strip("$").strip()
    return text


def is_number(text: str) -> bool:
    """Whether a free-form answer is a number, by the reasoning verifier's own reading of numbers
    (plain, a fraction, LaTeX such as `\\frac{1}{2}` or `2\\sqrt{3}`; dcsft.tasks.reasoning)."""
    return reasoning.number(text) is not None


def classify(question: str, options: list[str], answer: str, meta: dict | None = None) -> Item:
    """The item of a question, its options and its answer: a letter among the options is a
    choice, an option's text becomes its letter, a number without options is numeric; the rest
    is bad input or unsupported (the module's docstring)."""
    if not question:
        raise BadItem("empty question")
    if not answer:
        raise BadItem("empty answer")
    letter = _LETTER.match(answer)
    if letter:
        if not options:
            raise BadItem(f"answer {answer!r} is an option letter, but the question lists no options")
        index = LETTERS.index(letter.group(1))
        if index >= len(options):
            raise BadItem(
                f"answer {answer!r} is outside the {len(options)} options "
                f"{LETTERS[0]}-{LETTERS[len(options) - 1]}"
            )
        return Item(question, options, LETTERS[index], "choice", meta or {})
    if options:
        if answer in options:
            return Item(question, options, LETTERS[options.index(answer)], "choice", meta or {})
        if _LETTERS.match(answer):
            raise Unsupported("several answers", f"answer {answer!r} names several options")
        raise BadItem(f"answer {answer!r} is none of the {len(options)} options")
    if is_number(answer):
        return Item(question, [], answer, "numeric", meta or {})
    raise Unsupported(
        "free-form answer", f"answer {answer!r} is not a number nor an option; scoring it needs a judge"
    )


# ---------------------------------------------------------------- the layouts


def mmk12_item(row: dict) -> Item:
    question, options = split_options(clean(row.get("question")))
    return classify(question, options, answer_text(row.get("answer")), _fields(row, "subject"))


def mathvista_item(row: dict) -> Item:
    meta = _fields(row, "question_type", "unit", "precision")
    if row.get("answer_type"):  # MathVista's own: integer, float, text, list
        meta["value_type"] = row["answer_type"]
    metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    meta.update({k: metadata[k] for k in ("category", "task", "context", "grade") if metadata.get(k)})
    question, answer = clean(row.get("question")), answer_text(row.get("answer"))
    if row.get("question_type") == "multi_choice":
        choices = [clean(c) for c in row.get("choices") or []]
        if not choices:
            raise BadItem("a multi_choice item without choices")
        if answer not in choices:
            raise BadItem(f"answer {answer!r} is none of the {len(choices)} choices")
        return classify(question, choices, LETTERS[choices.index(answer)], meta)
    if row.get("answer_type") not in ("integer", "float"):
        raise Unsupported(
            "free-form answer", f"a free_form {row.get('answer_type')} answer ({answer!r}) needs a judge"
        )
    if not is_number(answer):
        raise BadItem(f"a free_form {row.get('answer_type')} answer {answer!r} is not a number")
    return classify(question, [], answer, meta)


def mathverse_item(row: dict) -> Item:
    meta = _fields(row, "question_type", "problem_version", "problem_index")
    metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    meta.update({k: metadata[k] for k in ("subject", "subfield") if metadata.get(k)})
    question, options = split_options(clean(row.get("question")))
    version = row.get("problem_version") or "?"
    if not question and not options:
        raise Unsupported("question only in the image", f"no question text (problem_version {version})")
    if row.get("question_type") == "multi-choice" and not options:
        raise Unsupported(
            "options only in the image", f"no options in the question's text (problem_version {version})"
        )
    return classify(question, options, answer_text(row.get("answer")), meta)


def mathvision_item(row: dict) -> Item:
    options = [clean(o) for o in row.get("options") or []]
    return classify(
        clean(row.get("question")), options, answer_text(row.get("answer")), _fields(row, "subject", "level")
    )


def wemath_item(row: dict) -> Item:
    stem, options = split_options(clean(row.get("option")))
    if stem:
        raise BadItem(f"option {clean(row.get('option'))[:60]!r} does not start with option A")
    meta = _fields(row, "key", "knowledge concept")
    meta = {k.replace(" ", "_"): v for k, v in meta.items()}
    return classify(clean(row.get("question")), options, answer_text(row.get("answer")), meta)


def mmmu_item(row: dict) -> Item:
    meta = _fields(row, "question_type", "subfield", "topic_difficulty", "img_type")
    raw = row.get("options")
    try:
        options = ast.literal_eval(raw) if isinstance(raw, str) and raw.strip() else list(raw or [])
    except (ValueError, SyntaxError):
        raise BadItem(f"options {clean(raw)[:60]!r} is not a list") from None
    if not isinstance(options, list):
        raise BadItem(f"options {clean(raw)[:60]!r} is not a list")
    options = [clean(o) for o in options]
    if row.get("question_type") == "multiple-choice" and not options:
        raise BadItem("a multiple-choice item without options")
    return classify(clean(row.get("question")), options, answer_text(row.get("answer")), meta)


def _fields(row: dict, *names: str) -> dict:
    return {name: row[name] for name in names if row.get(name) not in (None, "")}
