"""The gold answer's log-probability under the model, from one teacher-forced pass (profile method `loss`).

Each record's prompt (image and question, through the chat template, as `generate` sees it) is
encoded once and its gold answer forwarded after it (dcsft.models.generate.teacher_forced), a
batch at a time. The answer is scored as SFT trains on it: its tokens and then the end of the
turn, at temperature 1 with no truncation (the model's own distribution, not the sampling one).
Per record:
- `logprob`: the sum of log P(token | prompt, answer before it) over the answer's tokens, plus
  log P(stop) after them (the summed probability of the generation config's stop tokens);
- `mean_logprob`: that sum over answer tokens + 1, i.e. minus the record's mean SFT
  cross-entropy on the answer; higher is easier;
- `prob`: exp(logprob), the probability that one response at temperature 1 is exactly the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dcsft.models.generate import stop_token_ids, teacher_forced


@dataclass(frozen=True)
class AnswerScore:
    logprob: float
    tokens: int  # the answer's tokens (the stop after them is scored too, not counted here)
    prompt_tokens: int
    forwarded_tokens: int  # prompt + answer

    @property
    def mean_logprob(self) -> float:
        return self.logprob / (self.tokens + 1)

    @property
    def prob(self) -> float:
        return float(torch.tensor(self.logprob, dtype=torch.float64).exp())


@torch.no_grad()
def answer_logprobs(model, processor, records: list[dict], answers: list[str]) -> list[AnswerScore]:
    """Per record, its answer's log-probability after its prompt (see the module docstring). An
    answer that tokenises to nothing raises ValueError naming the record."""
    sequences = [tuple(processor.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
    empty = [r["id"] for r, seq in zip(records, sequences) if not seq]
    if empty:
        raise ValueError(f"the gold answer tokenises to nothing for record(s) {empty[:3]}")
    forced = teacher_forced(model, processor, records, [[seq] for seq in sequences])
    log_p = forced.steps.log_softmax(dim=-1)
    stops = torch.tensor(sorted(stop_token_ids(model)), device=log_p.device)
    scores = []
    for i, (seq, prompt) in enumerate(zip(sequences, forced.prompt_tokens)):
        tokens = log_p[i, torch.arange(len(seq)), torch.tensor(seq, device=log_p.device)]
        stop = torch.logsumexp(log_p[i, len(seq), stops], dim=0)
        total = float(tokens.double().sum() + stop.double())
        scores.append(AnswerScore(total, len(seq), prompt, prompt + len(seq)))
    return scores
