"""Run-directory plumbing: atomic writes, torn-line recovery of append-only JSONL, stage markers."""

import json

import pytest

from dcsft.rundir import (
    MARKER,
    STARTED,
    RunDir,
    Stage,
    atomic_path,
    fingerprint,
    read_json,
    read_jsonl,
    read_jsonl_complete,
    write_json,
    write_jsonl,
    write_text,
)


class Boom(RuntimeError):
    pass


def test_write_json_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "stats.json"
    write_json(target, {"a": 1, "é": [1, 2]})
    write_json(target, {"a": 2})
    assert read_json(target) == {"a": 2}
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["stats.json"]
    assert target.read_text().endswith("\n")


def test_write_json_keeps_unicode_readable(tmp_path):
    target = tmp_path / "u.json"
    write_json(target, {"name": "café"})
    assert "café" in target.read_text()


def test_atomic_path_failure_keeps_old_content(tmp_path):
    target = tmp_path / "data.json"
    write_json(target, {"version": 1})
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text('{"version": 2, "half')
            raise Boom()
    assert read_json(target) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_atomic_path_failure_creates_nothing(tmp_path):
    target = tmp_path / "new.txt"
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise Boom()
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_tmp_is_a_sibling(tmp_path):
    target = tmp_path / "deep" / "x.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert not target.exists()  # nothing at the target until the block succeeds
        tmp.write_text("done")
    assert target.read_text() == "done"


def test_write_jsonl_is_atomic_when_rows_fail(tmp_path):
    target = tmp_path / "rows.jsonl"
    assert write_jsonl(target, [{"i": 0}, {"i": 1}]) == 2

    def rows():
        yield {"i": 10}
        raise Boom()

    with pytest.raises(Boom):
        write_jsonl(target, rows())
    assert read_jsonl(target) == [{"i": 0}, {"i": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_read_jsonl_skips_blank_lines(tmp_path):
    target = tmp_path / "r.jsonl"
    target.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl(target) == [{"a": 1}, {"a": 2}]


def test_read_jsonl_complete_drops_torn_last_line(tmp_path):
    target = tmp_path / "profile.jsonl"
    target.write_text('{"id": "a", "pass_count": 3}\n{"id": "b", "pass_count": 8}\n{"id": "c", "pass')
    assert read_jsonl_complete(target) == [{"id": "a", "pass_count": 3}, {"id": "b", "pass_count": 8}]
    # The file itself is cut back to its complete lines ...
    assert target.read_text() == '{"id": "a", "pass_count": 3}\n{"id": "b", "pass_count": 8}\n'
    # ... so an append continues cleanly.
    with target.open("a") as out:
        out.write(json.dumps({"id": "c", "pass_count": 0}) + "\n")
    assert [row["id"] for row in read_jsonl_complete(target)] == ["a", "b", "c"]
    assert [row["id"] for row in read_jsonl(target)] == ["a", "b", "c"]


def test_read_jsonl_complete_only_a_torn_line(tmp_path):
    target = tmp_path / "p.jsonl"
    target.write_text('{"id": "a"')
    assert read_jsonl_complete(target) == []
    assert target.read_bytes() == b""


def test_read_jsonl_complete_leaves_a_complete_file_alone(tmp_path):
    target = tmp_path / "p.jsonl"
    text = '{"id": "a"}\n{"id": "b"}\n'
    target.write_text(text)
    mtime = target.stat().st_mtime_ns
    assert read_jsonl_complete(target) == [{"id": "a"}, {"id": "b"}]
    assert target.read_text() == text
    assert target.stat().st_mtime_ns == mtime  # not rewritten


def test_read_jsonl_complete_missing_file(tmp_path):
    assert read_jsonl_complete(tmp_path / "nope.jsonl") == []
    assert not (tmp_path / "nope.jsonl").exists()


def test_read_jsonl_complete_multibyte_torn(tmp_path):
    target = tmp_path / "p.jsonl"
    full = '{"name": "café"}\n'.encode()
    torn = '{"name": "café"}'.encode()[:-3]  # cut inside the two-byte é
    target.write_bytes(full + torn)
    assert read_jsonl_complete(target) == [{"name": "café"}]
    assert target.read_bytes() == full


def test_fingerprint():
    assert fingerprint("a", {"x": 1, "y": 2}) == fingerprint("a", {"y": 2, "x": 1})
    assert fingerprint("a", 1) != fingerprint("a", 2)
    assert fingerprint("a", 1) != fingerprint("b", 1)
    assert len(fingerprint("a")) == 16


def test_stage_finish_and_is_done(tmp_path):
    stage = Stage(tmp_path / "03_profile", "profile")
    assert not stage.is_done("fp1")
    assert stage.done_fingerprint() is None
    stage.begin("fp1")
    assert not stage.is_done("fp1")
    stage.finish("fp1", {"samples": 3})
    assert stage.is_done("fp1")
    assert not stage.is_done("fp2")
    assert read_json(stage.root / "stats.json") == {"samples": 3}
    assert stage.done_fingerprint() == "fp1"


def test_stage_begin_same_fingerprint_keeps_partial_work(tmp_path):
    stage = Stage(tmp_path / "03_profile", "profile")
    stage.begin("fp1")
    partial = stage.root / "profile.jsonl"
    partial.write_text('{"id": "a"}\n')
    stage.begin("fp1")  # resumed after an interruption
    assert partial.read_text() == '{"id": "a"}\n'
    assert (stage.root / STARTED).read_text() == "fp1"


def test_stage_begin_other_fingerprint_removes_partial_work(tmp_path):
    stage = Stage(tmp_path / "03_profile", "profile")
    stage.begin("fp1")
    (stage.root / "profile.jsonl").write_text('{"id": "a"}\n')
    (stage.root / "nested").mkdir()
    (stage.root / "nested" / "f").write_text("x")
    stage.begin("fp2")
    assert sorted(p.name for p in stage.root.iterdir()) == [STARTED]
    assert (stage.root / STARTED).read_text() == "fp2"


def test_stage_begin_removes_a_folder_without_started(tmp_path):
    stage = Stage(tmp_path / "04_curate", "curate")
    stage.root.mkdir()
    (stage.root / "easy.jsonl").write_text("stale\n")
    stage.begin("fp1")
    assert not (stage.root / "easy.jsonl").exists()


def test_stage_begin_clears_the_done_marker(tmp_path):
    stage = Stage(tmp_path / "s", "profile")
    stage.begin("fp1")
    stage.finish("fp1", {})
    stage.begin("fp1")  # a rerun of the same fingerprint: not done until it finishes again
    assert not (stage.root / MARKER).exists()
    assert not stage.is_done("fp1")
    stage.finish("fp1", {})
    assert stage.is_done("fp1")


def test_stage_corrupt_marker_is_not_done(tmp_path):
    stage = Stage(tmp_path / "s", "profile")
    stage.root.mkdir()
    write_text(stage.marker, '{"fingerprint": "fp1"')  # torn
    assert stage.done_fingerprint() is None
    write_json(stage.marker, {"other": 1})
    assert stage.done_fingerprint() is None and not stage.is_done("fp1")


def test_rundir_layout(tmp_path):
    run = RunDir(tmp_path)
    assert run.records("train") == tmp_path / "01_prepare" / "records" / "train.json"
    assert run.coldstart_model == tmp_path / "02_coldstart" / "model"
    assert run.profile_file == tmp_path / "03_profile" / "profile.jsonl"
    assert run.bucket_file("medium") == tmp_path / "04_curate" / "medium.jsonl"
    assert run.adapter("sft-m", 1) == tmp_path / "05_train" / "sft-m" / "seed1" / "adapter"
    assert run.evaluate("base").root == tmp_path / "06_evaluate" / "base"
    assert run.evaluate("sft-m", 0).root == tmp_path / "06_evaluate" / "sft-m" / "seed0"
    assert run.report.root == tmp_path / "07_report"
