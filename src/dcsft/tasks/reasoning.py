"""Multimodal reasoning: a math or science question about an image, answered with an option's
letter (multiple choice) or a number (free form), as MMK12, MathVista, MathVerse, MathVision,
WeMath and MMMU ask (the paper's third task family, scored on the answer alone).

Records (the contract every loader writes): `meta.question` (the text without options),
`meta.options` (option texts in letter order A, B, C, ...; [] for a free-form item),
`meta.answer_type` (`choice` or `numeric`), `meta.answer` (the letter, or the number as written:
`12`, `3.5`, `\\frac{1}{2}`, `2\\sqrt{3}`) and `meta.source`. prepare words the problem from
`prompts.reasoning` ({question} and {options}, the options as `A. text` lines).

Where the answer is found (`answer_span`). Text inside `<think>...</think>` is reasoning, never the
answer (a `<think>` left open by a truncated response runs to its end). In the rest, the first of
these rules that matches gives the answer, at its last occurrence:
1. `<answer>...</answer>` (R1's tag); rules 2-4 then apply inside it, else its whole content;
2. `\\boxed{...}` or `\\fbox{...}`, braces matched (nested braces, `\\boxed{\\text{E}}`);
3. "Answer: X", "the answer is X", "Final answer: X": X runs to the end of its line and is cut at
   the end of its sentence;
4. "(X)" for a capital letter X;
5. a bare answer: the whole response when it is one line of at most 100 characters.
No rule matches: no answer (`parse` gives None, evaluate counts it unparsable, the score is 0).
Nothing is guessed (MMMU's reference code picks a random option for an unparsable response; this
verifier never does).

Multiple choice. The answer names an option by its letter (`B`, `(B)`, `B.`, `B) 12 cm`,
`B: 12 cm`; a capital letter followed by words counts only when no other option letter of the
item stands among them and it is not the article in "A triangle"), by quoting the option's text
(case and spacing aside, a trailing period and $...$ aside), or by a number equal to exactly one
option's number (the numeric rule below). Correct: that letter is `meta.answer`.

Free form. The answer and `meta.answer` are read as numbers and compared with a tolerance:
|response - gold| <= max(1e-6, 1e-4 * |gold|) (absolute 1e-6, relative 1e-4, so 3.1416 matches
pi's 3.14159 and 3.14 does not). Plain numbers are read directly: a sign, digits with optional
thousands commas (`1,000`; `1,2` is no number), a decimal part, an exponent (`1e-3`), a fraction
`a/b`, then words after the number are taken as its unit and dropped (`12 cm`, `45 degrees`,
`12 apples`). Anything else (LaTeX: `\\frac{1}{2}`, `\\dfrac`, `3\\frac{1}{2}`, `2\\sqrt{3}`,
`1.5\\times 10^{3}`, `45^\\circ`, `12\\text{ cm}`, `x = 3`, `$...$`) is read with Hugging Face's
math-verify (its LaTeX parser, then sympy), kept only when it is a finite real number built from
numbers, pi and e by +, -, *, / and powers with exponents up to 1000 (so that no answer can make
the verifier hang). Percentages: a number written with `%` (or `\\%`) stands for both itself and
its hundredth, on either side, so `50%` matches `50`, `0.5` and `50%`; a number without `%` stands
for itself only.

The R1 format. The `r1` prompt asks for <think>...</think><answer>...</answer>. What SFT trains on
(`answer`) is then `<answer>B</answer>`: the paper trains SFT on the answer alone, and there is no
gold reasoning to put in a think block (an empty one would teach the model not to think); the tag
puts the answer where the R1 prompt asks for it. Under the `paper` prompt it is the bare answer.
A record asks for the R1 format when its problem names the `<answer>` tag. Whether a response
kept the format is reported beside accuracy (`response_stats`: `format_kept`, the percentage of
R1-worded responses that are exactly one think block then one answer block), never part of the
score: the verifier reads the answer wherever the rules find it.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from collections import Counter
from functools import lru_cache
from importlib import metadata
from string import ascii_uppercase

from dcsft.tasks.base import Task, code_version

PAPER_PROMPT = (
    "{question}\n{options}\n"
    "Answer with the letter of the correct option, or with a number if no options are given."
)
# The R1 format as R1-V and VLM-R1 ask for it, with this task's answer forms.
R1_PROMPT = (
    "{question}\n{options}\n"
    "First think about the problem step by step inside <think></think> tags, then give the final "
    "answer (the letter of the correct option, or a number if no options are given) inside "
    "<answer></answer> tags."
)
METRIC = "answer matches"  # how a report names what counts as correct
ANSWER_TYPES = ("choice", "numeric")
ABSOLUTE_TOLERANCE = 1e-6
RELATIVE_TOLERANCE = 1e-4
MAX_BARE = 100  # the longest one-line response read whole as a bare answer
MAX_LATEX = 200  # the longest answer handed to math-verify
MAX_EXPONENT = 1000  # the largest |exponent| of a power a LaTeX answer may hold

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "answer is X", "Answer: X", "**Answer:** X"; X may stand on the next non-blank line.
_ANSWER_IS = re.compile(r"\banswer\b\**\s*(?:is\b\s*:?|[:：=])\**", re.IGNORECASE)
_REST_OF_LINE = re.compile(r"[ \t]*(?:\n\s*)?([^\n]*)")
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|,\s")
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_R1_FORMAT = re.compile(
    r"\s*<think>(?:(?!</?think>).)*</think>\s*<answer>(?:(?!</?answer>).)*</answer>\s*", re.DOTALL
)
_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"), ('"', '"'), ("'", "'"))
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox)\s*\{([^{}]*)\}")
# A plain number: sign, digits (with thousands commas), decimals, exponent; or a fraction a/b.
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_PLAIN = re.compile(
    rf"(?P<sign>[-+]?)\s*(?P<num>{_DIGITS})(?:[eE](?P<exp>[-+]?\d+))?"
    rf"(?:\s*/\s*(?P<den>{_DIGITS}))?\s*(?P<percent>\\?%)?"
    r"(?P<unit>(?:\s*(?:[^\W\d_]+|°|/|\^\s*[23]|[²³]))*)\s*\.?"
)
_LETTER = re.compile(r"\(?([A-Z])\)?[.:)]?")
_LEAD_LETTER = re.compile(r"\(([A-Z])\)|([A-Z])(?:[.:)]|(?=\s))")


def strip_think(response: str) -> str:
    """The response without its reasoning: every <think> block, and one left open to the end."""
    return _THINK.sub(" ", response)


def boxed_contents(text: str) -> list[str]:
    """The contents of every `\\boxed{...}` / `\\fbox{...}` in `text`, braces matched by counting
    (escaped braces `\\{` `\\}` do not count); an unclosed box is left out."""
    found = []
    for match in _BOXED.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            if text[i] == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found.append(text[match.end() : i - 1])
    return found


def answer_is(text: str) -> str | None:
    """The X of the last "Answer: X" / "the answer is X", cut at the end of its sentence."""
    found = list(_ANSWER_IS.finditer(text))
    if not found:
        return None
    span = _REST_OF_LINE.match(text, found[-1].end()).group(1)
    end = _SENTENCE_END.search(span)
    return span[: end.start()] if end else span


def anchored(text: str) -> str | None:
    """Rules 2-4 (module docstring): the last \\boxed, the last "answer is X", the last (X)."""
    boxes = boxed_contents(text)
    if boxes:
        return boxes[-1]
    said = answer_is(text)
    if said is not None:
        return said
    letters = _PAREN_LETTER.findall(text)
    return letters[-1] if letters else None


def answer_span(response: str) -> str | None:
    """The text of the answer a response gives, by the rules of the module docstring, cleaned
    (`clean`); None when it gives none."""
    text = strip_think(response)
    tags = _ANSWER_TAG.findall(text)
    if tags:
        inner = anchored(tags[-1])
        span = inner if inner is not None else tags[-1]
    else:
        span = anchored(text)
        if span is None:
            bare = text.strip()
            span = bare if bare and "\n" not in bare and len(bare) <= MAX_BARE else None
    if span is None:
        return None
    return clean(span) or None


def clean(span: str) -> str:
    """An answer's text without what surrounds it: $...$, \\(...\\), **...**, quotes and a
    trailing period, with \\text{...} (\\textbf, \\mathrm, ...) unwrapped and spaces collapsed."""
    previous = None
    while span != previous:
        previous = span
        span = span.strip()
        for left, right in _WRAPPERS:
            if len(span) > len(left) + len(right) - 1 and span.startswith(left) and span.endswith(right):
                span = span[len(left) : -len(right)]
                break
        span = " ".join(_TEXT_COMMAND.sub(r"\1", span).split())
        if span.endswith(".") and not span.endswith(".."):
            span = span[:-1]
    return span


def option_text(text: str) -> str:
    """An option's text, or an answer, as the two are compared: cleaned, lower-case, spaces collapsed."""
    return clean(text).lower()


def letter_of(span: str, options: list) -> str | None:
    """The option letter an answer names (module docstring, "Multiple choice"); None if none."""
    bare = _LETTER.fullmatch(span)
    if bare:
        return bare.group(1)
    texts = [option_text(str(o)) for o in options]
    said = option_text(span)
    if said and texts.count(said) == 1:
        return ascii_uppercase[texts.index(said)]
    lead = _LEAD_LETTER.match(span)
    if lead:
        letter, rest = lead.group(1) or lead.group(2), span[lead.end() :]
        others = set(re.findall(r"\b([A-Z])\b", rest)) & set(ascii_uppercase[: len(options)]) - {letter}
        article = letter == "A" and lead.group(2) and re.match(r"\s+[a-z]", rest)
        if not others and not article:
            return letter
    value = number(span)
    if value is not None:
        matches = [i for i, o in enumerate(options) if numbers_match(value, number(str(o)))]
        if len(matches) == 1:
            return ascii_uppercase[matches[0]]
    return None


@lru_cache(maxsize=65536)
def number(text: str) -> tuple[float, ...] | None:
    """The values a numeric answer stands for (two for a percentage: itself and its hundredth);
    None when it is no finite real number (module docstring, "Free form")."""
    span = clean(text).replace("−", "-").replace("\\!", "").replace("{,}", ",").replace("π", "\\pi ")
    span = re.sub(r"\bpi\b", r"\\pi", re.sub(r"√\s*([\d.]+)", r"\\sqrt{\1}", span))
    span = re.sub(r"(?<=\d)\\[,;: ](?=\d)", "", span)  # LaTeX thin spaces between digits: 1\,000
    plain = _PLAIN.fullmatch(span)
    if plain:
        return plain_number(plain)
    if not span or len(span) > MAX_LATEX:
        return None
    value = latex_number(span.replace("\\%", "%").rstrip("%"))
    if value is None:
        return None
    return (value, value / 100) if span.endswith("%") else (value,)


def plain_number(match: re.Match) -> tuple[float, ...] | None:
    try:
        value = float(match["num"].replace(",", "") + (f"e{match['exp']}" if match["exp"] else ""))
        if match["den"]:
            value /= float(match["den"].replace(",", ""))
    except (OverflowError, ZeroDivisionError, ValueError):
        return None
    value = -value if match["sign"] == "-" else value
    if not math.isfinite(value):
        return None
    return (value, value / 100) if match["percent"] else (value,)


def latex_number(span: str) -> float | None:
    """A LaTeX answer's value through math-verify, or None (module docstring, "Free form")."""
    import sympy
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    # math-verify's own time limit is signal.alarm, which only works on the main thread; the
    # length cap and `safe` keep parsing and evaluation short instead.
    parsed = parse(f"${span}$", [LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=None)
    if not parsed or not isinstance(parsed[0], sympy.Basic):
        return None
    expr = parsed[0]
    if isinstance(expr, sympy.Eq):  # x = 3
        expr = expr.rhs
    try:
        if not safe(expr, sympy):
            return None
        value = complex(sympy.N(expr, 30))
    except Exception:  # noqa: BLE001 - sympy fails in many ways on odd input; that is no number
        return None
    if value.imag or not math.isfinite(value.real):
        return None
    return value.real


def safe(expr, sympy) -> bool:
    """Whether `expr` is a number that evaluates quickly: numbers, pi and e under +, * and powers
    whose exponent is at most MAX_EXPONENT in size (a factorial or a power tower can take forever)."""
    if isinstance(expr, (sympy.Number, sympy.NumberSymbol)):
        return not isinstance(expr, (sympy.core.numbers.Infinity, sympy.core.numbers.NegativeInfinity))
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        return all(safe(arg, sympy) for arg in expr.args)
    if isinstance(expr, sympy.Pow):
        base, exponent = expr.args
        if not (safe(base, sympy) and safe(exponent, sympy)):
            return False
        return abs(complex(sympy.N(exponent, 15))) <= MAX_EXPONENT
    return False


def numbers_match(response: tuple[float, ...] | None, gold: tuple[float, ...] | None) -> bool:
    """Whether any value the response stands for is within tolerance of any value of the gold."""
    if not response or not gold:
        return False
    return any(
        abs(r - g) <= max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * abs(g)) for r in response for g in gold
    )


def asks_r1(record: dict) -> bool:
    """Whether the record's problem asks for the R1 format (it names the <answer> tag)."""
    return "<answer>" in str(record.get("problem") or "")


def kept_r1_format(response: str) -> bool:
    """One <think> block, then one <answer> block, nothing else but whitespace."""
    return isinstance(response, str) and _R1_FORMAT.fullmatch(response) is not None


def meta_of(record: dict) -> dict:
    meta = record.get("meta")
    return meta if isinstance(meta, dict) else {}


def answer_type(meta: dict) -> str:
    """meta.answer_type, else choice for an item with options and numeric for one without."""
    return meta.get("answer_type") or ("choice" if meta.get("options") else "numeric")


def gold(record: dict) -> str:
    """The gold answer: meta.answer, else the answer the solution gives."""
    meta = meta_of(record)
    if meta.get("answer") is not None:
        return str(meta["answer"]).strip()
    return answer_span(str(record["solution"])) or ""


def record_problem(record: dict) -> str | None:
    meta = meta_of(record)
    if meta.get("answer") is None:
        return "meta.answer is missing"
    kind, answer, options = answer_type(meta), str(meta["answer"]).strip(), meta.get("options") or []
    if kind not in ANSWER_TYPES:
        return f"meta.answer_type {kind!r} is neither choice nor numeric"
    if not isinstance(options, list):
        return f"meta.options {options!r} is not a list"
    letter = re.fullmatch(r"[A-Z]", answer) is not None
    if kind == "numeric":
        if letter and not options:
            return f"answer {answer!r} is an option letter but the item has no options"
        return None if number(answer) is not None else f"numeric answer {answer!r} is not a number"
    if not options:
        return f"choice answer {answer!r}: the item has no options"
    if not letter:
        return f"choice answer {answer!r} is not an option letter"
    letters = ascii_uppercase[: len(options)]
    if len(options) > len(ascii_uppercase) or answer not in letters:
        return f"answer letter {answer} is outside the {len(options)} options ({letters[0]}-{letters[-1]})"
    return None


class Reasoning(Task):
    """A multiple-choice or free-form math question about an image, correct when the answer the
    response gives (module docstring) is the gold option's letter or the gold number."""

    name = "reasoning"
    metric = METRIC
    prompt_presets = {"paper": PAPER_PROMPT, "r1": R1_PROMPT}
    placeholders = frozenset({"question", "options"})

    @property
    def version(self) -> str:
        """The verifier's version: this module's code and the math-verify release it reads LaTeX with."""

        return f"{code_version(sys.modules[__name__])}+math-verify-{metadata.version('math-verify')}"

    def verify(self, response: str, record: dict) -> float:
        span = answer_span(response)
        if span is None:
            return 0.0
        meta, truth = meta_of(record), gold(record)
        if answer_type(meta) == "choice":
            return float(letter_of(span, meta.get("options") or []) == truth)
        return float(numbers_match(number(span), number(truth)))

    def parse(self, response: str) -> str | None:
        """The answer's text (`answer_span`): `B`, `\\frac{1}{2}`, ...; None when there is none."""
        return answer_span(response)

    def answer(self, record: dict) -> str:
        """What SFT trains on: the gold answer, in <answer></answer> under the R1 prompt."""
        truth = gold(record)
        return f"<answer>{truth}</answer>" if asks_r1(record) else truth

    def accepted_answers(self, record: dict) -> list[str]:
        """Whole responses that score 1: the letter as `B`, `B.`, `(B)`, `(B).`, `B)` and the
        option's text (choice), or the number as written (free form), each also inside
        <answer></answer> under the R1 prompt. Longer correct responses are not listed, so
        `profile.method: exact` underestimates the pass rate by their mass."""
        meta, truth = meta_of(record), gold(record)
        if answer_type(meta) == "choice":
            options = meta.get("options") or []
            index = ascii_uppercase.find(truth) if len(truth) == 1 else -1
            text = [str(options[index]).strip()] if 0 <= index < len(options) else []
            forms = [truth, f"{truth}.", f"({truth})", f"({truth}).", f"{truth})", *text]
        else:
            forms = [truth]
        if asks_r1(record):
            forms += [f"<answer>{form}</answer>" for form in forms]
        return [form for form in dict.fromkeys(forms) if self.verify(form, record) == 1.0]

    def record_problem(self, record: dict) -> str | None:
        """Why a record cannot be scored: no answer, a choice answer that is not one of its
        options' letters, a numeric answer that is no number."""
        return record_problem(record)

    def template_fields(self, meta: dict) -> dict[str, str]:
        """{question} as it is, {options} as `A. text` lines (empty for a free-form item)."""
        options = meta.get("options") or []
        lines = [f"{letter}. {text}" for letter, text in zip(ascii_uppercase, options)]
        return {"question": str(meta.get("question", "")), "options": "\n".join(lines)}

    def split_stats(self, records: list[dict]) -> dict:
        """How many items of each answer type and source (prepare's stats.json)."""
        if not records:
            return {}
        metas = [meta_of(r) for r in records]
        return {
            "answer_types": dict(sorted(Counter(answer_type(m) for m in metas).items())),
            "sources": dict(sorted(Counter(str(m.get("source", "")) for m in metas).items())),
        }

    def response_stats(self, responses: list, records: list[dict]) -> dict:
        """`format_kept`: the percentage of R1-worded records' responses in the R1 format (one
        think block, then one answer block); nothing for a split without such records."""
        asked = [response for response, record in zip(responses, records) if asks_r1(record)]
        if not asked:
            return {}
        return {"format_kept": round(100 * sum(map(kept_r1_format, asked)) / len(asked), 2)}


# math-verify warns once that its signal-based time limit is off; `safe` stands in for it.
logging.getLogger("math_verify.parser").addFilter(
    lambda entry: "Timeout is disabled" not in entry.getMessage()
)
