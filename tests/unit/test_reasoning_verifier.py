"""The reasoning verifier (dcsft.tasks.reasoning): one table of responses in the shapes real
models write (R1 traces, \\boxed with nested braces, "The answer is (C).", option text, several
answers, fractions, LaTeX numbers, commas, units, unparsable ones), each with its parse and
score; hypothesis properties (a score in [0, 1], never an exception, the gold answer in every
wrapper scoring 1); the record checks, accepted answers, the R1 answer text, the format-kept
rate evaluate reports, and prepare's wording of a reasoning config."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dcsft.config import StudyConfig
from dcsft.conventions import template_problem, wording
from dcsft.evaluate import task_stats
from dcsft.tasks import get_task, profile_methods, verifier_version
from dcsft.tasks.base import PrepareContext, score
from dcsft.tasks.reasoning import PAPER_PROMPT, R1_PROMPT, Reasoning, boxed_contents, number

OPTIONS = ["3 cm", "12 cm", "\\frac{1}{2}", "a right triangle", "7"]


def choice(answer="B", options=OPTIONS, problem="paper") -> dict:
    return {
        "id": "c",
        "problem": problem,
        "solution": answer,
        "meta": {
            "question": "What is the length of AB?",
            "options": options,
            "answer_type": "choice",
            "answer": answer,
            "source": "test",
        },
    }


def numeric(answer="\\frac{1}{2}", problem="paper") -> dict:
    return {
        "id": "n",
        "problem": problem,
        "solution": answer,
        "meta": {
            "question": "x?",
            "options": [],
            "answer_type": "numeric",
            "answer": answer,
            "source": "test",
        },
    }


CHOICE = choice()  # gold B ("12 cm")
HALF = numeric()  # gold 1/2
THOUSAND = numeric("1000")
PERCENT = numeric("25")
PI = numeric("\\pi")
ROOT = numeric("2\\sqrt{3}")
C_GOLD = choice("C", ["1", "2", "3", "4"])

# (response, record, what parse gives, score)
CASES = [
    # bare answers, as the plain prompt asks for them
    ("B", CHOICE, "B", 1.0),
    ("B.", CHOICE, "B", 1.0),
    ("(B)", CHOICE, "B", 1.0),
    ("**B**", CHOICE, "B", 1.0),
    ("  B\n", CHOICE, "B", 1.0),
    ("C", CHOICE, "C", 0.0),
    ("B) 12 cm", CHOICE, "B) 12 cm", 1.0),
    ("B. 12 cm", CHOICE, "B. 12 cm", 1.0),
    # R1 traces: the answer tag wins, reasoning is never read
    ("<think>It could be (A)... no, 12 cm.</think><answer>B</answer>", CHOICE, "B", 1.0),
    ("<think>\nAB = 12\n</think>\n<answer>\n(B)\n</answer>", CHOICE, "B", 1.0),
    ("<think>the answer is B</think><answer>A</answer>", CHOICE, "A", 0.0),
    ("<think>AB is 12 so (B)</think>", CHOICE, None, 0.0),
    ("<think>AB is 12 so the answer is (B) but wait", CHOICE, None, 0.0),  # truncated
    ("<think>hm</think><answer>\\boxed{B}</answer>", CHOICE, "B", 1.0),
    ("<think>hm</think><answer>The answer is (B).</answer>", CHOICE, "(B)", 1.0),
    ("<think>x</think><answer>12 cm</answer>", CHOICE, "12 cm", 1.0),
    ("<think>x</think><answer>A</answer> then <answer>B</answer>", CHOICE, "B", 1.0),
    ("<answer></answer>", CHOICE, None, 0.0),
    # \boxed, nested braces, \text
    ("So the answer is \\boxed{B}.", CHOICE, "B", 1.0),
    ("\\boxed{\\text{B}}", CHOICE, "B", 1.0),
    ("\\boxed{\\text{(B) } 12}", CHOICE, "(B) 12", 1.0),
    ("First \\boxed{A}, on reflection \\boxed{B}", CHOICE, "B", 1.0),
    ("\\boxed{B} ... the answer is (A)", CHOICE, "B", 1.0),  # \boxed outranks "answer is"
    ("Thus $\\boxed{\\frac{1}{2}}$.", HALF, "\\frac{1}{2}", 1.0),
    ("\\boxed{\\dfrac{\\sqrt{4}}{4}}", HALF, "\\dfrac{\\sqrt{4}}{4}", 1.0),
    ("\\boxed{\\frac{1}{2}", HALF, "\\boxed{\\frac{1}{2}", 0.0),  # unclosed: no box, read whole
    # "the answer is", "Answer:", (X)
    ("The answer is (C).", C_GOLD, "(C)", 1.0),
    ("The correct answer is C because 3 > 2.", C_GOLD, "C because 3 > 2", 1.0),
    ("**Answer:** C", C_GOLD, "C", 1.0),
    ("Answer:\n\nC", C_GOLD, "C", 1.0),
    ("The answer is B. Checking again, the answer is C.", C_GOLD, "C", 1.0),
    ("The answer is B or C.", C_GOLD, "B or C", 0.0),  # two options: no answer
    ("I think the answer is not A.", C_GOLD, "not A", 0.0),
    ("Looking at the figure, (A) is too short and (C) fits.", C_GOLD, "C", 1.0),
    ("The answer is 3.", C_GOLD, "3", 1.0),  # the number of exactly one option
    # option text quoted
    ("a right triangle", choice("D"), "a right triangle", 1.0),
    ("The answer is A right triangle.", choice("D"), "A right triangle", 1.0),
    ("The answer is: 12 cm", CHOICE, "12 cm", 1.0),
    ("\\boxed{\\frac{1}{2}}", choice("C"), "\\frac{1}{2}", 1.0),
    ("0.5", choice("C"), "0.5", 1.0),  # equal to option C's value
    # free-form numbers: fractions, LaTeX, commas, units, percentages, tolerance
    ("0.5", HALF, "0.5", 1.0),
    ("1/2", HALF, "1/2", 1.0),
    ("$\\frac{1}{2}$", HALF, "\\frac{1}{2}", 1.0),
    ("The answer is 0.50001.", HALF, "0.50001", 1.0),  # within relative 1e-4
    ("The answer is 0.5001.", HALF, "0.5001", 0.0),  # outside it
    ("x = \\frac{1}{2}", HALF, "x = \\frac{1}{2}", 1.0),
    ("The answer is 1,000 apples.", THOUSAND, "1,000 apples", 1.0),
    ("\\boxed{1{,}000}", THOUSAND, "1{,}000", 1.0),
    ("\\boxed{1\\,000}", THOUSAND, "1\\,000", 1.0),
    ("\\boxed{10^{3}}", THOUSAND, "10^{3}", 1.0),
    ("1e3", THOUSAND, "1e3", 1.0),
    ("The answer is 1000.0 m", THOUSAND, "1000.0 m", 1.0),
    ("\\boxed{1000\\text{ cm}}", THOUSAND, "1000 cm", 1.0),
    ("25%", PERCENT, "25%", 1.0),
    ("\\boxed{25\\%}", PERCENT, "25\\%", 1.0),
    ("0.25", PERCENT, "0.25", 0.0),  # no % on either side: 0.25 is not 25
    ("0.25", numeric("25%"), "0.25", 1.0),
    ("Answer: 3.1416", PI, "3.1416", 1.0),
    ("Answer: 3.14", PI, "3.14", 0.0),
    ("\\boxed{\\pi}", PI, "\\pi", 1.0),
    ("Answer: 3.4641", ROOT, "3.4641", 1.0),
    ("\\boxed{\\sqrt{12}}", ROOT, "\\sqrt{12}", 1.0),
    ("\\boxed{-\\frac{1}{2}}", HALF, "-\\frac{1}{2}", 0.0),
    ("The answer is 0.5 or 1.", HALF, "0.5 or 1", 0.0),
    ("The answer is three.", numeric("3"), "three", 0.0),
    ("45^\\circ", numeric("45"), "45^\\circ", 1.0),
    ("\\boxed{(10^{10^{10}})!}", numeric("3"), "(10^{10^{10}})!", 0.0),  # too large to evaluate: no number
    # unparsable
    ("", CHOICE, None, 0.0),
    ("   ", HALF, None, 0.0),
    ("Let me think about this.\nThe triangle has sides 3 and 4.\nIts area is 6.", numeric("6"), None, 0.0),
    ("x" * 150, CHOICE, None, 0.0),
]


@pytest.mark.parametrize("response, record, parsed, expected", CASES, ids=[str(i) for i in range(len(CASES))])
def test_each_response_parses_and_scores_as_written(response, record, parsed, expected):
    task = get_task("reasoning")
    assert task.parse(response) == parsed
    assert task.verify(response, record) == expected
    assert score(task, response, record) == (expected, False)


def test_the_table_is_large_enough():
    assert len(CASES) >= 40


def test_boxed_contents_match_braces():
    assert boxed_contents("\\boxed{a{b{c}}d} x \\boxed {e} \\boxed{\\{f\\}} \\boxed{open") == [
        "a{b{c}}d",
        "e",
        "\\{f\\}",
    ]


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_text_scores_in_range_and_never_raises(text):
    task = get_task("reasoning")
    for record in (CHOICE, HALF, choice(problem=R1_PROMPT)):
        value = task.verify(text, record)
        assert value in (0.0, 1.0)
        assert score(task, text, record) == (value, False)
        assert task.parse(text) is None or isinstance(task.parse(text), str)
        if task.parse(text) is None:
            assert value == 0.0


WRAPPERS = [
    "{}",
    "{}.",
    "The answer is {}.",
    "Answer: {}",
    "**Answer:** {}",
    "Final answer: {}",
    "$\\boxed{{{}}}$",
    "Therefore, \\boxed{{{}}}.",
    "<answer>{}</answer>",
    "<think>\nLet me look at the figure.\n</think>\n<answer>{}</answer>",
    "<think>reasoning</think><answer>\\boxed{{{}}}</answer>",
]
GOLD_CHOICE = st.builds(
    lambda n, i: choice("ABCDEFGH"[i % n], [f"option {k}" for k in range(n)]),
    st.integers(2, 8),
    st.integers(0, 7),
)
GOLD_NUMBER = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.decimals(-1000, 1000, places=3, allow_nan=False, allow_infinity=False).map(str),
    st.tuples(st.integers(1, 99), st.integers(1, 99)).map(lambda f: f"\\frac{{{f[0]}}}{{{f[1]}}}"),
)


@given(GOLD_CHOICE, st.sampled_from(WRAPPERS), st.sampled_from(["{}", "({})"]))
@settings(max_examples=200, deadline=None)
def test_the_gold_letter_in_every_wrapper_scores_one(record, wrapper, letter):
    response = wrapper.format(letter.format(record["meta"]["answer"]))
    assert get_task("reasoning").verify(response, record) == 1.0


@given(GOLD_NUMBER, st.sampled_from(WRAPPERS))
@settings(max_examples=200, deadline=None)
def test_the_gold_number_in_every_wrapper_scores_one(answer, wrapper):
    record = numeric(answer)
    assert get_task("reasoning").record_problem(record) is None
    assert get_task("reasoning").verify(wrapper.format(answer), record) == 1.0


def test_numbers_read_plainly_or_through_math_verify():
    assert number("1,000") == (1000.0,) and number("1,2") is None
    assert number("50%") == (50.0, 0.5) and number("12 cm") == (12.0,)
    assert number("3\\frac{1}{2}") == (3.5,) and number("1.5\\times 10^{3}") == (1500.0,)
    assert number("2^{2^{100}}") is None and number("\\frac{1}{0}") is None and number("1e400") is None
    assert number("abc") is None and number("") is None and number("\\sqrt{-1}") is None


@pytest.mark.parametrize(
    "record, why",
    [
        (choice(options=[]), "the item has no options"),
        (
            {**numeric("B"), "meta": {"options": [], "answer": "B"}},
            "an option letter but the item has no options",
        ),
        (choice("F"), "answer letter F is outside the 5 options (A-E)"),
        (choice("12"), "is not an option letter"),
        (numeric("about twelve"), "numeric answer 'about twelve' is not a number"),
        (numeric("(10^{10^{10}})!"), "is not a number"),
        ({"id": "x", "problem": "", "solution": "", "meta": {}}, "meta.answer is missing"),
        ({**CHOICE, "meta": {**CHOICE["meta"], "answer_type": "proof"}}, "neither choice nor numeric"),
    ],
)
def test_unusable_records_have_one_reason(record, why):
    assert why in get_task("reasoning").record_problem(record)


def test_usable_records_have_no_problem():
    task = get_task("reasoning")
    for record in (CHOICE, HALF, THOUSAND, PERCENT, PI, ROOT, numeric("25%"), numeric("-3.5")):
        assert task.record_problem(record) is None


def test_accepted_answers_each_score_one_so_exact_profiling_works():
    task = get_task("reasoning")
    assert "exact" in profile_methods(task)
    assert task.accepted_answers(CHOICE) == ["B", "B.", "(B)", "(B).", "B)", "12 cm"]
    assert task.accepted_answers(HALF) == ["\\frac{1}{2}"]
    r1 = choice(problem=R1_PROMPT)
    assert "<answer>B</answer>" in task.accepted_answers(r1)
    for record in (CHOICE, HALF, r1, numeric("12", R1_PROMPT), choice("D")):
        accepted = task.accepted_answers(record)
        assert accepted and all(task.verify(a, record) == 1.0 for a in accepted)


def test_sft_trains_on_the_answer_in_the_form_the_prompt_asks_for():
    task = get_task("reasoning")
    assert task.answer(CHOICE) == "B" and task.answer(HALF) == "\\frac{1}{2}"
    assert task.answer(choice(problem=R1_PROMPT)) == "<answer>B</answer>"
    assert task.verify(task.answer(choice(problem=R1_PROMPT)), choice(problem=R1_PROMPT)) == 1.0


def test_format_kept_is_reported_beside_accuracy_not_in_the_score():
    task = get_task("reasoning")
    records = [choice(problem=R1_PROMPT) | {"id": str(i)} for i in range(4)]
    responses = [
        "<think>\nAB = 12\n</think>\n<answer>B</answer>",  # kept, correct
        "<think>x</think><answer>A</answer>",  # kept, wrong
        "The answer is B.",  # not kept, correct
        "<think>x</think>\n<answer>B</answer> and more",  # not kept
    ]
    assert [task.verify(r, rec) for r, rec in zip(responses, records)] == [1.0, 0.0, 1.0, 1.0]
    assert task.response_stats(responses, records) == {"format_kept": 50.0}
    assert task.response_stats(responses, [CHOICE] * 4) == {}  # the plain prompt asks for no format
    rows = [{"id": rec["id"], "response": r} for r, rec in zip(responses, records)]
    assert task_stats(task, rows, records) == {"unparsable": 0, "verifier_failures": 0, "format_kept": 50.0}
    assert "format_kept" not in task_stats(get_task("classification"), rows, records)


def test_the_task_resolves_and_its_version_names_math_verify():
    task = get_task("reasoning")
    assert isinstance(task, Reasoning) and task.name == "reasoning" and task.metric == "answer matches"
    assert "+math-verify-" in verifier_version("reasoning")


def test_split_stats_count_answer_types_and_sources():
    stats = get_task("reasoning").split_stats([CHOICE, HALF, THOUSAND])
    assert stats == {"answer_types": {"choice": 1, "numeric": 2}, "sources": {"test": 3}}
    assert get_task("reasoning").split_stats([]) == {}


@pytest.mark.parametrize("preset, template", [("paper", PAPER_PROMPT), ("r1", R1_PROMPT)])
def test_prepare_words_the_question_and_its_lettered_options(preset, template):
    cfg = StudyConfig(task="reasoning", prompts={"reasoning": preset}).for_task("reasoning")
    words = wording(cfg)
    assert words.template == template
    context = PrepareContext(words, cfg.model.min_pixels, cfg.model.max_pixels)
    task = get_task("reasoning")
    raw = {**choice(), "problem": "their own wording"}
    record, problem = task.prepare_record(words.reworded(raw), context)
    assert problem is None
    assert record["problem"].startswith("What is the length of AB?\nA. 3 cm\nB. 12 cm\nC. \\frac{1}{2}\n")
    assert ("<answer>" in record["problem"]) == (preset == "r1")
    assert task.answer(record) == ("<answer>B</answer>" if preset == "r1" else "B")
    free = words.reworded({**numeric(), "problem": "own"})
    assert free["problem"].startswith("x?\n\n")  # no option lines for a free-form item
    skipped, why = task.prepare_record(words.reworded(choice("F")), context)
    assert skipped is None and "outside the 5 options" in why


def test_a_reasoning_template_must_hold_question_and_options():
    assert template_problem("reasoning", "{question}\n{options}\nAnswer.") is None
    bad = template_problem("reasoning", "{question} only")
    assert "must hold {options}, {question}" in bad and "paper, r1" in bad
    with pytest.raises(ValidationError, match="prompts.reasoning"):
        StudyConfig(task="reasoning", prompts={"reasoning": "{question}"})
