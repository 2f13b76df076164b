"""The paper's reasoning generation settings and plan's cost of long generations: the repetition
penalty reaches every generation path (generate plain and with a shared prefill, adaptive's
prefill, exact's teacher-forced steps, vLLM's SamplingParams) and enters the fingerprints only
when set; plan's KV-cache formula is the bytes transformers' DynamicCache holds."""

import types
from unittest import mock

import pytest
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from dcsft import evaluate, profiling
from dcsft.config import StudyConfig, load_config
from dcsft.data.sources.common import Findings
from dcsft.errors import ConfigError
from dcsft.evaluate import ModelToEvaluate
from dcsft.models.exact import pass_probabilities
from dcsft.models.generate import Sampling, prefill, prompt_inputs, respond, respond_prefilled
from dcsft.models.size import arch_of, head_dim, inspect_model, kv_bytes_per_token, kv_cache
from dcsft.models.vllm_engine import sampling_params
from dcsft.plan import in_flight, memory_lines
from dcsft.tasks import classification

PAPER_7B = "configs/paper/imagenet_7b.yaml"
QWEN_7B = "Qwen/Qwen2.5-VL-7B-Instruct"
# A penalty at which the packaged model's greedy answer changes on some of the records but not all
# (at 3 none changes: the answers are one token; the end-of-turn token is in the prompt, so a large
# penalty keeps the model from stopping).
PENALTY = 4.0


@pytest.fixture(scope="module")
def records(draw_shape_records):
    return draw_shape_records("test-generation-settings", 8)


def sampled(n: int, penalty: float | None = None, **kw) -> Sampling:
    return Sampling(
        do_sample=True,
        num_return_sequences=n,
        temperature=0.9,
        top_p=1.0,
        top_k=kw.get("top_k", 50),
        max_new_tokens=16,
        repetition_penalty=penalty,
    )


def greedy(penalty: float | None, n: int = 1) -> Sampling:
    return Sampling(do_sample=False, num_return_sequences=n, max_new_tokens=16, repetition_penalty=penalty)


# ---------------------------------------------------------------- config and fingerprints


def test_the_penalties_default_to_the_models_own_and_refuse_non_positive_values():
    cfg = StudyConfig()
    assert cfg.profile.repetition_penalty is None and cfg.evaluate.repetition_penalty is None
    with pytest.raises(ConfigError, match=r"^--set evaluate.repetition_penalty=0: .*valid range \(0, inf\)"):
        load_config(None, ["evaluate.repetition_penalty=0"])
    assert load_config(None, ["profile.repetition_penalty=1.1"]).profile.repetition_penalty == 1.1


def test_generate_is_told_a_set_penalty_and_otherwise_keeps_the_checkpoints():
    """Unset, generate applies the checkpoint's generation_config.json (Qwen-VL: 1.05), as before the
    setting; set, it overrides it, 1.0 turning it off."""
    assert "repetition_penalty" not in greedy(None).generate_kwargs()
    assert greedy(1.0).generate_kwargs()["repetition_penalty"] == 1.0
    assert sampled(2, 1.1).generate_kwargs()["repetition_penalty"] == 1.1


def fingerprints(path: str | None, *overrides: str) -> tuple[str, str]:
    cfg = load_config(path, ["run_dir=/nonexistent/run", *overrides])
    spec = ModelToEvaluate("coldstart", None, "x", None, "upstream-identity")
    with (
        mock.patch.object(profiling, "upstream", lambda stage: f"UP-{stage.name}"),
        mock.patch.object(evaluate, "upstream", lambda stage: f"UP-{stage.name}"),
    ):
        return profiling.stage_fingerprint(cfg), evaluate.stage_fingerprint(cfg, spec)


# Computed before the penalties existed (same stand-in upstream fingerprints): runs finished then
# keep their profile and evaluate stages.
BEFORE = {
    (None,): ("2a5ef5b3cf5e69a7", "bd4184a560eaec8b"),
    (PAPER_7B,): ("8175af226ad42fd4", "1f760c7877b92d61"),
    ("configs/paper/refcoco_3b.yaml",): ("100466704adf140a", "36624e2150e9bec1"),
    (None, "profile.method=loss"): ("2fd49da7b062b553", "bd4184a560eaec8b"),
    (None, "profile.engine=vllm", "evaluate.engine=vllm"): ("6b8ee8657831ac71", "49192c1fb4c6e675"),
}


@pytest.mark.parametrize("case", list(BEFORE))
def test_default_penalties_leave_the_fingerprints_as_they_were(case):
    assert fingerprints(*case) == BEFORE[case]


def test_a_set_penalty_changes_its_own_stage_only():
    profile, evaluated = BEFORE[(None,)]
    assert fingerprints(None, "evaluate.repetition_penalty=1.1") == (profile, mock.ANY)
    assert fingerprints(None, "evaluate.repetition_penalty=1.1")[1] != evaluated
    assert fingerprints(None, "profile.repetition_penalty=1.1") == (mock.ANY, evaluated)
    assert fingerprints(None, "profile.repetition_penalty=1.1")[0] != profile


# ---------------------------------------------------------------- every generation path applies it


def test_the_penalty_changes_greedy_answers(model, processor, records):
    plain = respond(model, processor, records, greedy(1.0), seed=0, batch_index=0).responses
    penalised = respond(model, processor, records, greedy(PENALTY), seed=0, batch_index=0).responses
    changed = sum(a != b for a, b in zip(plain, penalised))
    assert 0 < changed < len(records)


def test_shared_prefill_draws_what_plain_sampling_draws_under_the_penalty(model, processor, records):
    plain = respond(model, processor, records, sampled(8, PENALTY), seed=3, batch_index=1)
    shared = respond(
        model, processor, records, sampled(8, PENALTY), seed=3, batch_index=1, share_prefill=True
    )
    assert shared.responses == plain.responses
    assert shared.generated_tokens == plain.generated_tokens
    off = respond(model, processor, records, sampled(8), seed=3, batch_index=1, share_prefill=True)
    assert off.responses != shared.responses  # the penalty acted on the shared path too


def test_greedy_with_a_shared_prefill_keeps_the_penalty(model, processor, records):
    plain = respond(model, processor, records, greedy(PENALTY), seed=0, batch_index=0).responses
    kept = respond(model, processor, records, greedy(PENALTY, n=2), seed=0, batch_index=0, share_prefill=True)
    assert [r[0] for r in plain] == [r[0] for r in kept.responses] == [r[1] for r in kept.responses]


def test_adaptive_rounds_from_one_prefill_keep_the_penalty(model, processor, records):
    encoded = prefill(model, prompt_inputs(processor, records))
    rows = [0, 2, 5]
    again = respond_prefilled(model, processor, encoded, rows, sampled(4, PENALTY), seed=2, batch_index=7)
    alone = respond(
        model,
        processor,
        [records[i] for i in rows],
        sampled(4, PENALTY),
        seed=2,
        batch_index=7,
        share_prefill=True,
    )
    assert again.responses == alone.responses


def test_exact_models_the_penalty_generate_applies(model, processor, records):
    accepted = [classification.accepted_answers(r["solution"]) for r in records]
    probabilities, _, _ = pass_probabilities(
        model, processor, records, accepted, sampled(1, PENALTY, top_k=1)
    )
    answers = respond(model, processor, records, greedy(PENALTY), seed=0, batch_index=0).responses
    expected = [classification.score(r[0], rec["solution"]) for r, rec in zip(answers, records)]
    assert probabilities == pytest.approx(expected, abs=1e-5)
    assert 0 < sum(expected) < len(records)


def test_vllm_is_asked_for_the_penalty():
    vllm = types.SimpleNamespace(SamplingParams=lambda **kwargs: kwargs)
    assert sampling_params(vllm, greedy(1.1), seed=1)["repetition_penalty"] == 1.1
    assert sampling_params(vllm, sampled(8, 1.1), seed=1)["repetition_penalty"] == 1.1
    assert "repetition_penalty" not in sampling_params(
        vllm, sampled(8), seed=1
    )  # vLLM's default: the model's


# ---------------------------------------------------------------- plan's KV cache against transformers'


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def test_plans_kv_formula_is_the_dynamic_cache_of_the_packaged_model(model, processor, records):
    arch = arch_of(model.config.to_dict())
    inputs = prompt_inputs(processor, records)
    batch, width = inputs["input_ids"].shape
    out = model(**inputs, use_cache=True)
    assert cache_bytes(out.cache) == kv_cache(arch, batch * width, 4)  # float32: 4 B per value
    # generation: k sequences per prompt at full length (the last token is never forwarded)
    k, new = 3, 5
    result = model.generate(
        **inputs,
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=True,
        num_return_sequences=k,
        return_dict_in_generate=True,
    )
    assert result.sequences.shape == (batch * k, width + new)
    assert cache_bytes(result.cache) == kv_cache(arch, batch * k * (width + new - 1), 4)


def test_plans_kv_formula_holds_for_grouped_query_attention_in_bfloat16():
    """A random Qwen2.5-VL with 4 query heads over 2 KV heads, 3 layers, head_dim 16, in bfloat16."""
    config = Qwen2_5_VLConfig(
        text_config=dict(
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_hidden_layers=3,
            intermediate_size=96,
            vocab_size=300,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        ),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=64),
        image_token_id=299,
        video_token_id=298,
        vision_start_token_id=297,
        bos_token_id=None,
        eos_token_id=None,
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16).eval()
    with torch.no_grad():
        out = model(input_ids=torch.randint(0, 290, (3, 17)), use_cache=True)
    arch = arch_of(config.to_dict())
    assert (arch["layers"], arch["kv_heads"], head_dim(arch)) == (3, 2, 16)
    assert cache_bytes(out.cache) == kv_cache(arch, 3 * 17, 2) == 2 * 3 * 2 * 16 * 2 * 3 * 17


def test_a_stated_head_dim_wins_over_hidden_over_heads():
    """Qwen3-VL-4B's text config: hidden 2560, 32 heads, head_dim 128 (not 80)."""
    arch = arch_of({"text_config": {"hidden_size": 2560, "num_attention_heads": 32, "head_dim": 128}})
    assert head_dim(arch) == 128


def test_the_7b_figure_of_the_readme():
    """Qwen/Qwen2.5-VL-7B-Instruct config.json: 28 layers, 4 KV heads, 3584 / 28 = head_dim 128, bf16."""
    arch = inspect_model(QWEN_7B, None, Findings()).arch
    assert kv_bytes_per_token(arch, 2) == 2 * 28 * 4 * 128 * 2 == 57_344
    # one sample's k = 8 responses at 1,088 prompt + 4,096 generated tokens
    assert kv_cache(arch, 8 * (1_088 + 4_096), 2) / 1e9 == pytest.approx(2.378, abs=1e-3)


def long_generations(*overrides: str) -> StudyConfig:
    return load_config(
        None,
        [
            f"model.base={QWEN_7B}",
            "model.dtype=bfloat16",
            "model.max_pixels=802816",
            "profile.max_new_tokens=4096",
            "evaluate.max_new_tokens=4096",
            *overrides,
        ],
    )


def test_plan_counts_each_generating_stage_at_full_length():
    cfg = long_generations("profile.batch_size=4", "evaluate.batch_size=16", "train.methods=[sft,grpo]")
    flights = {f.stage: f for f in in_flight(cfg, gpus=1)}
    assert flights["profile"].sequences == 4 * 8
    assert flights["profile"].tokens == 32 * (1_024 + 64 + 4_096)
    g = cfg.grpo
    assert flights["grpo"].sequences == g.prompts_per_step * g.num_generations * g.grad_accum
    assert flights["evaluate"].tokens == 16 * (1_024 + 64 + 4_096)


def test_plan_warns_when_weights_and_kv_cache_outgrow_the_gpu():
    cfg = long_generations("profile.batch_size=16", "evaluate.batch_size=8")
    found = Findings()
    lines = memory_lines(cfg, inspect_model(QWEN_7B, None, found), 40.0, found)
    profile = next(line for line in lines if line.strip().startswith("profile"))
    assert "38.1 GB" in profile  # 16 x 8 sequences x 5,184 tokens x 57,344 B
    assert any(
        w.startswith("profile: weights 16.6 GB + KV cache 38.1 GB (128 sequences of 5,184")
        for w in found.warnings
    )
    assert not any(w.startswith("evaluate") for w in found.warnings)
    paged = Findings()
    memory_lines(
        long_generations("profile.batch_size=16", "profile.engine=vllm"),
        inspect_model(QWEN_7B, None, paged),
        40.0,
        paged,
    )
    assert not any(w.startswith("profile") for w in paged.warnings)  # vLLM runs fewer at once instead
