"""profile: how often the cold-started model answers each training sample correctly.

Reads: 01_prepare/records/train.json, 02_coldstart/model/.
Writes: 03_profile/profile.jsonl (one line per sample: id, solution, responses, correct,
pass_count, k, pass_rate, prompt_tokens, generated_tokens, forwarded_tokens; `exact` adds
p_correct and bucket_probabilities; `loss` adds bucket, answer_logprob, answer_prob,
answer_tokens and calibration, and keeps loss.jsonl and calibration.jsonl beside it),
stats.json (with the compute spent), DONE.
Paper: k = 8, temperature 0.9, top_p 1.0, top_k 50, at most 128 new tokens.

`profile.method`:
- sample (default, the paper's way): k sampled responses per sample, scored by the verifier.
  With `profile.shared_prefill` the image and prompt are encoded once and the k responses
  drawn from that cache, instead of once per response (same distribution, k x less prefill).
- adaptive: sample `profile.adaptive_round` responses per round and stop a sample as soon as
  it has a correct and a wrong one: it is medium whatever the remaining draws say. By default
  easy and hard samples still take all k draws, so buckets have the same distribution as
  `sample`. `profile.adaptive_settle: n` also stops a sample whose first n draws are all
  alike (settled easy / hard): fewer draws, but a sample with pass rate p that k draws would
  have made medium is settled hard with probability (1-p)^n - (1-p)^k (at most 1/4 at n = k/2);
  the benchmark measures the resulting bucket agreement. `k` in a row is the number of draws
  made, and pass_rate of a stopped sample is over those draws.
- exact: for verifiers with a finite accepted set, P(one sampled response is correct) from
  one teacher-forced pass (dcsft.models.exact); the row's k outcomes are then drawn as
  Bernoulli(p) with a per-sample seed (the same distribution as k rollouts) and the expected
  bucket probabilities p^k, 1 - p^k - (1-p)^k, (1-p)^k are stored too.
- loss: the gold answer's mean token log-probability (dcsft.models.loss) from one teacher-forced
  pass per sample, for any task. `profile.loss_calibration` samples (seeded) are also profiled
  with `sample`; their easy / medium / hard shares (all-or-none) become quantile thresholds on
  the score of the other samples: the lowest scores hard, the highest easy, in those shares
  (dcsft.profile_loss.loss_rows). Each row names its `bucket` (a calibration sample keeps its sampled one) and
  holds answer_logprob, answer_prob, answer_tokens and `calibration`; pass_rate is the
  calibration's pass rate at the sample's score quantile, pass_count round(pass_rate * k) kept
  inside the bucket. Pass 1 appends to 03_profile/loss.jsonl and the calibration to
  03_profile/calibration.jsonl, both resumable by batch; profile.jsonl is written at the end,
  atomically, from both, so an interrupted run ends with the same file.

Lines are appended and flushed per batch; an interrupted run continues after the last
complete batch (a torn last line is dropped), and per-batch seeds make the result the same
as an uninterrupted run. Under torchrun / accelerate launch the batches are shared between the
processes (batch i on rank i % WORLD_SIZE, see dcsft.distributed), with the same result.

Example: dcsft profile --set profile.method=exact
         dcsft profile --set profile.method=loss --set profile.loss_calibration=64
         torchrun --nproc_per_node 4 -m dcsft profile
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from dcsft import console
from dcsft.config import ProfileConfig, StudyConfig
from dcsft.data.rollouts import SOURCE as ROLLOUT_SOURCE
from dcsft.data.rollouts import (
    BuiltRecords,
    RolloutProfile,
    Rollouts,
    build_records,
    built_from_rollouts,
    import_rollouts,
    profile_row,
    read_rollouts,
    records_fingerprint,
    skip_line,
)
from dcsft.errors import DataError, StageError
from dcsft.models.exact import pass_probabilities
from dcsft.models.generate import (
    Sampling,
    at_default,
    prefill,
    prompt_inputs,
    respond,
    respond_prefilled,
    supports_shared_prefill,
)
from dcsft.models.loading import load_processor
from dcsft.models.loss import answer_logprobs
from dcsft.models.vllm_engine import load_generator
from dcsft.prepared import read_split, warn_skipped
from dcsft.profile_loss import profile_by_loss
from dcsft.resumable import batched_jsonl
from dcsft.rundir import STARTED, RunDir, Stage, fingerprint, read_json, read_jsonl, write_json, write_jsonl
from dcsft.stage import run_stage, upstream
from dcsft.tasks import get_task, profile_methods, verifier_version
from dcsft.tasks.base import Scored, correct, score_all


def stage_fingerprint(cfg: StudyConfig) -> str:
    """A sampled profile's: its cold start and settings; an imported one's: its training records
    and its rows, so that a study keeps it and another import rebuilds the stages after it."""
    rundir = RunDir(cfg.run_dir)
    if is_imported(rundir):
        return imported_fingerprint(rundir, read_jsonl(rundir.profile_file))
    return fingerprint(
        "profile",
        upstream(rundir.coldstart),
        cfg.profile.model_dump(exclude=unfingerprinted(cfg.profile)),
        cfg.task,
        verifier_version(cfg.task, cfg.verifier),
        cfg.seed,
    )


def unfingerprinted(p: ProfileConfig) -> set[str]:
    """Profile keys left out of its fingerprint: loss_calibration unless the method is `loss`, and
    the later generation settings at their default (generate.at_default)."""
    return (set() if p.method == "loss" else {"loss_calibration"}) | at_default(p)


def is_imported(rundir: RunDir) -> bool:
    """Whether the profile folder holds rollouts imported by `dcsft import-rollouts`."""
    try:
        return read_json(rundir.profile.root / "stats.json").get("method") == "imported"
    except (OSError, ValueError, AttributeError):
        return False


def imported_fingerprint(rundir: RunDir, rows: list[dict]) -> str:
    content = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return fingerprint("profile", "imported", upstream(rundir.prepare), content)


@dataclass
class Profiler:
    """Scores one batch of training samples with the configured method."""

    model: object
    processor: object
    task: object
    p: ProfileConfig
    seed: int

    def sampling(self, n: int) -> Sampling:
        return Sampling(
            do_sample=True,
            num_return_sequences=n,
            temperature=self.p.temperature,
            top_p=self.p.top_p,
            top_k=self.p.top_k,
            max_new_tokens=self.p.max_new_tokens,
            repetition_penalty=self.p.repetition_penalty,
        )

    def draw(self, batch: list[dict], n: int, batch_seed: int):
        return respond(
            self.model, self.processor, batch, self.sampling(n), self.seed, batch_seed, self.p.shared_prefill
        )

    def sample(self, batch: list[dict], batch_index: int) -> list[dict]:
        out = self.draw(batch, self.p.k, batch_index)
        return [
            self.row(r, responses, prompt, generated, forwarded)
            for r, responses, prompt, generated, forwarded in zip(
                batch, out.responses, out.prompt_tokens, out.generated_tokens, out.forwarded_tokens
            )
        ]

    def adaptive(self, batch: list[dict], batch_index: int) -> list[dict]:
        """Rounds of draws from one prefill of the batch, until every sample is medium or has k draws."""
        encoded = prefill(self.model, prompt_inputs(self.processor, batch, self.model.device))
        prompts = encoded.inputs["attention_mask"].sum(dim=1).tolist()
        state = [{"responses": [], "generated": 0, "forwarded": p - 1} for p in prompts]
        scored = [Scored([], 0) for _ in prompts]  # each sample's scores so far, kept for its row
        open_, done, round_ = list(range(len(batch))), 0, 0
        while open_ and done < self.p.k:
            n = min(self.p.adaptive_round, self.p.k - done)
            # Round seeds are disjoint from `sample`'s batch seeds and from other batches' rounds.
            out = respond_prefilled(
                self.model,
                self.processor,
                encoded,
                open_,
                self.sampling(n),
                self.seed,
                (batch_index + 1) * 1_000 + round_,
            )
            for i, responses, generated, forwarded in zip(
                open_, out.responses, out.generated_tokens, out.forwarded_tokens
            ):
                s = state[i]
                s["responses"] += responses
                new = score_all(self.task, responses, [batch[i]] * n)
                scored[i] = Scored(scored[i].scores + new.scores, scored[i].failures + new.failures)
                s["generated"] += generated
                s["forwarded"] += forwarded
            done, round_ = done + n, round_ + 1
            open_ = [i for i in open_ if not self.decided(scored[i]) and not self.settled(done)]
        return [
            self.row(r, s["responses"], p, s["generated"], s["forwarded"], done_scores)
            for r, s, p, done_scores in zip(batch, state, prompts, scored)
        ]

    def decided(self, scored: Scored) -> bool:
        """Whether a sample's draws so far hold a correct and a wrong answer: medium, whatever follows."""
        return len({correct(self.task, value) for value in scored.scores}) == 2

    def settled(self, draws: int) -> bool:
        """Whether a sample with `draws` draws, all alike, may stop as easy / hard (adaptive_settle)."""
        return 0 < self.p.adaptive_settle <= draws

    def exact(self, batch: list[dict], batch_index: int) -> list[dict]:
        accepted = [self.task.accepted_answers(r) for r in batch]
        try:
            probabilities, prompts, forwarded = pass_probabilities(
                self.model, self.processor, batch, accepted, self.sampling(1)
            )
        except ValueError as err:  # ExactUnsupported or answers that tokenise to nothing
            raise StageError(f"profile.method=exact: {err}") from None
        rows = []
        k = self.p.k
        for r, p_correct, prompt, tokens in zip(batch, probabilities, prompts, forwarded):
            rng = random.Random(f"{self.seed}-{r['id']}")
            correct = [int(rng.random() < p_correct) for _ in range(k)]
            rows.append(
                {
                    **profile_row(r, [], correct, prompt, 0, tokens),
                    "p_correct": round(p_correct, 6),
                    "bucket_probabilities": {
                        "easy": round(p_correct**k, 6),
                        "medium": round(1 - p_correct**k - (1 - p_correct) ** k, 6),
                        "hard": round((1 - p_correct) ** k, 6),
                    },
                }
            )
        return rows

    def row(
        self,
        record: dict,
        responses: list[str],
        prompt: int,
        generated: int,
        forwarded: int,
        scored: Scored | None = None,
    ) -> dict:
        """A sampled sample's profile row: each response's score and verdict by the task's
        verifier (a failing verifier scores 0 and is counted in `verifier_failures`); `scored`:
        the responses' scores where the caller has them already (adaptive scores each round)."""
        if scored is None:
            scored = score_all(self.task, responses, [record] * len(responses))
        verdicts = [correct(self.task, value) for value in scored.scores]
        return {
            **profile_row(record, responses, verdicts, prompt, generated, forwarded),
            "scores": [round(value, 6) for value in scored.scores],
            **({"verifier_failures": scored.failures} if scored.failures else {}),
        }

    def loss(self, batch: list[dict], batch_index: int) -> list[dict]:
        """Pass 1 of `loss`: each sample's gold answer scored in one teacher-forced pass; its bucket
        comes at the end, from every sample's score (loss_rows)."""
        try:
            scores = answer_logprobs(self.model, self.processor, batch, [self.task.answer(r) for r in batch])
        except ValueError as err:  # an answer that tokenises to nothing
            raise StageError(f"profile.method=loss: {err}") from None
        return [
            {
                "id": r["id"],
                "solution": r["solution"],
                "answer_logprob": round(s.mean_logprob, 6),
                "answer_prob": float(f"{s.prob:.6g}"),
                "answer_tokens": s.tokens,
                "prompt_tokens": s.prompt_tokens,
                "forwarded_tokens": s.forwarded_tokens,
            }
            for r, s in zip(batch, scores)
        ]


def compute(rows: list[dict]) -> dict:
    return {
        "tokens_forwarded": sum(r["forwarded_tokens"] for r in rows),
        "tokens_generated": sum(r["generated_tokens"] for r in rows),
        "samples_seen": len(rows),
        "responses": sum(len(r["responses"]) for r in rows),
    }


def check_method(cfg: StudyConfig) -> None:
    supported = profile_methods(get_task(cfg.task))
    if cfg.profile.method not in supported:
        raise StageError(
            f"profile.method={cfg.profile.method}: the {cfg.task} task's verifier has no finite set of "
            f"accepted answers; methods it supports: {', '.join(supported)}"
        )


def run(cfg: StudyConfig) -> dict:
    rundir = RunDir(cfg.run_dir)
    p = cfg.profile
    check_method(cfg)

    def body(folder: Path):
        records, skipped = read_split(rundir, "train")

        @functools.cache  # `loss` scores with two of its methods: one model load
        def profiler():
            model = load_generator(
                p.engine,
                rundir.coldstart_model,
                cfg.model,
                seed=cfg.seed,
                engine_args=p.engine_args,
                setting="profile.engine",
            )
            profiler = Profiler(
                model,
                load_processor(rundir.coldstart_model, cfg.model),
                get_task(cfg.task, cfg.verifier),
                p,
                cfg.seed,
            )
            if p.method != "sample" and not supports_shared_prefill(profiler.model):
                raise StageError(
                    f"profile.method={p.method} needs a Qwen-VL model (it reuses the prompt's KV cache); "
                    f"{type(profiler.model).__name__} supports profile.method=sample"
                )
            return profiler

        extra = {}
        if p.method == "loss":
            rows, start, extra = profile_by_loss(folder, rundir.profile_file, records, p, cfg.seed, profiler)
        else:
            rows, start = batched_jsonl(
                rundir.profile_file,
                records,
                p.batch_size,
                "profile",
                f"profiling ({p.method}, k={p.k})",
                lambda: getattr(profiler(), p.method),
            )
        counts = [r["pass_count"] / r["k"] for r in rows]
        stats = {
            "samples": len(rows),
            "method": p.method,
            "k": p.k,
            "temperature": p.temperature,
            "skipped": skipped,
            "resumed_from": start,
            "pass_count_histogram": {
                str(c): sum(r["pass_count"] == c and r["k"] == p.k for r in rows) for c in range(p.k + 1)
            },
            "mean_pass_rate": round(sum(counts) / len(counts), 4),
            "settled": sum(r["k"] < p.k and r["pass_count"] in (0, r["k"]) for r in rows),
            "verifier_failures": sum(r.get("verifier_failures", 0) for r in rows),
            **compute(rows),
            **extra,
        }
        return (
            f"{p.method}: {stats['responses']} responses for {len(rows)} training samples, "
            f"mean pass rate {stats['mean_pass_rate']}",
            stats,
        )

    return run_stage(rundir.profile, stage_fingerprint(cfg), body)


def import_rollout_files(
    cfg: StudyConfig, files: list[Path] | Rollouts, force: bool = False, image_root: Path | None = None
) -> RolloutProfile:
    """`dcsft import-rollouts`: the authors' per-draw rollout files become this run's profile
    (same rows as a sampled one); a profile dcsft sampled itself is replaced only with `force`.
    The profile's fingerprint is its content's, so stages built on another profile rebuild.

    A run directory without prepared training records (no finished 01_prepare), or whose records
    an earlier import built, gets its training records from the rollouts themselves
    (dcsft.data.rollouts.build_records), written as 01_prepare's output before the profile;
    `image_root` is where their images are looked up. Everything is read and checked before
    anything is written."""
    started = time.time()
    rundir = RunDir(cfg.run_dir)
    stage = rundir.profile
    rollouts = files if isinstance(files, Rollouts) else read_rollouts(files)
    built = None
    if rundir.prepare.done_fingerprint() is None or built_from_rollouts(rundir):
        built = build_records(rollouts, cfg.task, image_root, get_task(cfg.task).record_problem)
        records, skipped = built.records, len(built.skipped)
        profile = import_rollouts(rollouts, records, built.by_key, built.left_out)
        profile.built, profile.left_out = len(records), [skip_line(s) for s in built.skipped]
    else:
        upstream(rundir.prepare)
        records, skipped = read_split(rundir, "train")
        profile = import_rollouts(rollouts, records)
        if not profile.rows:
            first = f" (first: {profile.unmatched[0]})" if profile.unmatched else ""
            raise DataError(
                f"none of the rollout samples matched a training record of {rundir.records('train')}{first}"
            )
    # the same records already prepared (or matched to prepared ones): the profile's fingerprint is known
    known = built is None or rundir.prepare.is_done(records_fingerprint(cfg.task, built.records))
    check_replaceable_profile(stage, imported_fingerprint(rundir, profile.rows) if known else None, force)
    if built is not None:  # written first: the profile's fingerprint is built on prepare's
        check_replaceable_prepare(rundir, records_fingerprint(cfg.task, built.records), force)
        write_built_prepare(cfg, rundir, rollouts, built, round(time.time() - started, 1))
    current = imported_fingerprint(rundir, profile.rows)
    if stage.done_fingerprint() not in (None, current):
        console.warn(
            "the profile changed: the stages after it (curate, train, evaluate, report) will be rebuilt"
        )
    (stage.root / STARTED).unlink(missing_ok=True)  # always a fresh folder: no file of an older profile stays
    stage.begin(current)
    write_jsonl(rundir.profile_file, profile.rows)
    counts = [r["pass_count"] / r["k"] for r in profile.rows]
    stats = {
        "samples": len(profile.rows),
        "method": "imported",
        "k": profile.k,
        "files": [str(Path(f).absolute()) for f in rollouts.files],
        "skipped": skipped,
        "resumed_from": 0,
        "unmatched": len(profile.unmatched),
        "unprofiled": len(profile.unprofiled),
        "label_mismatches": len(profile.label_mismatches),
        "pass_count_histogram": {
            str(c): sum(r["pass_count"] == c for r in profile.rows) for c in range(profile.k + 1)
        },
        "mean_pass_rate": round(sum(counts) / len(counts), 4),
        "samples_seen": len(profile.rows),
        "responses": sum(len(r["responses"]) for r in profile.rows),
        "seconds": round(time.time() - started, 1),
    }
    stage.finish(current, stats)
    return profile


def check_replaceable_profile(stage: Stage, current: str | None, force: bool) -> None:
    """Imported rollouts may replace an imported profile or a stopped import of the same rows
    (`current`: their fingerprint, where known); a profile dcsft sampled, or a partial one, only
    with `force`."""
    started = stage.root / STARTED
    ours = current is not None and started.exists() and started.read_text() == current
    if (stage.marker.exists() or started.exists()) and not (force or ours):
        stats = read_json(stage.root / "stats.json") if (stage.root / "stats.json").exists() else {}
        if stats.get("method") != "imported":
            what = (
                f"a profile dcsft sampled ({stats['method']})" if "method" in stats else "a partial profile"
            )
            raise StageError(
                f"{stage.root} holds {what}; pass --force to replace it with the imported rollouts"
            )


def check_replaceable_prepare(rundir: RunDir, current: str, force: bool) -> None:
    """Records built from rollouts may take 01_prepare's place when it is empty, holds records an
    import built, or holds a stopped import of the same records; a partial `dcsft prepare` only
    with `force`."""
    prepare = rundir.prepare
    started = prepare.root / STARTED
    partial = started.exists() and prepare.done_fingerprint() is None and started.read_text() != current
    if partial and not force:
        raise StageError(
            f"{prepare.root} holds a partial `dcsft prepare`; pass --force to replace it with training "
            f"records built from the rollouts (or finish it with `dcsft prepare` first)"
        )


def write_built_prepare(
    cfg: StudyConfig, rundir: RunDir, rollouts: Rollouts, built: BuiltRecords, seconds: float
) -> None:
    """01_prepare as `dcsft prepare` leaves it, from training records built from rollouts:
    records/train.json, skipped.jsonl, stats.json (`source: rollouts`, the task, and for
    classification the class names) and DONE, whose fingerprint is the records' content
    (dcsft.data.rollouts.built_fingerprint: what prepare and status take as current). The same
    records again leave the folder as it is."""
    stage = rundir.prepare
    current = records_fingerprint(cfg.task, built.records)
    if stage.is_done(current):
        return
    if stage.done_fingerprint() is not None:
        console.warn("the training records changed: the stages after them will be rebuilt")
    stage.begin(current)
    write_json(rundir.records("train"), built.records)
    write_jsonl(
        stage.root / "skipped.jsonl",
        [{"split": "train", **{k: s[k] for k in ("file", "index", "id", "reason")}} for s in built.skipped],
    )
    warn_skipped([skip_line(s) for s in built.skipped], f"({stage.root / 'skipped.jsonl'})")
    stats = {
        "task": cfg.task,
        "source": ROLLOUT_SOURCE,
        "files": [str(Path(f).absolute()) for f in rollouts.files],
        "records": {"train": len(built.records)},
        "noise": {},
        "skipped": {"train": len(built.skipped)},
        "seconds": seconds,
    }
    split_stats = getattr(get_task(cfg.task), "split_stats", None)
    stats.update(split_stats(built.records) if split_stats else {})
    stage.finish(current, stats)
