"""curate: split the training set into difficulty buckets by the profile.

Reads: 01_prepare/records/train.json, 03_profile/profile.jsonl.
Writes: 04_curate/{easy,medium,hard}.jsonl (ms-swift SFT records: `messages` + `images`,
ready for `swift sft` or TRL), assignments.jsonl (id, bucket, pass_count, k, noise: why each
sample is where it is), buckets.json (the proportions table), stats.json, DONE.

easy = all k responses correct, hard = none correct, medium = anything in between.

Example: dcsft curate
"""

from __future__ import annotations

from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.data.records import read_json, record_kinds, to_sft
from dcsft.errors import StageError
from dcsft.prepared import read_split
from dcsft.rundir import RunDir, fingerprint, kill_point, read_jsonl_complete, write_json, write_jsonl
from dcsft.stage import run_stage, upstream

BUCKETS = ("easy", "medium", "hard")


def bucket_of(pass_count: int, k: int) -> str:
    if not 0 <= pass_count <= k:
        raise ValueError(f"pass_count {pass_count} outside 0..{k}")
    return "easy" if pass_count == k else "hard" if pass_count == 0 else "medium"


def proportions(assignments: list[dict]) -> dict:
    total = len(assignments)
    counts = {b: sum(a["bucket"] == b for a in assignments) for b in BUCKETS}
    return {
        "total": total,
        **{
            b: {"count": n, "percent": round(100 * n / total, 1) if total else 0.0} for b, n in counts.items()
        },
    }


def curated_records(rundir: RunDir, bucket: str) -> list[dict]:
    """The training records curate put in `bucket` ("all": every curated record), in curate's order."""
    upstream(rundir.curate)
    path = rundir.assignments_file
    assignments = read_json(path)
    if not all(isinstance(a, dict) and "id" in a for a in assignments):
        raise StageError(f"{path}: expected one {{id, bucket, ...}} object per line; rerun `dcsft curate`")
    by_id = {r["id"]: r for r in read_split(rundir, "train")[0]}
    chosen = [a["id"] for a in assignments if bucket == "all" or a.get("bucket") == bucket]
    unknown = [i for i in chosen if i not in by_id]
    if unknown:
        raise StageError(
            f"{rundir.curate.root}: {len(unknown)} curated ids are not in {rundir.records('train')} "
            f"(first: {unknown[0]}); rerun `dcsft curate`"
        )
    return [by_id[i] for i in chosen]


def stage_fingerprint(cfg: StudyConfig) -> str:
    return fingerprint("curate", upstream(RunDir(cfg.run_dir).profile))


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
        assignments = [
            {
                "id": row["id"],
                "bucket": bucket_of(row["pass_count"], row["k"]),
                "pass_count": row["pass_count"],
                "k": row["k"],
                "noise": by_id[row["id"]].get("meta", {}).get("noise"),
                "kinds": record_kinds(by_id[row["id"]].get("meta", {})),
            }
            for row in rows
        ]
        for bucket in BUCKETS:
            write_jsonl(
                rundir.bucket_file(bucket),
                (to_sft(by_id[a["id"]]) for a in assignments if a["bucket"] == bucket),
            )
            kill_point("curate")
        write_jsonl(folder / "assignments.jsonl", assignments)
        table = proportions(assignments)
        write_json(folder / "buckets.json", table)
        what = " / ".join(f"{b} {table[b]['count']} ({table[b]['percent']}%)" for b in BUCKETS)
        return what, {"buckets": table, "kinds_by_bucket": kinds_by_bucket(assignments)}

    return run_stage(rundir.curate, stage_fingerprint(cfg), body)
