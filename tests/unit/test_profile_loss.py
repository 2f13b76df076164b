"""Profiling by loss: the answer's log-probability equals one computed by hand from the model's
logits, the quantile buckets reproduce the calibration's shares, a resumed run ends with the
uninterrupted run's files, and grounding answers (which `exact` cannot enumerate) are scored."""

import json
import math
import random

import pytest
import torch

from dcsft.config import ProfileConfig, StudyConfig
from dcsft.models.generate import prompt_inputs, stop_token_ids
from dcsft.models.loss import answer_logprobs
from dcsft.profile_loss import loss_rows, profile_by_loss, quantile_buckets
from dcsft.profiling import Profiler, check_method
from dcsft.tasks import get_task, grounding


@pytest.fixture(scope="module")
def records(draw_shape_records):
    return draw_shape_records("test-profile-loss", 10)


def by_hand(model, processor, record: dict, answer: str) -> float:
    """The answer's mean log-probability from one plain forward pass of prompt + answer (no
    cache, no padding, positions computed by the model itself)."""
    inputs = dict(prompt_inputs(processor, [record]))
    tokens = processor.tokenizer(answer, add_special_tokens=False)["input_ids"]
    width = inputs["input_ids"].shape[1]
    inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([tokens])], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    if "mm_token_type_ids" in inputs:
        extra = torch.zeros((1, len(tokens)), dtype=inputs["mm_token_type_ids"].dtype)
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], extra], dim=1)
    with torch.no_grad():
        log_p = model(**inputs).logits[0].double().log_softmax(dim=-1)
    total = sum(float(log_p[width - 1 + t, token]) for t, token in enumerate(tokens))
    stops = sorted(stop_token_ids(model))
    total += float(torch.logsumexp(log_p[width - 1 + len(tokens), stops], dim=0))
    return total / (len(tokens) + 1)


def test_mean_token_logprob_matches_the_logits_by_hand(model, processor, records):
    # a batch with prompts and answers of different lengths: left-padded prompts, right-padded answers
    batch = [
        records[0],
        {
            **records[1],
            "problem": grounding.prompt("the big shape on the left"),
            "solution": "[12, 30, 60, 71]",
        },
        {**records[2], "solution": "a much longer answer than one word"},
    ]
    scores = answer_logprobs(model, processor, batch, [r["solution"] for r in batch])
    for record, score in zip(batch, scores):
        expected = by_hand(model, processor, record, record["solution"])
        assert score.mean_logprob == pytest.approx(expected, abs=1e-4), record["id"]
        assert score.prob == pytest.approx(math.exp(score.logprob), rel=1e-9)
        assert score.tokens == len(
            processor.tokenizer(record["solution"], add_special_tokens=False)["input_ids"]
        )
    assert scores[1].tokens > scores[0].tokens  # the check covers padded answers


def scored_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "id": f"s{i}",
            "solution": "x",
            "answer_logprob": round(-rng.random() * 3, 6),
            "answer_prob": 0.1,
            "answer_tokens": 1,
            "prompt_tokens": 40,
            "forwarded_tokens": 41,
        }
        for i in range(n)
    ]


def sampled_row(record_id: str, passes: int, k: int = 8) -> dict:
    correct = [1] * passes + [0] * (k - passes)
    return {
        "id": record_id,
        "solution": "x",
        "responses": ["r"] * k,
        "correct": correct,
        "pass_count": passes,
        "k": k,
        "pass_rate": passes / k,
        "prompt_tokens": 40,
        "generated_tokens": 2 * k,
        "forwarded_tokens": 39 + 3 * k,
    }


def test_quantile_buckets_reproduce_the_calibration_shares():
    scored = scored_rows(220)
    # 20 calibration samples: 5 easy, 11 medium (pass counts 1..7), 4 hard
    passes = [8] * 5 + [1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 2] + [0] * 4
    sampled = [sampled_row(f"s{i}", c) for i, c in zip(range(0, 220, 11), passes)]
    rows, stats = loss_rows(scored, sampled, k=8)
    assert [r["id"] for r in rows] == [r["id"] for r in scored]
    estimated = [r for r in rows if not r["calibration"]]
    assert len(estimated) == 200
    counts = {b: sum(r["bucket"] == b for r in estimated) for b in ("easy", "medium", "hard")}
    assert counts == {"easy": 50, "medium": 110, "hard": 40}  # 5/20, 11/20, 4/20 of 200
    assert stats["buckets"] == {"easy": 55, "medium": 121, "hard": 44}  # = the shares of all 220
    assert stats["calibration_samples"] == 20
    assert stats["calibration_buckets"] == {"easy": 5, "medium": 11, "hard": 4}
    # lowest scores hard, highest easy, at the stated thresholds
    t = stats["loss_thresholds"]
    for r in estimated:
        score = r["answer_logprob"]
        assert r["bucket"] == (
            "hard" if score <= t["hard_at_most"] else "easy" if score >= t["easy_at_least"] else "medium"
        )
        # every consumer that reads pass_count / k finds the same bucket
        assert r["k"] == 8 and r["responses"] == []
        expected = "easy" if r["pass_count"] == 8 else "hard" if r["pass_count"] == 0 else "medium"
        assert expected == r["bucket"]
    # pass_rate: quantile matching, increasing with the score within the medium bucket
    medium = sorted((r["answer_logprob"], r["pass_rate"]) for r in estimated if r["bucket"] == "medium")
    assert [rate for _, rate in medium] == sorted(rate for _, rate in medium)
    assert {rate for _, rate in medium} <= {c / 8 for c in passes if 0 < c < 8}
    # calibration rows keep their sampled responses and bucket, with the loss score added
    for r, c in zip([r for r in rows if r["calibration"]], passes):
        assert r["pass_count"] == c and len(r["responses"]) == 8 and "answer_logprob" in r
        assert r["bucket"] == ("easy" if c == 8 else "hard" if c == 0 else "medium")
        assert r["forwarded_tokens"] == 41 + 39 + 24


def test_quantile_buckets_rank_ties_in_list_order_and_handle_empty_shares():
    buckets, thresholds = quantile_buckets([0.5, 0.5, 0.5, 0.5], {"easy": 0.5, "medium": 0.0, "hard": 0.5})
    assert buckets == ["hard", "hard", "easy", "easy"]
    buckets, thresholds = quantile_buckets([3.0, 1.0, 2.0], {"easy": 0.0, "medium": 1.0, "hard": 0.0})
    assert buckets == ["medium"] * 3 and thresholds == {"hard_at_most": None, "easy_at_least": None}


class Interrupted(Exception):
    pass


class Failing(Profiler):
    """Raises in the given batch of the given method, as a killed process stops there."""

    fail: tuple[str, int] = ("", -1)

    def loss(self, batch, batch_index):
        if self.fail == ("loss", batch_index):
            raise Interrupted
        return super().loss(batch, batch_index)

    def sample(self, batch, batch_index):
        if self.fail == ("sample", batch_index):
            raise Interrupted
        return super().sample(batch, batch_index)


def test_a_resumed_loss_profile_equals_an_uninterrupted_one(model, processor, records, tmp_path):
    p = ProfileConfig(method="loss", k=4, batch_size=3, max_new_tokens=8, loss_calibration=5)
    task = get_task("classification")

    def run(folder, fail=("", -1)):
        profiler = Failing(model, processor, task, p, seed=0)
        profiler.fail = fail
        folder.mkdir(exist_ok=True)
        return profile_by_loss(folder, folder / "profile.jsonl", records, p, 0, lambda: profiler)

    whole = tmp_path / "whole"
    rows, start, stats = run(whole)
    assert start == 0 and stats["calibration_samples"] == 5
    assert sum(r["calibration"] for r in rows) == 5

    cut = tmp_path / "cut"
    with pytest.raises(Interrupted):
        run(cut, ("loss", 2))  # pass 1 stops after two whole batches
    assert len((cut / "loss.jsonl").read_text().splitlines()) == 6
    with (cut / "loss.jsonl").open("a") as out:
        out.write('{"id": "r6", "answer_lo')  # a torn line, as a kill mid-write leaves
    with pytest.raises(Interrupted):
        run(cut, ("sample", 1))  # pass 1 resumes and finishes; the calibration stops after a batch
    assert len((cut / "calibration.jsonl").read_text().splitlines()) == 3
    assert not (cut / "profile.jsonl").exists()
    again, start, again_stats = run(cut)
    assert start == len(records)  # pass 1 was whole on disk: nothing scored again
    assert again == rows and again_stats == stats
    for name in ("loss.jsonl", "calibration.jsonl", "profile.jsonl"):
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name
    assert [json.loads(line)["id"] for line in (cut / "profile.jsonl").open()] == [r["id"] for r in records]


def test_loss_scores_a_grounding_record(model, processor, records):
    task = get_task("grounding")
    check_method(StudyConfig.model_validate({"task": "grounding", "profile": {"method": "loss"}}))
    batch = [
        {
            **r,
            "problem": grounding.prompt(f"the shape number {i}"),
            "solution": f"[{4 + i}, 10, {40 + i}, 52]",
        }
        for i, r in enumerate(records[:3])
    ]
    rows = Profiler(model, processor, task, ProfileConfig(method="loss"), seed=0).loss(batch, 0)
    for row, record in zip(rows, batch):
        assert row["id"] == record["id"] and row["solution"] == record["solution"]
        assert row["answer_tokens"] > 5
        assert -50 < row["answer_logprob"] < 0 and 0 <= row["answer_prob"] < 1
        assert row["forwarded_tokens"] == row["prompt_tokens"] + row["answer_tokens"]
