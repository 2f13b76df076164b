"""A user task end to end: examples/custom_task (counting shapes, partial credit) through the CLI,
as its README runs it (`PYTHONPATH=examples/custom_task dcsft study examples/custom_task/study.yaml`),
on records drawn by its make_records.py at the smallest sizes. Nothing under src/ knows the task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "custom_task"
SIZES = {"coldstart": 100, "train": 48, "test": 20, "outline": 20}
METHODS = ["sft", "sft-m", "grpo"]
SMALLEST = [
    f"train.methods=[{','.join(METHODS)}]",
    "train.steps=6",
    "grpo.steps=3",
    "profile.batch_size=16",
    "evaluate.batch_size=32",
]
STAGES = ["00_pretrain", "01_prepare", "02_coldstart", "03_profile", "04_curate", "07_report"]


def dcsft(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a process of its own, with the example's folder on PYTHONPATH as a user runs it."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DCSFT_CACHE": str(cwd / "cache"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLE), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "dcsft", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("counting")
    sizes = [arg for split, n in SIZES.items() for arg in (f"--{split}", str(n))]
    drawn = subprocess.run(
        [sys.executable, str(EXAMPLE / "make_records.py"), "--out", str(root / "records"), *sizes],
        capture_output=True,
        text=True,
    )
    assert drawn.returncode == 0, drawn.stderr
    overrides = [arg for kv in [f"data.root={root / 'records'}", *SMALLEST] for arg in ("--set", kv)]
    args = ["study", EXAMPLE / "study.yaml", "--run-dir", root / "run", *overrides]
    first = dcsft(*args, cwd=root)
    assert first.returncode == 0, first.stdout + first.stderr
    return root / "run", args, root


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.e2e
def test_every_stage_finished_and_every_model_was_evaluated(study):
    run = study[0]
    for stage in STAGES:
        assert (run / stage / "DONE").is_file(), stage
    for method in METHODS:
        assert (run / "05_train" / method / "seed0" / "DONE").is_file(), method
    for folder in [run / "06_evaluate" / "base", run / "06_evaluate" / "coldstart"] + [
        run / "06_evaluate" / m / "seed0" for m in METHODS
    ]:
        scores = json.loads((folder / "scores.json").read_text())
        assert set(scores) == {"test", "outline"}, folder  # the ID split of a user task is `test`
        assert all(s["n"] == 20 and 0 <= s["accuracy"] <= 100 for s in scores.values()), folder
    prepared = json.loads((run / "01_prepare" / "stats.json").read_text())
    assert prepared["records"] == SIZES
    # Counting.split_stats over every split: make_records cycles the counts 1..5 in each
    expected = Counter(1 + i % 5 for size in SIZES.values() for i in range(size))
    assert prepared["counts"] == {str(n): expected[n] for n in sorted(expected)}


@pytest.mark.e2e
def test_buckets_partition_the_training_set(study):
    run = study[0]
    buckets = json.loads((run / "04_curate" / "buckets.json").read_text())
    counts = [buckets[b]["count"] for b in ("easy", "medium", "hard")]
    assert sum(counts) == buckets["total"] == SIZES["train"]
    assert [len(read_jsonl(run / "04_curate" / f"{b}.jsonl")) for b in ("easy", "medium", "hard")] == counts


@pytest.mark.e2e
def test_profile_scores_carry_the_verifiers_partial_credit(study, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from counting import Counting

    run, task = study[0], Counting()
    records = {r["id"]: r for r in json.loads((run / "01_prepare" / "records" / "train.json").read_text())}
    rows = read_jsonl(run / "03_profile" / "profile.jsonl")
    assert len(rows) == SIZES["train"]
    for row in rows:
        record = records[row["id"]]
        assert len(row["scores"]) == len(row["responses"]) == row["k"] == 8
        # the scores are the example's verifier on each response, and correct means an exact count
        # (rounded to 6 places in the row)
        verified = [task.verify(r, record) for r in row["responses"]]
        assert row["scores"] == pytest.approx(verified, abs=1e-6), row["id"]
        assert row["correct"] == [int(s >= task.pass_score) for s in row["scores"]], row["id"]
    scores = [s for row in rows for s in row["scores"]]
    assert any(0 < s < 1 for s in scores), "no near miss scored partial credit"
    assert all(0 <= s <= 1 for s in scores)


@pytest.mark.e2e
def test_the_report_names_the_task(study):
    report = study[0] / "07_report"
    assert (report / "report.md").read_text().splitlines()[0] == "# DC-SFT study: record files (counting)"
    results = json.loads((report / "results.json").read_text())
    assert results["task"] == "counting:Counting"
    assert {"base", "coldstart", *METHODS} <= set(results["models"])


@pytest.mark.e2e
def test_a_second_run_skips_every_stage(study):
    """The verifier's version, a hash of counting.py's code, is the same in a new process, so a
    rerun finds every stage scored by it complete."""
    run, args, root = study
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    second = dcsft(*args, cwd=root)
    assert second.returncode == 0, second.stdout + second.stderr
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert {p for p in after if after[p] != before.get(p)} <= {run / "config.yaml"}
