"""prepare: deterministic, disjoint splits in the authors' record format."""

import hashlib
import json
from pathlib import Path

from dcsft import prepare
from dcsft.config import load_config
from dcsft.rundir import RunDir

SMALL = [
    "data.n_coldstart=10",
    "data.n_train=40",
    "data.n_test=10",
    "data.label_noise=0.2",
    "data.ambiguous=0.1",
]


def prepared(tmp_path: Path, name: str, *extra: str):
    cfg = load_config(overrides=[*SMALL, *extra, f"run_dir={tmp_path / name}"])
    prepare.run(cfg)
    return RunDir(cfg.run_dir)


def digests(rundir: RunDir) -> dict[str, str]:
    images = rundir.prepare.root / "images"
    return {
        str(p.relative_to(images)): hashlib.sha256(p.read_bytes()).hexdigest() for p in images.rglob("*.png")
    }


def records(rundir: RunDir, split: str) -> list[dict]:
    return json.loads(rundir.records(split).read_text())


def test_same_seed_gives_identical_data(tmp_path):
    a, b = prepared(tmp_path, "a"), prepared(tmp_path, "b")
    assert digests(a) == digests(b)
    for split in ("coldstart", "train", "photo", "rendition", "adversarial"):
        strip = lambda rows: [{k: v for k, v in r.items() if k != "image"} for r in rows]  # noqa: E731
        assert strip(records(a, split)) == strip(records(b, split))


def test_another_seed_gives_other_images(tmp_path):
    a, c = prepared(tmp_path, "a"), prepared(tmp_path, "c", "data.seed=1")
    assert set(digests(a).values()).isdisjoint(digests(c).values())


def test_splits_are_disjoint_and_in_the_authors_format(tmp_path):
    rundir = prepared(tmp_path, "a")
    all_digests = list(digests(rundir).values())
    assert len(set(all_digests)) == len(all_digests)
    for split, size in [
        ("coldstart", 10),
        ("train", 40),
        ("photo", 10),
        ("rendition", 10),
        ("adversarial", 10),
    ]:
        rows = records(rundir, split)
        assert len(rows) == size
        assert all({"problem", "solution", "image"} <= set(r) and Path(r["image"]).is_file() for r in rows)
    styles = {split: {r["meta"]["style"] for r in records(rundir, split)} for split in ("train", "rendition")}
    assert styles == {"train": {"photo"}, "rendition": {"rendition"}}


def test_only_the_training_split_carries_noise(tmp_path):
    rundir = prepared(tmp_path, "a")
    train = records(rundir, "train")
    mislabeled = [r for r in train if r["meta"]["noise"] == "mislabeled"]
    assert mislabeled and all(r["solution"] != r["meta"]["drawn"] for r in mislabeled)
    for split in ("coldstart", "photo", "rendition", "adversarial"):
        assert all(
            r["meta"]["noise"] is None and r["solution"] == r["meta"]["drawn"] for r in records(rundir, split)
        )
