"""Batched answers from a VLM for image + question records (profiling and evaluation)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import BatchFeature

from dcsft.models.processed import cached


@dataclass(frozen=True)
class Sampling:
    """How responses are drawn: greedy when `do_sample` is false."""

    do_sample: bool = False
    num_return_sequences: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    max_new_tokens: int = 128
    # on every path: generate's logits processors (plain and shared prefill alike: both pass the whole
    # prompt as input_ids, left padding ignored), vLLM's SamplingParams, exact's teacher-forced steps.
    # None: the model's own (its generation_config.json; Qwen2.5-VL-Instruct ships 1.05), as every
    # run did before the setting existed; a number overrides it, 1.0 turning it off.
    repetition_penalty: float | None = None

    def generate_kwargs(self) -> dict:
        kwargs = {
            "max_new_tokens": self.max_new_tokens,
            "num_return_sequences": self.num_return_sequences,
            "do_sample": self.do_sample,
        }
        if self.repetition_penalty is not None:  # else generate takes the checkpoint's generation config
            kwargs["repetition_penalty"] = self.repetition_penalty
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs


# Generation settings added after runs existed: left out of a stage's fingerprint while at their
# default, so that the stages finished before them stay finished.
LATER_SETTINGS = ("repetition_penalty",)


def at_default(section) -> set[str]:
    """The LATER_SETTINGS of a config section (profile, evaluate) that hold their default."""
    fields = type(section).model_fields
    return {
        name for name in LATER_SETTINGS if name in fields and getattr(section, name) == fields[name].default
    }


def prompt_text(processor, question: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


@dataclass(frozen=True)
class Generated:
    """Per record: its responses, its prompt length in tokens (image tokens included), the
    tokens generated over all its responses (up to and including the end-of-turn token) and the
    tokens forwarded (each prompt once per response, or once with a shared prefill, plus the
    generated ones)."""

    responses: list[list[str]]
    prompt_tokens: list[int]
    generated_tokens: list[int]
    forwarded_tokens: list[int]


def generated_lengths(new_tokens: torch.Tensor, stop_ids: set[int]) -> list[int]:
    """Length of each generated row up to and including its first stop token (the rest is padding)."""
    lengths = []
    for row in new_tokens.tolist():
        stop = next((i for i, token in enumerate(row) if token in stop_ids), None)
        lengths.append(len(row) if stop is None else stop + 1)
    return lengths


def stop_token_ids(model) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos]) - {None}


def prompt_inputs(processor, records: list[dict], device: torch.device | str = "cpu") -> dict:
    """The processor's batch (left-padded) for the records' image + question prompts, on the
    model's device; processed once per process for the same records (dcsft.models.processed)."""

    def process():
        images = [Image.open(r["image"]).convert("RGB") for r in records]
        return processor(
            text=[prompt_text(processor, r["problem"]) for r in records],
            images=images,
            return_tensors="pt",
            padding=True,
        )

    inputs = cached(processor, records, process)
    # copies: what a caller does with its batch never reaches the cache
    return BatchFeature({key: value.to(device, copy=True) for key, value in inputs.items()})


def supports_shared_prefill(model) -> bool:
    """Qwen-VL models keep the multimodal rotary offsets of the last prefill in `rope_deltas`."""
    return hasattr(getattr(model, "model", None), "rope_deltas")


TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")


@dataclass
class Prefill:
    """Prompts encoded once: the processor batch, the KV cache of the prompts (less their last
    token unless `keep_last`), their multimodal rotary offsets and the last position's logits."""

    inputs: dict
    cache: object
    rope_deltas: torch.Tensor
    logits: torch.Tensor


@torch.no_grad()
def prefill(model, inputs: dict, keep_last: bool = False) -> Prefill:
    end = None if keep_last else -1  # generate must process at least the last prompt token itself
    head = {key: inputs[key][:, :end] for key in TEXT_KEYS if key in inputs}
    vision = {key: value for key, value in inputs.items() if key not in TEXT_KEYS}
    # `cache`: the KV cache's name from transformers 5.24 on (past_key_values before), hence its lower bound
    out = model(**head, **vision, use_cache=True, logits_to_keep=1)
    return Prefill(inputs, out.cache, model.model.rope_deltas, out.logits[:, -1])


def branch(model, encoded: Prefill, copies: int, rows: list[int] | None = None, keep: bool = False):
    """Text inputs and a KV cache for `copies` continuations of each prompt in `rows` (all by
    default), prompt i's copies side by side; with `keep` the prefill stays untouched so it can
    be branched again. Sets the model's rotary offsets to match the new batch."""
    index = torch.arange(encoded.inputs["input_ids"].shape[0]) if rows is None else torch.tensor(rows)
    index = index.to(encoded.inputs["input_ids"].device)
    cache = copy.deepcopy(encoded.cache) if keep else encoded.cache
    if rows is not None:
        cache.batch_select_indices(index)
    cache.batch_repeat_interleave(copies)
    model.model.rope_deltas = encoded.rope_deltas[index].repeat_interleave(copies, dim=0)
    return {
        key: encoded.inputs[key][index].repeat_interleave(copies, dim=0)
        for key in TEXT_KEYS
        if key in encoded.inputs
    }, cache


@dataclass
class Forced:
    """One teacher-forced pass over token sequences after each record's prompt (`teacher_forced`).

    Row r * copies + j holds record r's j-th sequence (rows past a record's count are empty);
    `steps[row, t]` are the logits that predict the row's token t from the prompt and its tokens
    before t, so `steps[row, len(seq)]` predicts what follows the whole sequence."""

    rows: list[tuple[int, ...]]
    copies: int
    steps: torch.Tensor  # [rows, longest + 1, vocab], float32
    history: torch.Tensor  # [rows, prompt width + longest]: left-padded prompt ids, then the sequence
    prompt_width: int
    padding: torch.Tensor  # [rows]: left padding of each row's prompt
    prompt_tokens: list[int]  # per record, image tokens included


@torch.no_grad()
def teacher_forced(model, processor, records: list[dict], sequences: list[list[tuple[int, ...]]]) -> Forced:
    """Each record's prompt encoded once (its KV cache shared by its sequences), then all its token
    `sequences` forwarded side by side after it in one batched pass (profile methods `exact`, `loss`)."""
    copies = max(len(seqs) for seqs in sequences)
    inputs = prompt_inputs(processor, records, model.device)
    encoded = prefill(model, inputs, keep_last=True)
    expanded, cache = branch(model, encoded, copies)
    rows = [seqs[j] if j < len(seqs) else () for seqs in sequences for j in range(copies)]
    width = max(len(seq) for seq in rows)
    pad = processor.tokenizer.pad_token_id or 0
    device = model.device
    answer = torch.tensor([list(seq) + [pad] * (width - len(seq)) for seq in rows], device=device)
    answer_mask = torch.tensor([[1] * len(seq) + [0] * (width - len(seq)) for seq in rows], device=device)
    mask = torch.cat([expanded["attention_mask"], answer_mask], dim=1)
    start = expanded["attention_mask"].sum(dim=1, keepdim=True)
    positions = start + torch.arange(width, device=device)[None, :] + model.model.rope_deltas.view(-1, 1)
    logits = model(input_ids=answer, attention_mask=mask, cache=cache, position_ids=positions).logits
    steps = torch.cat([encoded.logits[:, None].repeat_interleave(copies, dim=0), logits], dim=1).float()
    return Forced(
        rows=rows,
        copies=copies,
        steps=steps,
        history=torch.cat([expanded["input_ids"], answer], dim=1),
        prompt_width=expanded["input_ids"].shape[1],
        padding=(expanded["attention_mask"] != 0).int().argmax(dim=1),
        prompt_tokens=inputs["attention_mask"].sum(dim=1).tolist(),
    )


def decoded(
    model,
    processor,
    output: torch.Tensor,
    prompt_width: int,
    n: int,
    prompt_tokens: list[int],
    prompts_forwarded: list[int],
) -> Generated:
    new_tokens = output[:, prompt_width:]
    texts = processor.batch_decode(new_tokens, skip_special_tokens=True)
    lengths = generated_lengths(new_tokens, stop_token_ids(model))
    count = len(prompt_tokens)
    generated = [sum(lengths[i * n : (i + 1) * n]) for i in range(count)]
    return Generated(
        responses=[texts[i * n : (i + 1) * n] for i in range(count)],
        prompt_tokens=prompt_tokens,
        generated_tokens=generated,
        forwarded_tokens=[f + g for f, g in zip(prompts_forwarded, generated)],
    )


@torch.no_grad()
def respond_prefilled(
    model, processor, encoded: Prefill, rows: list[int], sampling: Sampling, seed: int, batch_index: int
) -> Generated:
    """`num_return_sequences` responses for each prompt in `rows` of an already encoded batch,
    which stays reusable (adaptive profiling draws several rounds from one prefill). Tokens
    forwarded count each copy's last prompt token and the generated ones, not the prefill."""
    n = sampling.num_return_sequences
    expanded, cache = branch(model, encoded, n, rows, keep=True)
    torch.manual_seed(seed * 1_000_003 + batch_index)
    output = model.generate(
        **expanded, cache=cache, **{**sampling.generate_kwargs(), "num_return_sequences": 1}
    )
    prompt_tokens = encoded.inputs["attention_mask"][rows].sum(dim=1).tolist()
    return decoded(
        model, processor, output, expanded["input_ids"].shape[1], n, prompt_tokens, [n] * len(rows)
    )


@torch.no_grad()
def respond(
    model,
    processor,
    records: list[dict],
    sampling: Sampling,
    seed: int,
    batch_index: int,
    share_prefill: bool = False,
) -> Generated:
    """`num_return_sequences` responses per record. The generator is seeded per batch, so a
    batch's responses do not depend on which batches ran before it. With `share_prefill`, the
    prompt is encoded once per record instead of once per response (same responses)."""
    if hasattr(model, "respond_records"):  # another engine (models/vllm_engine.py) draws the responses itself
        return model.respond_records(records, sampling, seed, batch_index)
    inputs = prompt_inputs(processor, records, model.device)
    prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
    n = sampling.num_return_sequences
    if share_prefill and n > 1 and supports_shared_prefill(model):
        expanded, cache = branch(model, prefill(model, inputs), n)
        torch.manual_seed(seed * 1_000_003 + batch_index)
        output = model.generate(
            **expanded, cache=cache, **{**sampling.generate_kwargs(), "num_return_sequences": 1}
        )
        # The prefill forwards the prompt less its last token once; each copy then forwards that token.
        return decoded(
            model,
            processor,
            output,
            expanded["input_ids"].shape[1],
            n,
            prompt_tokens,
            [p - 1 + n for p in prompt_tokens],
        )
    torch.manual_seed(seed * 1_000_003 + batch_index)
    output = model.generate(**inputs, **sampling.generate_kwargs())
    return decoded(
        model,
        processor,
        output,
        inputs["input_ids"].shape[1],
        n,
        prompt_tokens,
        [p * n for p in prompt_tokens],
    )
