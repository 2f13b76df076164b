"""curate: split the training set into difficulty buckets by the profile.

Reads: 01_prepare/records/train.json, 03_profile/profile.jsonl.
Writes: 04_curate/assignments.jsonl (id, bucket, pass_count, k, pass_rate, noise,
kinds: why each sample is where it is; rule `graded` adds score_mean and score_spread),
buckets.json (the proportions table and the rule), stats.json, DONE, and
{easy,medium,hard}.jsonl: each bucket as ms-swift SFT records (`messages` + `images`, ready for
`swift sft`), an export that no dcsft stage reads. assignments.jsonl joined with prepare's records
(`dcsft.prepared.curated_records`) is the one source of what a bucket holds: train, export and the report read
it, so every record keeps its id and meta (the image size that clips a grounding box).

By `curate.rule` (bucket_of_row, the one definition; dcsft.compare uses it too): all-or-none
(the paper's) easy = all k responses correct, hard = none correct, medium = anything in between;
window: medium if the pass rate is strictly inside curate.window, else hard below, easy above;
graded: by the mean and spread of the k scores. A profile row with its own `bucket` keeps it.

Example: dcsft curate
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean, pstdev

from dcsft.config import CurateConfig, StudyConfig
from dcsft.data.records import record_kinds, to_sft
from dcsft.errors import StageError
from dcsft.prepared import read_split
from dcsft.rundir import RunDir, fingerprint, kill_point, read_jsonl_complete, write_json, write_jsonl
from dcsft.stage import run_stage, upstream

BUCKETS = ("easy", "medium", "hard")


def bucket_of(pass_count: int, k: int) -> str:
    if not 0 <= pass_count <= k:
        raise ValueError(f"pass_count {pass_count} outside 0..{k}")
    return "easy" if pass_count == k else "hard" if pass_count == 0 else "medium"


def scores_of(row: dict) -> list[float]:
    """The k scores of a profile row: its graded `scores` (each in [0, 1]), else its 0/1 `correct`."""
    scores = row.get("scores")
    scores = row["correct"] if scores is None else scores
    if not isinstance(scores, list) or not scores:
        raise ValueError(f"expected a non-empty list of scores, got {scores!r}")
    if not all(isinstance(x, int | float) and 0 <= x <= 1 for x in scores):
        raise ValueError(f"scores must be numbers in [0, 1], got {scores}")
    return scores


def spread_of(scores: list[float]) -> tuple[float, float]:
    """(mean, population std) of k scores, computed exactly: k equal scores spread 0, not 1e-17."""
    return float(mean(scores)), float(pstdev(scores))


def bucket_of_row(row: dict, rule: CurateConfig | None = None) -> str:
    """The bucket of one profile row by `rule` (curate.*; None: the default, all-or-none). A row
    that names its own `bucket` (profile method `loss`) keeps it: the rule does not apply."""
    if row.get("bucket") is not None:
        if row["bucket"] not in BUCKETS:
            raise ValueError(f"bucket {row['bucket']!r} is not one of {', '.join(BUCKETS)}")
        return row["bucket"]
    rule = rule or CurateConfig()
    if rule.rule == "graded":
        average, spread = spread_of(scores_of(row))
        if spread > rule.min_spread:
            return "medium"
        return "easy" if average >= 0.5 else "hard"
    bucket = bucket_of(row["pass_count"], row["k"])  # checks the counts
    if rule.rule == "all-or-none":
        return bucket
    low, high = rule.window
    rate = pass_rate(row)
    return "hard" if rate <= low else "easy" if rate >= high else "medium"


def pass_rate(row: dict) -> float:
    """A profile row's pass rate: its `pass_rate` (pass_count / k; `loss` rows: an estimate), else
    pass_count / k."""
    rate = row.get("pass_rate")
    return row["pass_count"] / row["k"] if rate is None else rate


def describe_rule(rule: CurateConfig) -> str:
    """The rule as the proportions table and stats.json state it, e.g. "window (0.1, 0.9)"."""
    if rule.rule == "window":
        return f"window ({rule.window[0]:g}, {rule.window[1]:g})"
    if rule.rule == "graded":
        return f"graded (min spread {rule.min_spread:g})"
    return rule.rule


def rule_of_run(rows: list[dict], rule: CurateConfig) -> str:
    """What bucketed these rows: the rule, or "profile" when every row names its own bucket."""
    explicit = sum(row.get("bucket") is not None for row in rows)
    if rows and explicit == len(rows):
        return "profile"
    return describe_rule(rule) + (f"; {explicit} bucketed by the profile" if explicit else "")


def assignment(row: dict, rule: CurateConfig) -> dict:
    """What curate records of one profile row beside its bucket: pass count, k, pass rate, and
    for rule `graded` the scores' mean and spread."""
    about = {
        "bucket": bucket_of_row(row, rule),
        "pass_count": row["pass_count"],
        "k": row["k"],
        "pass_rate": round(pass_rate(row), 6),
    }
    if rule.rule == "graded":
        # a row with its own bucket may have no draws to score (`loss` rows: correct = [])
        unscored = row.get("bucket") is not None and not (row.get("scores") or row.get("correct"))
        average, spread = (None, None) if unscored else spread_of(scores_of(row))
        about.update(
            score_mean=None if unscored else round(average, 6),
            score_spread=None if unscored else round(spread, 6),
        )
    return about


def proportions(assignments: list[dict]) -> dict:
    total = len(assignments)
    counts = {b: sum(a["bucket"] == b for a in assignments) for b in BUCKETS}
    return {
        "total": total,
        **{
            b: {"count": n, "percent": round(100 * n / total, 1) if total else 0.0} for b, n in counts.items()
        },
    }


def rule_part(rule: CurateConfig) -> tuple:
    """The rule's part of curate's fingerprint: none for the default, so that studies before the
    rule was a setting keep their curate stage."""
    if rule.rule == "all-or-none":
        return ()
    settings = {"window": rule.window} if rule.rule == "window" else {"min_spread": rule.min_spread}
    return ({"rule": rule.rule, **settings},)


def stage_fingerprint(cfg: StudyConfig) -> str:
    return fingerprint("curate", upstream(RunDir(cfg.run_dir).profile), *rule_part(cfg.curate))


def kinds_by_bucket(assignments: list[dict]) -> dict[str, dict[str, int]]:
    """kind -> bucket -> count, with "none" for samples of no kind (the embedded worlds know their kinds)."""
    counts: dict[str, dict[str, int]] = {}
    for a in assignments:
        for kind in a["kinds"] or ["none"]:
            counts.setdefault(kind, dict.fromkeys(BUCKETS, 0))[a["bucket"]] += 1
    counts.setdefault("none", dict.fromkeys(BUCKETS, 0))
    return {kind: counts[kind] for kind in [*sorted(set(counts) - {"none"}), "none"]}


def run(cfg: StudyConfig) -> dict:
    rundir = RunDir(cfg.run_dir)

    def body(folder: Path):
        records, _ = read_split(rundir, "train")
        by_id = {r["id"]: r for r in records}
        rows = read_jsonl_complete(rundir.profile_file)
        unknown = [row["id"] for row in rows if row["id"] not in by_id]
        if unknown:
            raise StageError(
                f"{rundir.profile_file}: {len(unknown)} profiled ids not in the training set "
                f"(first: {unknown[0]}); rerun `dcsft profile`"
            )
        assignments = []
        for number, row in enumerate(rows, start=1):
            try:
                about = assignment(row, cfg.curate)
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
                raise StageError(
                    f"{rundir.profile_file}: line {number} (id {row['id']}): no bucket under rule "
                    f"{describe_rule(cfg.curate)} ({type(err).__name__}: {err}); rerun `dcsft profile`"
                ) from None
            meta = by_id[row["id"]].get("meta", {})
            assignments.append(
                {"id": row["id"], **about, "noise": meta.get("noise"), "kinds": record_kinds(meta)}
            )
        for bucket in BUCKETS:
            write_jsonl(
                rundir.bucket_file(bucket),
                (to_sft(by_id[a["id"]]) for a in assignments if a["bucket"] == bucket),
            )
            kill_point("curate")
        write_jsonl(folder / "assignments.jsonl", assignments)
        table = {**proportions(assignments), "rule": rule_of_run(rows, cfg.curate)}
        write_json(folder / "buckets.json", table)
        what = " / ".join(f"{b} {table[b]['count']} ({table[b]['percent']}%)" for b in BUCKETS)
        what += "" if table["rule"] == "all-or-none" else f" by rule {table['rule']}"
        stats = {"buckets": table, "kinds_by_bucket": kinds_by_bucket(assignments), "rule": table["rule"]}
        return what, stats

    return run_stage(rundir.curate, stage_fingerprint(cfg), body)
