"""Pieces of work side by side in processes (dcsft.workers): each runs once in its own process
with its share of the threads; a known error is one line and exit code 2 after the others
finish; a worker killed by a signal takes the command down with the same signal; a worker never
outlives its command."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dcsft.config import ConfigError
from dcsft.errors import AlreadyReported
from dcsft.workers import side_by_side


def record_worker(item: tuple[str, str]) -> None:
    import torch

    folder, name = item
    Path(folder, name).write_text(json.dumps({"pid": os.getpid(), "threads": torch.get_num_threads()}))


def failing_worker(item: tuple[str, str]) -> None:
    folder, name = item
    if name == "bad":
        raise ConfigError("tasks.bad: this task cannot run")
    time.sleep(1)  # still running when its sibling fails: it must be allowed to finish
    record_worker(item)


def test_every_item_runs_once_in_its_own_process_with_its_threads(tmp_path):
    names = ["a", "b", "c"]
    side_by_side(record_worker, [(str(tmp_path), n) for n in names], jobs=2, threads=1)
    runs = [json.loads((tmp_path / n).read_text()) for n in names]
    assert {r["threads"] for r in runs} == {1}
    assert os.getpid() not in {r["pid"] for r in runs} and len({r["pid"] for r in runs}) == 3


def test_a_known_error_is_one_line_after_the_others_finish(tmp_path, capfd):
    with pytest.raises(AlreadyReported) as ended:
        side_by_side(failing_worker, [(str(tmp_path), "bad"), (str(tmp_path), "good")], jobs=2, threads=1)
    assert ended.value.code == 2
    assert (tmp_path / "good").exists()
    err = capfd.readouterr().err
    assert "error: tasks.bad: this task cannot run" in err and "Traceback" not in err


SCRIPT = """
import os, signal, sys, time
from pathlib import Path
from dcsft.workers import side_by_side

def worker(item):
    folder, name = item
    Path(folder, name + ".pid").write_text(str(os.getpid()))
    if name == "killed":
        time.sleep(0.5)  # its sibling has started and written its pid
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)

if __name__ == "__main__":
    folder = sys.argv[1]
    Path(folder, "parent.pid").write_text(str(os.getpid()))
    side_by_side(worker, [(folder, name) for name in sys.argv[2:]], jobs=2, threads=1)
"""


def start(tmp_path: Path, *names: str) -> subprocess.Popen:
    script = tmp_path / "side_by_side.py"
    script.write_text(textwrap.dedent(SCRIPT))
    return subprocess.Popen([sys.executable, str(script), str(tmp_path), *names], stderr=subprocess.PIPE, text=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def pids(tmp_path: Path, *names: str, timeout: float = 30) -> list[int]:
    deadline = time.time() + timeout
    while not all((tmp_path / f"{n}.pid").exists() for n in names):
        assert time.time() < deadline, "workers did not start"
        time.sleep(0.1)
    return [int((tmp_path / f"{n}.pid").read_text()) for n in names]


def gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.time() + timeout
    while alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def test_a_worker_killed_by_a_signal_takes_the_command_down_the_same_way(tmp_path):
    command = start(tmp_path, "killed", "sibling")
    killed, sibling = pids(tmp_path, "killed", "sibling")
    assert command.wait(timeout=60) == -signal.SIGKILL
    assert gone(sibling), "the sibling worker outlived the command"


def test_a_worker_dies_with_its_command(tmp_path):
    command = start(tmp_path, "first", "second")
    workers = pids(tmp_path, "first", "second")
    command.kill()  # the whole command is pre-empted; its workers must not write on
    command.wait(timeout=10)
    assert all(gone(pid) for pid in workers)
