"""`dcsft sweep` at its smallest size through the CLI: two values of a key, its report, the
reuse of stages that do not depend on the key, a rerun that skips everything, and bad input."""

from __future__ import annotations

import json
import re

import pytest
from test_study import dcsft

SMALLEST = [
    "data.n_coldstart=20",
    "data.n_train=48",
    "data.n_test=20",
    "profile.batch_size=16",
    "seeds=2",
    "evaluate.batch_size=32",
    "train.methods=[sft,sft-m]",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    args = [
        "sweep",
        "--task",
        "classification",
        "--run-dir",
        str(root / "sw"),
        "--over",
        "train.steps=4,6",
        *(arg for kv in SMALLEST for arg in ("--set", kv)),
    ]
    first = dcsft(*args, cwd=root)
    assert first.returncode == 0, first.stdout + first.stderr
    return root / "sw", args, first


@pytest.mark.e2e
def test_sweep_writes_its_report(sweep):
    root, _, first = sweep
    data = json.loads((root / "sweep.json").read_text())
    assert data["keys"] == ["train.steps"] and [p["values"] for p in data["points"]] == [
        {"train.steps": 4},
        {"train.steps": 6},
    ]
    for point in data["points"]:
        sft_m = point["tasks"]["classification"]["methods"]["sft-m"]
        for column in ("id", "ood_mean"):
            assert sft_m[column]["low"] <= sft_m[column]["delta"] <= sft_m[column]["high"]
            assert sft_m[column]["seeds"] == 2
    text = (root / "sweep.md").read_text()
    assert "| train.steps | Method | ID minus SFT | OOD mean minus SFT |" in text and "| 6 | SFT-M |" in text
    assert (root / "figures" / "classification.png").stat().st_size > 10_000
    assert "sweep point 1/2: train.steps=4 (1 left after it)" in first.stdout


@pytest.mark.e2e
def test_stages_that_do_not_depend_on_the_key_are_reused(sweep):
    root = sweep[0]
    second = root / "train.steps=6" / "classification"
    for stage in ("01_prepare", "02_coldstart", "03_profile", "04_curate", "06_evaluate/base"):
        assert (second / stage).is_symlink(), stage
        assert (second / stage).resolve() == (root / "train.steps=4" / "classification" / stage).resolve()
    for stage in ("05_train/sft/seed0", "06_evaluate/sft-m/seed1"):
        assert not (second / stage).is_symlink() and (second / stage / "DONE").exists(), stage


@pytest.mark.e2e
def test_rerun_skips_everything(sweep):
    root, args, _ = sweep
    rerun = dcsft(*args, cwd=root.parent)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    summaries = [
        line
        for line in rerun.stdout.splitlines()
        if re.match(r"\s*(prepare|coldstart|profile|curate|train|evaluate|report) ", line)
    ]
    assert summaries and all("already complete" in line for line in summaries), summaries


@pytest.mark.e2e
def test_a_bad_sweep_ends_in_one_line_before_any_work(tmp_path):
    result = dcsft("sweep", "--run-dir", str(tmp_path / "sw"), "--over", "data.label_noise=0,2", cwd=tmp_path)
    assert result.returncode == 2
    assert "data.label_noise: Input should be less than or equal to 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == "", result.stderr
    assert not (tmp_path / "sw").exists()
