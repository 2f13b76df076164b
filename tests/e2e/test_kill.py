"""Kill the smallest study with SIGKILL inside every stage, rerun the same command until it
finishes, and check that it ends where an uninterrupted run ends, redoing no finished unit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

SMALL = [
    "tasks={}",
    "jobs=1",
    "data.n_coldstart=20",
    "data.n_train=48",
    "data.n_test=16",
    "coldstart.save_steps=1",
    "profile.batch_size=8",
    "train.methods=[sft,sft-m,grpo]",
    "train.steps=6",
    "train.save_steps=2",
    "grpo.steps=4",
    "grpo.save_steps=1",
    "evaluate.batch_size=8",
]
# Kill points; n counts the units (images, batches, checkpoints) or the points between files
# (curate, report) finished by the process being killed. One inside every stage by default;
# three per stage with `pytest -m slow` (5 minutes more).
# `<stage>-save` points are inside a checkpoint save (model and optimizer written, trainer state
# not yet): the rerun sets the torn checkpoint aside and resumes from the one before it.
KILLS = [
    ("prepare", 40),
    ("coldstart-save", 2),
    ("coldstart", 2),
    ("profile", 2),
    ("curate", 2),
    ("train-save", 2),
    ("train", 3),
    ("grpo-save", 2),
    ("evaluate", 5),
    ("report", 2),
]
ALL_KILLS = [
    ("prepare", 1),
    ("prepare", 40),
    ("prepare", 60),
    ("coldstart", 1),
    ("coldstart", 2),
    ("coldstart", 1),
    ("profile", 1),
    ("profile", 2),
    ("profile", 1),
    ("curate", 1),
    ("curate", 2),
    ("curate", 3),
    ("train", 1),
    ("train-save", 1),
    ("train", 3),
    ("train", 4),
    ("grpo-save", 1),
    ("grpo-save", 3),
    ("evaluate", 1),
    ("evaluate", 5),
    ("evaluate", 9),
    ("report", 1),
    ("report", 2),
    ("report", 3),
]


def study(run: Path, env: dict, overrides: list[str] = SMALL) -> subprocess.CompletedProcess:
    args = [arg for kv in overrides for arg in ("--set", kv)]
    return subprocess.run(
        [sys.executable, "-m", "dcsft", "study", "--run-dir", str(run), *args],
        cwd=run.parent,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=900,
    )


def without_wall_time(results: dict) -> dict:
    """Wall seconds differ between any two runs; everything else must not."""
    for cost in results["compute"]["rows"].values():
        if cost:
            cost.pop("seconds")
    results["compute"]["grpo_over_dcsft"] = None
    return results


def outputs(run: Path) -> tuple[dict, dict]:
    report = run / "07_report"
    if not report.exists():  # a study of several tasks: each in its own folder
        return tuple(outputs(run / task) for task in ("classification", "grounding"))
    return (
        without_wall_time(json.loads((report / "results.json").read_text())),
        json.loads((report / "buckets.json").read_text()),
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    "kills",
    [
        pytest.param(KILLS, id="one-per-stage"),
        pytest.param(ALL_KILLS, id="three-per-stage", marks=pytest.mark.slow),
    ],
)
def test_killed_anywhere_the_study_finishes_as_if_never_killed(tmp_path, kills):
    reference = study(tmp_path / "reference", {})
    assert reference.returncode == 0, reference.stdout + reference.stderr

    run, units = tmp_path / "killed", tmp_path / "units.log"
    for stage, n in kills:
        killed = study(run, {"DCSFT_KILL_AT": f"{stage}:{n}", "DCSFT_UNIT_LOG": str(units)})
        assert killed.returncode == -signal.SIGKILL, (
            f"{stage}:{n} was never reached\n{killed.stdout}{killed.stderr}"
        )
    final = study(run, {"DCSFT_UNIT_LOG": str(units)})
    assert final.returncode == 0, final.stdout + final.stderr

    assert outputs(run) == outputs(tmp_path / "reference")
    for stats in [
        "02_coldstart/stats.json",
        *(f"05_train/{m}/seed0/stats.json" for m in ("sft", "sft-m", "grpo")),
    ]:
        # the loss over the whole run, not only over the steps after the last resume
        losses = [
            json.loads((root / stats).read_text())["train_loss"] for root in (run, tmp_path / "reference")
        ]
        assert losses[0] == pytest.approx(losses[1], abs=1e-4), stats
    finished = Counter(units.read_text().splitlines())
    repeated = [unit for unit, count in finished.items() if count > 1]
    assert repeated == [], f"{len(repeated)} finished units were done again, e.g. {repeated[:3]}"
    stages = Counter(line.split("\t")[0] for line in finished)
    assert {"prepare", "coldstart", "profile", "train", "grpo", "evaluate"} <= set(stages)
    assert not list(run.rglob("checkpoint-*")), "checkpoints are removed once their stage is done"


# Both tasks' units in two worker processes (dcsft.workers), against one stage after the other in
# one process (jobs=1, as in the test above); one method, as what is under test is the workers'
# end and resumption (the stages' own kill points are tested above).
BOTH_TASKS = [
    *(kv for kv in SMALL if not kv.startswith(("tasks=", "jobs=", "train.methods="))),
    "train.methods=[sft]",
]


@pytest.mark.e2e
def test_a_killed_worker_ends_the_study_and_the_rerun_ends_where_a_sequential_run_ends(tmp_path):
    sequential = study(tmp_path / "reference", {}, [*BOTH_TASKS, "jobs=1"])
    assert sequential.returncode == 0, sequential.stdout + sequential.stderr

    run, units = tmp_path / "killed", tmp_path / "units.log"
    killed = study(run, {"DCSFT_KILL_AT": "train:2", "DCSFT_UNIT_LOG": str(units)}, [*BOTH_TASKS, "jobs=2"])
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    final = study(run, {"DCSFT_UNIT_LOG": str(units)}, [*BOTH_TASKS, "jobs=2"])
    assert final.returncode == 0, final.stdout + final.stderr

    assert outputs(run) == outputs(tmp_path / "reference")
    repeated = [unit for unit, count in Counter(units.read_text().splitlines()).items() if count > 1]
    assert repeated == [], f"{len(repeated)} finished units were done again, e.g. {repeated[:3]}"
