"""The reasoning task of the embedded study (the reasoning world, dcsft.data.reasoning_world) at
its smallest size, through the CLI: every stage, every method of its list, GRPO included, scored
by the reasoning verifier on the ID split and both OOD splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_study import SMALLEST_SIZES, dcsft  # the CLI in a subprocess, as the default study's test runs it

PRESET = ["full"]  # the study config holding the reasoning task (the default study leaves it out)
SMALLEST = [*SMALLEST_SIZES, "seeds=1"]
METHODS = {"sft", "sft-e", "sft-m", "sft-h", "sft-em", "curriculum", "sft-m+h5", "sft-m+h15", "grpo"}
SPLITS = {"questions", "rephrased", "rendered"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("reasoning")
    overrides = [arg for kv in SMALLEST for arg in ("--set", kv)]
    args = ["study", *PRESET, "--task", "reasoning", "--run-dir", str(root / "run"), *overrides]
    first = dcsft(*args, cwd=root)
    assert first.returncode == 0, first.stdout + first.stderr
    return root / "run" / "reasoning", root, args


@pytest.mark.e2e
def test_every_stage_and_method_runs_on_the_shipped_base(study):
    run, root, _ = study
    assert not (root / "cache" / "base").exists()  # the shipped reasoning base, not a rebuild
    base = json.loads((run / "00_pretrain" / "base.json").read_text())
    assert Path(base["path"]).name == "embedded-base-reasoning"
    assert {p.name for p in (run / "05_train").iterdir()} == METHODS
    results = json.loads((run / "07_report" / "results.json").read_text())
    for model in ("base", "coldstart", *METHODS):
        scores = json.loads(
            (run / "06_evaluate" / model / ("seed0" if model in METHODS else "") / "scores.json").read_text()
        )
        assert set(scores) == SPLITS
        assert all(s["n"] == 20 and 0 <= s["accuracy"] <= 100 for s in scores.values())
        assert set(results["models"][model]["accuracy"]) >= SPLITS


@pytest.mark.e2e
def test_records_follow_the_reasoning_contract(study):
    run, _, _ = study
    records = json.loads((run / "01_prepare" / "records" / "train.json").read_text())
    for record in records:
        meta = record["meta"]
        assert record["solution"] == meta["answer"] in "ABCD" and meta["answer_type"] == "choice"
        assert meta["source"] == "embedded" and meta["kinds"] == [meta["skill"]]
        assert record["problem"].startswith(meta["question"] + "\nA. " + meta["options"][0] + "\nB. ")
    buckets = json.loads((run / "07_report" / "buckets.json").read_text())
    assert sum(buckets[b]["count"] for b in ("easy", "medium", "hard")) == 48
    assert set(buckets["kinds_by_bucket"]) >= {"counting", "comparing", "chart", "arithmetic"}


@pytest.mark.e2e
def test_rerun_does_nothing(study):
    run, root, args = study
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    again = dcsft(*args, cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already complete, skipped" in again.stdout
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before
