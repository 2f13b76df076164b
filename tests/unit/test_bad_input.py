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
from dcsft.rundir import RunDirBusy, hold_lock, resume_jsonl, write_json, write_text

HOLD = "import sys, time; from dcsft.rundir import hold_lock; hold_lock(sys.argv[1]); print('held', flush=True); time.sleep(60)"


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
        write_text(target, "{\"accuracy\": 0}")
    assert target.read_text() == '{\n  "accuracy": 85.9\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device", "/run/03_profile/profile.jsonl"),
                                   PermissionError(errno.EACCES, "Permission denied", "/run/config.yaml"),
                                   OSError(errno.EROFS, "Read-only file system")])
def test_disk_errors_end_in_one_line(capsys, error):
    def action():
        raise error

    with pytest.raises(typer.Exit) as exit_:
        guarded(action)
    assert exit_.value.exit_code == 2
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and error.strerror in out and "rerun to continue" in out
    if error.filename:
        assert error.filename in out


def test_a_batch_cut_short_is_dropped_on_resume(tmp_path):
    path = tmp_path / "profile.jsonl"
    path.write_text("".join(f'{{"id": {i}}}\n' for i in range(7)) + '{"id": 7, "tor')
    assert [row["id"] for row in resume_jsonl(path, batch_size=3)] == [0, 1, 2, 3, 4, 5]
    assert path.read_text().count("\n") == 6
