"""evaluate: greedy answers on the ID split and every OOD split, for every model of the study.

Reads: 01_prepare/records/<split>.json; the base model, 02_coldstart/model/ and each
05_train/<method>/seed<s>/adapter/ (merged into the cold-started model).
Writes: 06_evaluate/<model>/[seed<s>/]<split>.jsonl (id, solution, response, correct),
scores.json ({split: {accuracy, correct, n, skipped}}), stats.json, DONE.
A split whose predictions file exists is not evaluated again when the stage resumes.

Example: dcsft evaluate --set evaluate.batch_size=64
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.console import progress
from dcsft.models.base import resolve_base
from dcsft.models.generate import Sampling, respond_batches
from dcsft.models.loading import load_model, load_processor
from dcsft.data.splits import eval_splits
from dcsft.rundir import RunDir, fingerprint, read_json, read_jsonl, write_json, write_jsonl
from dcsft.stage import read_split, run_stage, upstream
from dcsft.tasks import get_task


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


def models_to_evaluate(cfg: StudyConfig) -> list[ModelToEvaluate]:
    rundir = RunDir(cfg.run_dir)
    coldstart = upstream(rundir.coldstart, "coldstart")  # before resolve_base, which may pretrain
    base, identity = resolve_base(cfg)
    models = [ModelToEvaluate("base", None, base, None, identity),
              ModelToEvaluate("coldstart", None, str(rundir.coldstart_model), None, coldstart)]
    for method in cfg.train.methods:
        for seed in cfg.train_seeds:
            stage = rundir.train(method, seed)
            trained = upstream(stage, "train")
            if not read_json(stage.root / "stats.json").get("n_a"):
                models.append(ModelToEvaluate(method, seed, str(rundir.coldstart_model),
                                              str(rundir.adapter(method, seed)), trained))
    return models


def evaluate_model(cfg: StudyConfig, spec: ModelToEvaluate) -> dict:
    rundir = RunDir(cfg.run_dir)
    task = get_task(cfg.task)
    sampling = Sampling(do_sample=False, max_new_tokens=cfg.evaluate.max_new_tokens)
    current = fingerprint("evaluate", spec.identity, upstream(rundir.prepare, "prepare"), cfg.evaluate.model_dump(),
                          cfg.model.model_dump(), cfg.task)

    def body(folder: Path):
        splits = {split: read_split(rundir, split) for split in eval_splits(cfg)}
        todo = [s for s in splits if not (folder / f"{s}.jsonl").exists()]
        if todo:
            model = load_model(spec.source, cfg.model, spec.adapter)
            processor = load_processor(spec.source, cfg.model)
            with progress(f"evaluating {spec.title}", sum(len(splits[s][0]) for s in todo)) as advance:
                for split in todo:
                    rows = []
                    for batch, generated in respond_batches(model, processor, splits[split][0], sampling,
                                                            cfg.evaluate.batch_size, cfg.seed):
                        rows += [{"id": r["id"], "solution": r["solution"], "response": resp[0],
                                  "correct": int(task.score(resp[0], r["solution"]))}
                                 for r, resp in zip(batch, generated.responses)]
                        advance(len(batch))
                    write_jsonl(folder / f"{split}.jsonl", rows)
        scores = {}
        for split, (_, skipped) in splits.items():
            rows = read_jsonl(folder / f"{split}.jsonl")
            scores[split] = {"accuracy": accuracy(rows), "correct": sum(r["correct"] for r in rows),
                             "n": len(rows), "skipped": skipped}
        write_json(folder / "scores.json", scores)
        what = f"{spec.title}: " + ", ".join(f"{s} {v['accuracy']}% (n={v['n']})" for s, v in scores.items())
        return what, {"scores": scores}

    return run_stage("evaluate", rundir.evaluate(spec.name, spec.seed), current, body)


def run(cfg: StudyConfig) -> list[dict]:
    return [evaluate_model(cfg, spec) for spec in models_to_evaluate(cfg)]
