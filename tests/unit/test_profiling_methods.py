"""Profiling at the floor, checked on the packaged base model: a shared prefill draws what
separate prefills draw, exact pass probabilities match greedy decoding and sampling, adaptive
stops only medium samples."""

import pytest

from dcsft.config import ProfileConfig, StudyConfig
from dcsft.errors import StageError
from dcsft.models.exact import pass_probabilities
from dcsft.models.generate import Sampling, prefill, prompt_inputs, respond, respond_prefilled
from dcsft.profiling import Profiler, check_method
from dcsft.tasks import classification
from dcsft.tasks.base import score_all
from dcsft.tasks.classification import Classification


@pytest.fixture(scope="module")
def records(draw_shape_records):
    return draw_shape_records("test-profiling", 12, photos=8)


def _sampling(n, **kw):
    return Sampling(
        do_sample=True,
        num_return_sequences=n,
        temperature=kw.get("temperature", 0.9),
        top_p=kw.get("top_p", 1.0),
        top_k=kw.get("top_k", 50),
        max_new_tokens=16,
    )


def test_shared_prefill_draws_the_same_responses(model, processor, records):
    separate = respond(model, processor, records, _sampling(8), seed=3, batch_index=1)
    shared = respond(model, processor, records, _sampling(8), seed=3, batch_index=1, share_prefill=True)
    assert shared.responses == separate.responses
    assert shared.generated_tokens == separate.generated_tokens
    assert all(s < p for s, p in zip(shared.forwarded_tokens, separate.forwarded_tokens))


def test_shared_prefill_greedy_equals_plain_generate(model, processor, records):
    greedy = Sampling(do_sample=False, num_return_sequences=1, max_new_tokens=16)
    plain = respond(model, processor, records, greedy, seed=0, batch_index=0)
    kept = respond(
        model,
        processor,
        records,
        Sampling(do_sample=False, num_return_sequences=2, max_new_tokens=16),
        seed=0,
        batch_index=0,
        share_prefill=True,
    )
    assert [r[0] for r in plain.responses] == [r[0] for r in kept.responses] == [r[1] for r in kept.responses]


def test_exact_with_top_k_1_is_greedy_correctness(model, processor, records):
    accepted = [classification.accepted_answers(r["solution"]) for r in records]
    probabilities, _, _ = pass_probabilities(model, processor, records, accepted, _sampling(1, top_k=1))
    greedy = respond(
        model, processor, records, Sampling(do_sample=False, max_new_tokens=16), seed=0, batch_index=0
    )
    expected = [classification.score(r[0], rec["solution"]) for r, rec in zip(greedy.responses, records)]
    assert probabilities == pytest.approx(expected, abs=1e-5)
    assert 0 < sum(expected) < len(records)  # both outcomes occur, so the check has teeth


def test_exact_matches_sampling_frequencies(model, processor, records):
    accepted = [classification.accepted_answers(r["solution"]) for r in records]
    sampling = _sampling(1, temperature=1.5, top_k=5, top_p=0.9)
    probabilities, _, _ = pass_probabilities(model, processor, records, accepted, sampling)
    draws = 400
    out = respond(
        model,
        processor,
        records,
        _sampling(draws, temperature=1.5, top_k=5, top_p=0.9),
        seed=1,
        batch_index=0,
        share_prefill=True,
    )
    for p, responses, record in zip(probabilities, out.responses, records):
        freq = sum(classification.score(r, record["solution"]) for r in responses) / draws
        sigma = max((p * (1 - p) / draws) ** 0.5, 1 / draws)
        assert abs(freq - p) <= 4.5 * sigma + 1e-3, (record["id"], p, freq)
    assert any(0.05 < p < 0.95 for p in probabilities)  # some samples are genuinely uncertain


def test_exact_rejects_answers_that_tokenise_to_nothing(model, processor, records):
    with pytest.raises(ValueError, match="tokenise to nothing.*r0"):
        pass_probabilities(model, processor, records[:2], [[""], ["circle"]], _sampling(1))


def test_adaptive_stops_only_medium_samples(model, processor, records):
    p = ProfileConfig(method="adaptive", k=8, temperature=1.5, top_k=50, max_new_tokens=16, adaptive_round=2)
    rows = Profiler(model, processor, Classification(), p, seed=0).adaptive(records, 0)
    for row in rows:
        if row["k"] < 8:
            assert 0 < row["pass_count"] < row["k"]  # stopped: both outcomes seen
            assert len(set(row["correct"][:-2])) < 2  # ... and not before its last round
        assert len(row["responses"]) == row["k"] and row["k"] % 2 == 0
    for row, record in zip(rows, records, strict=True):  # scores kept round by round: the responses'
        assert row["scores"] == score_all(Classification(), row["responses"], [record] * row["k"]).scores
        assert row["correct"] == [int(score == 1.0) for score in row["scores"]]
    assert any(row["k"] < 8 for row in rows) and any(row["k"] == 8 for row in rows)


def test_adaptive_settle_stops_alike_samples_at_n_draws_and_changes_nothing_else(model, processor, records):
    base = dict(method="adaptive", k=8, temperature=1.5, top_k=50, max_new_tokens=16, adaptive_round=2)
    full = Profiler(model, processor, Classification(), ProfileConfig(**base), seed=0).adaptive(records, 0)
    settled = Profiler(
        model, processor, Classification(), ProfileConfig(**base, adaptive_settle=4), seed=0
    ).adaptive(records, 0)
    for a, b in zip(full, settled):
        assert b["correct"] == a["correct"][: b["k"]]  # same rounds, same seeds: a prefix of the full draws
        if len(set(a["correct"][:4])) == 2:
            assert b == a  # medium within 4 draws: untouched
        else:
            assert b["k"] == 4 and b["pass_count"] in (0, 4)  # settled easy / hard after 4 alike draws
    assert any(b["k"] == 4 and a["k"] == 8 for a, b in zip(full, settled))  # the rule fired
    with pytest.raises(ValueError, match="adaptive_settle .9. must be at most k .8."):
        ProfileConfig(**base, adaptive_settle=9)


def test_exact_rows_draw_k_outcomes_from_p(model, processor, records):
    p = ProfileConfig(method="exact", k=8, temperature=0.9)
    rows = Profiler(model, processor, Classification(), p, seed=0).exact(records, 0)
    for row in rows:
        probs = row["bucket_probabilities"]
        assert len(row["correct"]) == 8 and row["responses"] == []
        # three values each rounded to 6 decimals: their sum is within 1.5e-6 of 1
        assert probs["easy"] + probs["medium"] + probs["hard"] == pytest.approx(1, abs=1.5e-6)
        assert probs["easy"] == pytest.approx(row["p_correct"] ** 8, abs=1e-5)  # both stored to 6 decimals
    again = Profiler(model, processor, Classification(), p, seed=0).exact(records, 0)
    assert [r["correct"] for r in again] == [r["correct"] for r in rows]


def test_exact_needs_a_finite_answer_set():
    with pytest.raises(StageError, match="grounding.*methods it supports: sample, adaptive, loss"):
        check_method(StudyConfig.model_validate({"task": "grounding", "profile": {"method": "exact"}}))


def test_a_prefill_can_be_branched_again_for_any_subset(model, processor, records):
    encoded = prefill(model, prompt_inputs(processor, records))
    rows = [1, 3, 5, 10]
    first = respond_prefilled(model, processor, encoded, rows, _sampling(4), seed=2, batch_index=7)
    again = respond_prefilled(model, processor, encoded, rows, _sampling(4), seed=2, batch_index=7)
    alone = respond(
        model, processor, [records[i] for i in rows], _sampling(4), seed=2, batch_index=7, share_prefill=True
    )
    assert first.responses == again.responses == alone.responses
    assert first.forwarded_tokens == [
        4 + g for g in first.generated_tokens
    ]  # the prefill is not counted again
