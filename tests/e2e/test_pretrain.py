"""`dcsft pretrain` still trains a base that knows the classes, at a reduced size.

The shipped base (src/dcsft/assets/embedded-base) took the full default schedule; this
checks that the command behind it still learns, within a CI budget. The thresholds are
well below what the reduced run measured (see the README) and far above chance (10%).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REDUCED = ["pretrain.vision_steps=REDUCED_VISION", "pretrain.vlm_steps=REDUCED_VLM", "pretrain.pool_size=REDUCED_POOL"]


@pytest.mark.e2e
def test_reduced_pretraining_learns_the_classes(tmp_path):
    out = tmp_path / "base"
    args = [arg for kv in REDUCED for arg in ("--set", kv)]
    done = subprocess.run([sys.executable, "-m", "dcsft", "pretrain", *args, "--out", str(out)],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    info = json.loads((out / "pretrain.json").read_text())
    accuracy = info["heldout_name_accuracy"]
    assert accuracy["photo"] >= PHOTO_MIN, accuracy
    assert accuracy["rendition"] >= RENDITION_MIN, accuracy
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= {
        p.name for p in out.iterdir()}
