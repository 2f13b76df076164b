"""A disk that fills up during a checkpoint save: one line naming the path, exit code 2, and once
there is space again the same command continues (the torn checkpoint set aside)."""

from __future__ import annotations

import subprocess

import pytest
from test_study import dcsft

SMALL = ["tasks={}", "data.n_coldstart=20", "data.n_train=48", "data.n_test=16", "coldstart.save_steps=1"]


@pytest.fixture
def small_disk(tmp_path):
    """A 5 MB tmpfs: room for the prepared images (about 2 MB), not for a cold-start checkpoint
    (model, AdamW moments: about 4 MB)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.e2e
def test_a_full_disk_during_a_save_is_one_line_and_the_rerun_continues(small_disk):
    args = ["--run-dir", str(small_disk / "run"), *(arg for kv in SMALL for arg in ("--set", kv))]
    for stage in ("pretrain", "prepare"):
        done = dcsft(stage, *args, cwd=small_disk.parent)
        assert done.returncode == 0, done.stdout + done.stderr
    full = dcsft("coldstart", *args, cwd=small_disk.parent)
    assert full.returncode == 2, full.stdout + full.stderr
    error = full.stderr.strip().splitlines()
    assert (
        len(error) == 1 and "No space left on device" in error[0] and str(small_disk / "run") in error[0]
    ), error
    assert "Traceback" not in full.stdout + full.stderr
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    rerun = dcsft("coldstart", *args, cwd=small_disk.parent)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "checkpoint-1: this checkpoint's save did not finish" in rerun.stdout  # set aside, started over
    assert (small_disk / "run" / "02_coldstart" / "DONE").exists()
    assert (small_disk / "run" / "02_coldstart" / "model" / "model.safetensors").exists()
