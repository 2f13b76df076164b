"""Batched answers from a VLM for image + question records (profiling and evaluation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from PIL import Image


@dataclass(frozen=True)
class Sampling:
    """How responses are drawn: greedy when `do_sample` is false."""

    do_sample: bool = False
    num_return_sequences: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    max_new_tokens: int = 128

    def generate_kwargs(self) -> dict:
        kwargs = {"max_new_tokens": self.max_new_tokens, "num_return_sequences": self.num_return_sequences,
                  "do_sample": self.do_sample}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs


def prompt_text(processor, question: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


@dataclass(frozen=True)
class Generated:
    """Per record: its responses, its prompt length in tokens (image tokens included) and the
    tokens generated over all its responses (up to and including the end-of-turn token)."""

    responses: list[list[str]]
    prompt_tokens: list[int]
    generated_tokens: list[int]


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


@torch.no_grad()
def respond(model, processor, records: list[dict], sampling: Sampling, seed: int, batch_index: int) -> Generated:
    """`num_return_sequences` responses per record. The generator is seeded per batch, so a
    batch's responses do not depend on which batches ran before it."""
    images = [Image.open(r["image"]).convert("RGB") for r in records]
    inputs = processor(text=[prompt_text(processor, r["problem"]) for r in records], images=images,
                       return_tensors="pt", padding=True)
    torch.manual_seed(seed * 1_000_003 + batch_index)
    output = model.generate(**inputs, **sampling.generate_kwargs())
    new_tokens = output[:, inputs["input_ids"].shape[1]:]
    texts = processor.batch_decode(new_tokens, skip_special_tokens=True)
    lengths = generated_lengths(new_tokens, stop_token_ids(model))
    n = sampling.num_return_sequences
    return Generated(responses=[texts[i * n:(i + 1) * n] for i in range(len(records))],
                     prompt_tokens=inputs["attention_mask"].sum(dim=1).tolist(),
                     generated_tokens=[sum(lengths[i * n:(i + 1) * n]) for i in range(len(records))])


def respond_batches(model, processor, records: list[dict], sampling: Sampling, batch_size: int, seed: int,
                    first: int = 0) -> Iterator[tuple[list[dict], Generated]]:
    """(batch, responses per record) for the records from index `first` (a batch boundary) on."""
    for start in range(first, len(records), batch_size):
        batch = records[start:start + batch_size]
        yield batch, respond(model, processor, batch, sampling, seed, start // batch_size)
