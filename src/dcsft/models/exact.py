"""The exact probability that one sampled response is correct, from one teacher-forced pass.

For a verifier that accepts a finite set of answer strings, P(correct) under the configured
sampling is the sum, over the accepted strings, of the probability that generation produces
the string's tokens and then stops. Each step's probability is taken from the same logits
processors `generate` applies when sampling (profile.repetition_penalty, else the model's
generation config's, then temperature,
top-k, top-p), so top-k / top-p truncation is exact: a token outside the kept set has
probability 0, the kept ones are renormalised. The prompt is encoded once and
its cache shared by all accepted strings of a sample.

What stays approximate is documented where the accepted set is built (e.g. classification
counts the canonical spellings, not every whitespace or case variant the verifier accepts).
"""

from __future__ import annotations

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from dcsft.errors import ExactUnsupported
from dcsft.models.generate import Sampling, stop_token_ids, teacher_forced

# Generation-config settings that change the sampling distribution and are not modelled here.
UNMODELLED = (
    "no_repeat_ngram_size",
    "min_length",
    "min_new_tokens",
    "bad_words_ids",
    "suppress_tokens",
    "begin_suppress_tokens",
    "min_p",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "encoder_repetition_penalty",
    "sequence_bias",
    "renormalize_logits",
    "top_h",
)


def logits_processors(model, sampling: Sampling, padding_lengths: torch.Tensor) -> LogitsProcessorList:
    """What `generate` applies when sampling, in its order; `padding_lengths` (left padding per
    row) keeps pad tokens out of the repetition penalty, as `generate` does."""
    config, default = model.generation_config, GenerationConfig()
    changed = [name for name in UNMODELLED if getattr(config, name, None) != getattr(default, name, None)]
    if changed:
        raise ExactUnsupported(
            f"the model's generation config sets {changed}, which profile.method=exact does not "
            "model; use profile.method=sample"
        )
    processors = LogitsProcessorList()
    # as generate applies it: the configured one, else the checkpoint's generation config's
    penalty = sampling.repetition_penalty
    if penalty is None:
        penalty = getattr(config, "repetition_penalty", None)
    if penalty not in (None, 1.0):
        processors.append(RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=padding_lengths))
    if sampling.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k:
        processors.append(TopKLogitsWarper(sampling.top_k))
    if sampling.top_p < 1.0:
        processors.append(TopPLogitsWarper(sampling.top_p))
    return processors


def answer_tokens(tokenizer, accepted: list[list[str]]) -> list[list[tuple[int, ...]]]:
    """Per sample, the distinct token sequences of its accepted strings (two spellings that
    tokenise alike are one sequence; empty strings are dropped)."""
    sequences = []
    for strings in accepted:
        unique = dict.fromkeys(tuple(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in strings)
        sequences.append([seq for seq in unique if seq])
    return sequences


@torch.no_grad()
def pass_probabilities(
    model, processor, records: list[dict], accepted: list[list[str]], sampling: Sampling
) -> tuple[list[float], list[int], list[int]]:
    """Per record: P(one sampled response is accepted), prompt tokens and tokens forwarded.
    A record none of whose accepted strings tokenises to anything raises ValueError."""
    sequences = answer_tokens(processor.tokenizer, accepted)
    empty = [r["id"] for r, seqs in zip(records, sequences) if not seqs]
    if empty:
        raise ValueError(f"accepted answers tokenise to nothing for record(s) {empty[:3]}")
    stops = sorted(stop_token_ids(model))
    forced = teacher_forced(model, processor, records, sequences)
    rows, copies, device = forced.rows, forced.copies, model.device
    processors = logits_processors(model, sampling, forced.padding)

    # Step t predicts answer token t from the prompt and answer[:t]; step len(answer) predicts a stop token.
    log_p = torch.zeros(len(rows), device=device)
    for t in range(forced.steps.shape[1]):
        history = forced.history[:, : forced.prompt_width + t]
        scores = processors(history, forced.steps[:, t]).log_softmax(dim=-1)
        for i, seq in enumerate(rows):
            if t < len(seq):
                log_p[i] += scores[i, seq[t]]
            elif t == len(seq) and len(seq) < sampling.max_new_tokens:
                log_p[i] += torch.logsumexp(scores[i, stops], dim=0)
    probabilities = []
    for r, seqs in enumerate(sequences):
        fits = [j for j, seq in enumerate(seqs) if len(seq) <= sampling.max_new_tokens]
        probabilities.append(float(sum(log_p[r * copies + j].exp() for j in fits)) if fits else 0.0)
    prompt_tokens = forced.prompt_tokens
    forwarded = [n + sum(len(seq) for seq in seqs) for n, seqs in zip(prompt_tokens, sequences)]
    return probabilities, prompt_tokens, forwarded
