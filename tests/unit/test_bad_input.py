"""Run-directory safety: one writer at a time, writes that fail leave the old file whole, and
disk errors end in one line."""

import errno
import os
import signal
import subprocess
import sys

import pytest
import typer

from dcsft import rundir
from dcsft.cli import guarded
from dcsft.errors import RunDirBusy
from dcsft.rundir import hold_lock, resume_jsonl, write_json, write_text

HOLD = (
    "import sys, time; from dcsft.rundir import hold_lock; hold_lock(sys.argv[1]); "
    "print('held', flush=True); time.sleep(60)"
)


def _holder(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_ones_lock_is_taken_over(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunDirBusy) as err:
            hold_lock(tmp_path)
        assert f"pid {holder.pid}" in str(err.value) and str(tmp_path) in str(err.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    hold_lock(tmp_path)  # the kernel released the dead process's lock
    assert f"pid {os.getpid()}" in (tmp_path / ".lock").read_text()


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    write_json(target, {"accuracy": 85.9})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(rundir.os, "replace", disk_full)
    with pytest.raises(OSError):
        write_text(target, '{"accuracy": 0}')
    assert target.read_text() == '{\n  "accuracy": 85.9\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device", "/run/03_profile/profile.jsonl"),
        PermissionError(errno.EACCES, "Permission denied", "/run/config.yaml"),
        OSError(errno.EROFS, "Read-only file system"),
    ],
)
def test_disk_errors_end_in_one_line(capsys, error):
    def action():
        raise error

    with pytest.raises(typer.Exit) as exit_:
        guarded(action)
    assert exit_.value.exit_code == 2
    captured = capsys.readouterr()
    out = captured.err.strip()
    assert (
        captured.out == "" and out.count("\n") == 0 and error.strerror in out and "rerun to continue" in out
    )
    if error.filename:
        assert error.filename in out


def test_a_batch_cut_short_is_dropped_on_resume(tmp_path):
    path = tmp_path / "profile.jsonl"
    path.write_text("".join(f'{{"id": {i}}}\n' for i in range(7)) + '{"id": 7, "tor')
    assert [row["id"] for row in resume_jsonl(path, batch_size=3, total=10)] == [0, 1, 2, 3, 4, 5]
    assert path.read_text().count("\n") == 6


def test_a_complete_file_keeps_its_last_short_batch(tmp_path):
    path = tmp_path / "photo.jsonl"
    path.write_text("".join(f'{{"id": {i}}}\n' for i in range(7)))  # 7 records in batches of 3: 3 + 3 + 1
    assert [row["id"] for row in resume_jsonl(path, batch_size=3, total=7)] == list(range(7))
    assert path.read_text().count("\n") == 7


def test_a_torn_checkpoint_is_removed_and_the_one_before_it_resumed(tmp_path, capsys):
    from dcsft.train.sft import COMPLETE, last_complete_checkpoint

    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "checkpoint-2" / COMPLETE).write_text("")
    (tmp_path / "checkpoint-4" / COMPLETE).write_text("")  # checkpoint-6 was torn: no marker
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert "checkpoint-6: this checkpoint's save did not finish" in capsys.readouterr().out
    for folder in tmp_path.iterdir():
        (folder / COMPLETE).unlink()
    assert last_complete_checkpoint(tmp_path) is None and not list(tmp_path.iterdir())  # from the start


@pytest.mark.parametrize(
    "message",
    [
        "[enforce fail at inline_container.cc:672] . unexpected pos 1536 vs 1450",
        "Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
        'message: "No space left on device" })',
    ],
)
def test_a_full_disk_inside_a_library_save_is_the_one_line_enospc_error(tmp_path, message):
    with pytest.raises(OSError) as err:
        with rundir.disk_full_is_oserror(tmp_path / "trainer"):
            raise RuntimeError(message)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "trainer")
    with pytest.raises(RuntimeError, match="shape mismatch"):  # any other error is not hidden
        with rundir.disk_full_is_oserror(tmp_path):
            raise RuntimeError("shape mismatch")


def test_a_killed_writes_temporary_file_is_cleaned_up_by_the_next_write(tmp_path):
    (tmp_path / ".accuracy.png.abc123.tmp").write_bytes(b"")  # a kill between mkstemp and rename
    write_text(tmp_path / "accuracy.png", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["accuracy.png"]


def test_empty_answers_are_skipped_and_never_scored_correct(tmp_path):
    from PIL import Image

    from dcsft.data.records import load_records
    from dcsft.tasks import classification

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    records = [{"problem": "p", "solution": s, "image": "a.png"} for s in ("", "   ", "moon")]
    (tmp_path / "train.json").write_text(__import__("json").dumps(records))
    loaded = load_records(tmp_path / "train.json")
    assert [r["solution"] for r in loaded.records] == ["moon"]
    assert [s.index for s in loaded.skipped] == [0, 1]
    assert all("empty answer" in s.line() for s in loaded.skipped)
    assert classification.score("", "") == 0.0 and classification.score(" . ", "") == 0.0
    assert classification.score("Moon.", "moon") == 1.0
