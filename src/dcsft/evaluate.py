"""evaluate: greedy answers on the ID split and every OOD split, for every model of the study.

Reads: 01_prepare/records/<split>.json; the base model (00_pretrain/base.json), 02_coldstart/model/ and each
05_train/<method>/seed<s>/adapter/ (merged into the cold-started model).
Writes: 06_evaluate/<model>/[seed<s>/]<split>.jsonl (id, solution, response, correct),
scores.json ({split: {accuracy, correct, n, skipped}}), stats.json, DONE.
Predictions are appended a batch at a time; a killed run resumes after its last whole batch.
Under torchrun / accelerate launch the batches are shared between the processes (batch i on
rank i % WORLD_SIZE, see dcsft.distributed), with the same predictions.

Example: dcsft evaluate --set evaluate.batch_size=64
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcsft import distributed
from dcsft.config import NOT_IN_FINGERPRINT, StudyConfig
from dcsft.data.splits import eval_splits
from dcsft.models.generate import Sampling, at_default, respond
from dcsft.models.loading import load_processor
from dcsft.models.vllm_engine import load_generator
from dcsft.prepared import read_split
from dcsft.pretrain import resolved_base
from dcsft.resumable import batched_jsonl
from dcsft.rundir import RunDir, fingerprint, read_json, read_jsonl, write_json
from dcsft.stage import run_stage, upstream
from dcsft.tasks import get_task, verifier_version
from dcsft.tasks.base import Task, correct, score


def accuracy(rows: list[dict]) -> float:
    return round(100 * sum(r["correct"] for r in rows) / len(rows), 2) if rows else 0.0


@dataclass(frozen=True)
class ModelToEvaluate:
    name: str
    seed: int | None  # training seed; None for base and coldstart
    source: str  # model folder or hub id
    adapter: str | None
    identity: str  # what the evaluation's fingerprint depends on

    @property
    def title(self) -> str:
        return self.name if self.seed is None else f"{self.name} seed {self.seed}"


def base_and_coldstart(cfg: StudyConfig) -> list[ModelToEvaluate]:
    rundir = RunDir(cfg.run_dir)
    coldstart = upstream(rundir.coldstart)
    base, identity = resolved_base(cfg)
    return [
        ModelToEvaluate("base", None, base, None, identity),
        ModelToEvaluate("coldstart", None, str(rundir.coldstart_model), None, coldstart),
    ]


def trained_model(cfg: StudyConfig, method: str, seed: int) -> ModelToEvaluate | None:
    """The evaluation of one training run; None if its training set was empty (n/a)."""
    rundir = RunDir(cfg.run_dir)
    stage = rundir.train(method, seed)
    trained = upstream(stage)
    if read_json(stage.root / "stats.json").get("n_a"):
        return None
    return ModelToEvaluate(
        method, seed, str(rundir.coldstart_model), str(rundir.adapter(method, seed)), trained
    )


def model_of(cfg: StudyConfig, name: str, seed: int | None) -> ModelToEvaluate | None:
    """The evaluation of model `name`: base, coldstart, or a method with its training seed."""
    if seed is None:
        return next(spec for spec in base_and_coldstart(cfg) if spec.name == name)
    return trained_model(cfg, name, seed)


def models_to_evaluate(cfg: StudyConfig) -> list[ModelToEvaluate]:
    trained = [trained_model(cfg, method, seed) for method in cfg.train.methods for seed in cfg.train_seeds]
    return base_and_coldstart(cfg) + [spec for spec in trained if spec is not None]


def stage_fingerprint(cfg: StudyConfig, spec: ModelToEvaluate) -> str:
    return fingerprint(
        "evaluate",
        spec.identity,
        upstream(RunDir(cfg.run_dir).prepare),
        cfg.evaluate.model_dump(exclude=at_default(cfg.evaluate)),
        cfg.model.model_dump(exclude=NOT_IN_FINGERPRINT),
        cfg.task,
        verifier_version(cfg.task, cfg.verifier),
    )


def evaluate_model(cfg: StudyConfig, spec: ModelToEvaluate) -> dict:
    rundir = RunDir(cfg.run_dir)
    task = get_task(cfg.task, cfg.verifier, cfg.evaluate.frame)
    sampling = Sampling(
        do_sample=False,
        max_new_tokens=cfg.evaluate.max_new_tokens,
        repetition_penalty=cfg.evaluate.repetition_penalty,
    )
    current = stage_fingerprint(cfg, spec)

    def body(folder: Path):
        splits = {split: read_split(rundir, split) for split in eval_splits(cfg)}
        loaded = []  # the model, loaded on the first split that has batches left

        def scorer():
            if not loaded:
                model = load_generator(
                    cfg.evaluate.engine,
                    spec.source,
                    cfg.model,
                    spec.adapter,
                    seed=cfg.seed,
                    engine_args=cfg.evaluate.engine_args,
                    setting="evaluate.engine",
                )
                loaded.append((model, load_processor(spec.source, cfg.model)))
            model, processor = loaded[0]

            def score_batch(batch: list[dict], index: int) -> list[dict]:
                generated = respond(model, processor, batch, sampling, cfg.seed, index)
                return [score_row(task, r, resp[0]) for r, resp in zip(batch, generated.responses)]

            return score_batch

        for split, (records, _) in splits.items():
            batched_jsonl(
                folder / f"{split}.jsonl",
                records,
                cfg.evaluate.batch_size,
                "evaluate",
                f"evaluating {spec.title} on {split}",
                scorer,
            )
        scores = {}
        for split, (records, skipped) in splits.items():
            rows = read_jsonl(folder / f"{split}.jsonl")
            scores[split] = {
                "accuracy": accuracy(rows),
                "correct": sum(r["correct"] for r in rows),
                "n": len(rows),
                "skipped": skipped,
                **task_stats(task, rows, records),
            }
        if distributed.is_main():
            write_json(folder / "scores.json", scores)
        what = f"{spec.title}: " + ", ".join(f"{s} {v['accuracy']}% (n={v['n']})" for s, v in scores.items())
        return what, {"scores": scores}

    return run_stage(rundir.evaluate(spec.name, spec.seed), current, body)


def score_row(task: Task, record: dict, response: str) -> dict:
    """One evaluated response: its score, whether it is correct, and whether the verifier failed
    on it (raised or gave no score in [0, 1]: scored 0 and counted)."""
    value, failed = score(task, response, record)
    return {
        "id": record["id"],
        "solution": record["solution"],
        "response": response,
        "score": round(value, 6),
        "correct": correct(task, value),
        **({"verifier_failed": True} if failed else {}),
    }


def task_stats(task: Task, rows: list[dict], records: list[dict] | None = None) -> dict:
    """Responses that give no answer the task can parse (grounding: no well-formed box),
    responses the verifier failed on, and, given the split's records, the task's own facts about
    the responses (`Task.response_stats`, e.g. reasoning's `format_kept`), beside the score."""
    stats = {
        "unparsable": sum(task.parse(r["response"]) is None for r in rows),
        "verifier_failures": sum(r.get("verifier_failed", False) for r in rows),
    }
    if records is not None:
        by_id = {r["id"]: r for r in records}
        stats.update(task.response_stats([r["response"] for r in rows], [by_id[r["id"]] for r in rows]))
    return stats


def run(cfg: StudyConfig) -> list[dict]:
    return [evaluate_model(cfg, spec) for spec in models_to_evaluate(cfg)]
