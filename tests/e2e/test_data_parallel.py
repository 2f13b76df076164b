"""Profiling across two processes (`torchrun --nproc_per_node 2 -m dcsft profile`, gloo on
CPU), killed mid-way and resumed, gives byte for byte the profile of one process.

(Evaluation runs through the same batched_jsonl; its two-process run is left out of this test
to keep it within its time budget: every torchrun costs two imports of the stack.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dcsft.status import lines_in

SMALLEST = [
    "tasks={}",
    "pretrain.grounding.steps=0",
    "data.n_coldstart=8",
    "data.n_train=32",
    "data.n_test=4",
    "profile.batch_size=8",
    "train.methods=[]",
]
TORCHRUN = Path(sys.executable).parent / "torchrun"


def torchrun(verb: str, run: Path, env: dict) -> subprocess.CompletedProcess:
    overrides = [arg for kv in SMALLEST for arg in ("--set", kv)]
    return subprocess.run(
        [
            str(TORCHRUN),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "dcsft",
            verb,
            "--run-dir",
            str(run),
            *overrides,
        ],
        cwd=run.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "DCSFT_CACHE": str(run.parent / "cache"), **env},
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A prepared and cold-started run, copied; the first copy profiled in this one process
    (the code path of a plain `dcsft profile`)."""
    from dcsft import coldstart, prepare, pretrain, profiling
    from dcsft.config import load_config

    root = tmp_path_factory.mktemp("data_parallel")
    saved = os.environ.get("DCSFT_CACHE")
    os.environ["DCSFT_CACHE"] = str(root / "cache")
    try:
        cfg = load_config(None, [*SMALLEST, f"run_dir={root / 'one'}"])
        pretrain.run(cfg)
        prepare.run(cfg)
        coldstart.run(cfg)
        shutil.copytree(root / "one", root / "two")
        profiling.run(cfg)
    finally:
        os.environ.pop("DCSFT_CACHE") if saved is None else os.environ.update(DCSFT_CACHE=saved)
    return root / "one", root / "two"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.e2e
def test_two_processes_profile_like_one_even_when_killed_and_resumed(runs):
    one, two = runs
    units = two.parent / "units.log"
    killed = torchrun("profile", two, {"DCSFT_KILL_AT": "profile:1", "DCSFT_UNIT_LOG": str(units)})
    assert killed.returncode != 0, killed.stdout + killed.stderr
    folder = two / "03_profile"
    before = set(units.read_text().splitlines())  # each rank stops after its first batch, or is stopped
    parts = [folder / name for name in listing(folder) if name.startswith("profile.rank")]
    assert before and parts and not (folder / "DONE").exists()
    assert lines_in(folder / "profile.jsonl") == 8 * len(before)  # `dcsft status` counts the ranks' files
    for part in parts:  # and a write torn by the kill, too
        with part.open("a") as torn:
            torn.write('{"id": "torn')

    resumed = torchrun("profile", two, {"DCSFT_UNIT_LOG": str(units)})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (folder / "profile.jsonl").read_bytes() == (one / "03_profile" / "profile.jsonl").read_bytes()
    assert listing(folder) == ["DONE", "STARTED", "profile.jsonl", "stats.json"]
    assert listing(two) == [".lock", "00_pretrain", "01_prepare", "02_coldstart", "03_profile", "config.yaml"]
    rows = [json.loads(line) for line in (folder / "profile.jsonl").read_text().splitlines()]
    assert len(rows) == 32 and all(len(r["responses"]) == r["k"] == 8 for r in rows)

    done = Counter(units.read_text().splitlines())
    assert set(done) == {f"profile\t{folder / 'profile.jsonl'}:{first}" for first in range(0, 32, 8)}
    assert max(done.values()) == 1, f"batches finished before the kill were scored again ({before})"
    stats = json.loads((folder / "stats.json").read_text())
    one_stats = json.loads((one / "03_profile" / "stats.json").read_text())
    assert stats["resumed_from"] == 8 * len(before)
    for key in ("seconds", "peak_rss_mb", "resumed_from"):  # wall clock and memory differ between runs
        stats.pop(key), one_stats.pop(key)
    assert stats == one_stats
    assert (
        "profile" in resumed.stdout and resumed.stdout.count("mean pass rate") == 1
    )  # one summary, rank 0's
