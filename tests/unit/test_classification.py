"""The classification verifier's two rules (`verifier: paper`, the default, and `verifier:
authors`), each one table, the TRL-style reward built on them, and the rule reaching every
scorer: profiling, evaluation, the GRPO reward and their fingerprints."""

from types import SimpleNamespace

import pytest

from dcsft import evaluate, profiling
from dcsft.config import StudyConfig
from dcsft.rundir import RunDir, read_json, write_json
from dcsft.tasks import classification, code_version, get_task, verifier_version
from dcsft.tasks.classification import PROMPT, Classification, accepted_answers, is_correct, normalize, score

# Each response to the label "goose", and its verdict under the paper's stated rule (strip
# whitespace, then one trailing period, case-insensitively) and under the authors' released code
# (strip().strip('.'), then lower-case; byyx666/DC-SFT).
VERDICTS = [  # (response, paper, authors)
    ("goose", True, True),
    ("Goose", True, True),
    ("GOOSE", True, True),
    (" goose ", True, True),
    ("\tgoose.\n", True, True),
    ("goose.", True, True),
    ("Goose. ", True, True),
    ("goose .", False, False),  # whitespace is stripped once, before the period(s)
    ("goose..", False, True),  # paper: one trailing period only; authors: every one
    (".goose", False, True),  # a leading period stays (paper) or goes (authors)
    ("..goose...", False, True),
    (". goose", False, False),
    ("goose!", False, False),
    ("", False, False),
    (".", False, False),
    ("geese", False, False),
    ("a goose", False, False),
    ("The answer is goose.", False, False),
]
RULES = ("paper", "authors")


def test_prompt_is_the_papers():
    assert PROMPT == "Please provide the object name in the image. Output the answer using one word."


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_by_its_table(rule):
    for response, *verdicts in VERDICTS:
        verdict = verdicts[RULES.index(rule)]
        assert is_correct(response, "goose", rule) is verdict, (rule, response)
        assert score(response, "goose", rule) == float(verdict), (rule, response)
        assert get_task("classification", rule).verify(response, {"solution": "goose"}) == verdict


def test_paper_is_the_default_rule():
    assert [is_correct(response, "goose") for response, _, _ in VERDICTS] == [
        paper for _, paper, _ in VERDICTS
    ]
    assert StudyConfig().verifier == "paper"
    assert isinstance(get_task("classification"), Classification)
    assert get_task("classification").rule == "paper"


@pytest.mark.parametrize("rule", ["paper", "authors"])
def test_solution_is_normalized_too(rule):
    assert score("goose", "Goose.", rule) == 1.0
    assert score("GOOSE.", " goose ", rule) == 1.0


def test_normalize():
    assert normalize(" Goose. ") == "goose"
    assert normalize("goose..") == "goose."
    assert normalize(".goose.") == ".goose"
    assert normalize("..goose.. ", "authors") == "goose"
    assert normalize("") == "" and normalize(".") == "" and normalize("...", "authors") == ""


@pytest.mark.parametrize("rule", ["paper", "authors"])
def test_exact_counts_only_answers_the_rule_accepts(rule):
    assert accepted_answers("goose", rule) == ["goose", "goose.", "Goose", "Goose."]
    # a label written with its period: no "goose.." (the paper's rule rejects it), no duplicates
    answers = accepted_answers("Goose.", rule)
    assert len(answers) == len(set(answers)) and all(is_correct(a, "Goose.", rule) for a in answers)


@pytest.mark.parametrize("response", [None, 3, 3.0, ["goose"], {"content": "goose"}, b"goose"])
def test_non_string_scores_zero_without_raising(response):
    assert score(response, "goose") == 0.0
    assert score(response, "goose", "authors") == 0.0


def test_score_returns_float():
    assert type(score("goose", "goose")) is float
    assert type(score(None, "goose")) is float


def test_reward_conversational_completions():
    completions = [
        [{"role": "assistant", "content": "star"}],
        [{"role": "assistant", "content": "Star."}],
        [{"role": "assistant", "content": "moon"}],
        [{"role": "assistant", "content": " HEART \n"}],
    ]
    assert Classification().reward(completions, solution=["star", "star", "star", "heart"]) == [
        1.0,
        1.0,
        0.0,
        1.0,
    ]


def test_reward_uses_last_turn():
    completions = [[{"role": "assistant", "content": "moon"}, {"role": "assistant", "content": "star"}]]
    assert Classification().reward(completions, solution=["star"]) == [1.0]


def test_reward_plain_strings():
    assert Classification().reward(
        ["star", "moon.", "STAR", ""], solution=["star", "moon", "moon", "star"]
    ) == [
        1.0,
        1.0,
        0.0,
        0.0,
    ]


def test_grpo_reward_follows_the_rule():
    completions = ["star..", ".star", "star"]
    assert get_task("classification").reward(completions, solution=["star"] * 3) == [0.0, 0.0, 1.0]
    assert get_task("classification", "authors").reward(completions, solution=["star"] * 3) == [1.0] * 3


def test_reward_ignores_extra_trl_kwargs_and_bad_completions():
    out = Classification().reward(
        ["star", None, [], [{"role": "assistant", "content": None}]],
        solution=["star"] * 4,
        prompts=["p"] * 4,
        completion_ids=[[1]] * 4,
        trainer_state=None,
    )
    assert out == [1.0, 0.0, 0.0, 0.0]
    assert all(type(x) is float for x in out)


# --- the rule reaches the stages ----------------------------------------------------------------

RECORDS = [{"id": f"train-{i}", "problem": PROMPT, "solution": "goose", "image": "x.png"} for i in range(4)]
ANSWERS = ["goose", "goose..", ".goose", "geese"]  # paper: 1 of 4 correct, authors: 3 of 4


def study(tmp_path, verifier: str | None = None, task: str = "classification") -> StudyConfig:
    """A run directory whose upstream stages are marked done, without running them."""
    for stage in ("01_prepare", "02_coldstart", "04_curate"):
        write_json(tmp_path / stage / "DONE", {"fingerprint": stage})
    return StudyConfig(run_dir=str(tmp_path), task=task, **({"verifier": verifier} if verifier else {}))


@pytest.fixture
def answering(monkeypatch):
    """Stages that read RECORDS and whose model answers ANSWERS, one per record, in order."""
    by_id = dict(zip((r["id"] for r in RECORDS), ANSWERS, strict=True))

    def respond(model, processor, batch, sampling, *_):
        answers = [[by_id[r["id"]]] for r in batch]
        zeros = [0] * len(batch)
        return SimpleNamespace(
            responses=answers, prompt_tokens=zeros, generated_tokens=zeros, forwarded_tokens=zeros
        )

    for module in (profiling, evaluate):
        monkeypatch.setattr(module, "read_split", lambda rundir, split: (RECORDS, 0))
        monkeypatch.setattr(module, "load_generator", lambda *a, **k: "model")
        monkeypatch.setattr(module, "load_processor", lambda *a, **k: "processor")
        monkeypatch.setattr(module, "respond", respond)
    monkeypatch.setattr(evaluate, "eval_splits", lambda cfg: ["test"])


@pytest.mark.parametrize(("verifier", "correct"), [("paper", 1), ("authors", 3)])
def test_the_rule_reaches_profiling_and_evaluation(tmp_path, answering, verifier, correct):
    cfg = study(tmp_path, verifier)
    cfg.profile.k = 1
    rundir = RunDir(cfg.run_dir)
    profiling.run(cfg)
    assert read_json(rundir.profile.root / "stats.json")["mean_pass_rate"] == correct / len(RECORDS)
    evaluate.evaluate_model(cfg, evaluate.ModelToEvaluate("coldstart", None, "model", None, "coldstart"))
    assert read_json(rundir.evaluate("coldstart", None).root / "scores.json")["test"]["correct"] == correct


def fingerprints(cfg: StudyConfig) -> tuple[str, ...]:
    from dcsft.train import run as train_run

    spec = evaluate.ModelToEvaluate("coldstart", None, "model", None, "coldstart")
    return (
        profiling.stage_fingerprint(cfg),
        evaluate.stage_fingerprint(cfg, spec),
        train_run.stage_fingerprint(cfg, "grpo", 0),
        train_run.stage_fingerprint(cfg, "sft", 0),
    )


def test_the_rule_enters_exactly_the_verifier_scored_fingerprints(tmp_path):
    default = fingerprints(study(tmp_path))
    assert fingerprints(study(tmp_path, "paper")) == default
    authors = fingerprints(study(tmp_path, "authors"))
    assert [a != d for a, d in zip(authors, default)] == [True, True, True, False]  # sft: no verifier


def test_the_default_version_is_the_sources_hash_and_grounding_ignores_the_rule(tmp_path):
    source = code_version(classification)
    assert verifier_version("classification") == verifier_version("classification", "paper") == source
    assert verifier_version("classification", "authors") == f"{source}+authors"
    assert verifier_version("grounding", "authors") == verifier_version("grounding")
    assert fingerprints(study(tmp_path, "authors", "grounding")) == fingerprints(
        study(tmp_path, None, "grounding")
    )
