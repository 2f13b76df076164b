"""Stage plumbing: skipping finished stages, upstream checks, and counted skips of bad records."""

import json

import pytest
from PIL import Image

from dcsft.errors import StageError
from dcsft.prepared import read_split
from dcsft.rundir import RunDir, write_json
from dcsft.stage import run_stage, upstream


def prepared_run(tmp_path, records):
    rundir = RunDir(tmp_path / "run")
    write_json(rundir.prepare.root / "stats.json", {"classes": ["star", "moon"], "task": "classification"})
    write_json(rundir.records("train"), records)
    return rundir


def test_bad_records_are_skipped_counted_and_named(tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.new("RGB", (28, 28), "red").save(good)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    rundir = prepared_run(
        tmp_path,
        [
            {"id": "a", "problem": "q", "solution": "star", "image": str(good)},
            {"id": "b", "problem": "q", "solution": "star", "image": str(corrupt)},
            {"id": "c", "problem": "q", "solution": "goose", "image": str(good)},
            {"id": "d", "problem": "q", "image": str(good)},
        ],
    )
    records, skipped = read_split(rundir, "train")
    assert [r["id"] for r in records] == ["a"] and skipped == 3
    out = capsys.readouterr().out
    assert "train.json: record 1 (b): image cannot be decoded" in out
    assert "record 2 (c): label 'goose' is not one of the 2 classes" in out
    assert "record 3 (d): missing field(s) solution" in out


def test_a_split_with_no_usable_record_is_an_error(tmp_path):
    rundir = prepared_run(tmp_path, [{"id": "x", "problem": "q", "solution": "star", "image": "missing.png"}])
    with pytest.raises(StageError, match="no usable records"):
        read_split(rundir, "train")


def test_unfinished_upstream_names_the_command_to_run(tmp_path):
    with pytest.raises(StageError, match="run `dcsft coldstart`"):
        upstream(RunDir(tmp_path).coldstart)


def test_finished_stage_skips_and_changed_fingerprint_reruns(tmp_path):
    stage = RunDir(tmp_path).profile
    calls = []

    def body(folder):
        calls.append(folder)
        (folder / "out.txt").write_text("x")
        return "did it", {"n": len(calls)}

    assert run_stage(stage, "fp1", body)["n"] == 1
    assert run_stage(stage, "fp1", body)["n"] == 1 and len(calls) == 1
    assert json.loads((stage.root / "DONE").read_text()) == {"fingerprint": "fp1"}
    assert run_stage(stage, "fp2", body)["n"] == 2
    assert upstream(stage) == "fp2"
