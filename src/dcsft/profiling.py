"""profile: sample k responses per training sample from the cold-started model and score them.

Reads: 01_prepare/records/train.json, 02_coldstart/model/.
Writes: 03_profile/profile.jsonl (one line per sample: id, solution, responses, correct,
pass_count, k, pass_rate, prompt_tokens, generated_tokens), stats.json (with the compute
spent: tokens forwarded and generated), DONE.
Paper: k = 8, temperature 0.9, top_p 1.0, top_k 50, at most 128 new tokens.

Lines are appended and flushed per batch; an interrupted run continues after the last
complete line (a torn last line is dropped), and the per-batch seed makes the result the
same as an uninterrupted run.

Example: dcsft profile --set profile.k=16
"""

from __future__ import annotations

import json
from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.console import progress
from dcsft.models.generate import Sampling, respond_batches
from dcsft.models.loading import load_model, load_processor
from dcsft.rundir import RunDir, fingerprint, read_jsonl_complete
from dcsft.stage import read_split, run_stage, upstream
from dcsft.tasks import get_task


def stage_fingerprint(cfg: StudyConfig) -> str:
    rundir = RunDir(cfg.run_dir)
    return fingerprint("profile", upstream(rundir.coldstart, "coldstart"), cfg.profile.model_dump(), cfg.task,
                       cfg.seed)


def profile_row(record: dict, responses: list[str], prompt_tokens: int, generated_tokens: int, task) -> dict:
    correct = [int(task.score(r, record["solution"])) for r in responses]
    return {"id": record["id"], "solution": record["solution"], "responses": responses, "correct": correct,
            "pass_count": sum(correct), "k": len(correct), "pass_rate": sum(correct) / len(correct),
            "prompt_tokens": prompt_tokens, "generated_tokens": generated_tokens}


def compute(rows: list[dict]) -> dict:
    """Tokens through the model: each of the k draws prefills the prompt (HF generate expands the
    batch before the prefill) and forwards each generated token once."""
    generated = sum(row["generated_tokens"] for row in rows)
    return {"tokens_forwarded": sum(row["prompt_tokens"] * row["k"] for row in rows) + generated,
            "tokens_generated": generated, "samples_seen": len(rows)}


def run(cfg: StudyConfig) -> dict:
    rundir = RunDir(cfg.run_dir)
    task = get_task(cfg.task)
    p = cfg.profile
    sampling = Sampling(do_sample=True, num_return_sequences=p.k, temperature=p.temperature, top_p=p.top_p,
                        top_k=p.top_k, max_new_tokens=p.max_new_tokens)

    def body(folder: Path):
        records, skipped = read_split(rundir, "train")
        out = rundir.profile_file
        rows = read_jsonl_complete(out)
        # Resume at a batch boundary: seeds are per batch, so the rest comes out as if never stopped.
        start = len(rows) // p.batch_size * p.batch_size
        if start != len(rows):
            out.write_text("".join(json.dumps(row) + "\n" for row in rows[:start]))
        if start < len(records):
            model = load_model(rundir.coldstart_model, cfg.model)
            processor = load_processor(rundir.coldstart_model, cfg.model)
            with progress(f"profiling k={p.k}", len(records)) as advance, out.open("a") as sink:
                advance(start)
                for batch, generated in respond_batches(model, processor, records, sampling, p.batch_size,
                                                        cfg.seed, first=start):
                    sink.write("".join(json.dumps(profile_row(r, *row, task)) + "\n" for r, row in
                                       zip(batch, zip(generated.responses, generated.prompt_tokens,
                                                      generated.generated_tokens))))
                    sink.flush()
                    advance(len(batch))
        rows = read_jsonl_complete(out)
        counts = [row["pass_count"] for row in rows]
        stats = {"samples": len(rows), "k": p.k, "skipped": skipped, "resumed_from": start,
                 "pass_count_histogram": {str(c): counts.count(c) for c in range(p.k + 1)},
                 "mean_pass_rate": round(sum(counts) / (p.k * len(counts)), 4), **compute(rows)}
        return f"{p.k} responses for each of {len(rows)} training samples, mean pass rate {stats['mean_pass_rate']}", stats

    return run_stage("profile", rundir.profile, stage_fingerprint(cfg), body)
