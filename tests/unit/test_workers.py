"""Units in worker processes (dcsft.workers): each runs once, in a worker with its threads, after
the units it needs; a known error is one line, skips the units that need it and ends the command
with exit code 2 once the others finish; a worker killed by a signal takes the command down with
the same signal; a worker never outlives its command."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dcsft.errors import AlreadyReported, ConfigError
from dcsft.workers import Unit, run_units


def record(item: tuple[str, str, str | None]) -> None:
    """Write this unit's process and threads; fail if the unit it needs has not written yet."""
    import torch

    folder, name, needs = item
    if needs is not None and not Path(folder, needs).exists():
        raise AssertionError(f"{name} ran before {needs}")
    if name == "bad":
        raise ConfigError("tasks.bad: this task cannot run")
    Path(folder, name).write_text(json.dumps({"pid": os.getpid(), "threads": torch.get_num_threads()}))


def unit(folder: Path, name: str, needs: str | None = None, weight: float = 1.0) -> Unit:
    return Unit(name, record, (str(folder), name, needs), (needs,) if needs else (), weight)


def test_every_unit_runs_once_in_a_worker_with_its_threads_after_what_it_needs(tmp_path):
    units = [
        unit(tmp_path, "a"),
        unit(tmp_path, "b", needs="a", weight=9),
        unit(tmp_path, "c"),
        unit(tmp_path, "d", needs="b"),
    ]
    run_units(units, jobs=2, threads=1)
    runs = [json.loads((tmp_path / u.key).read_text()) for u in units]
    assert {r["threads"] for r in runs} == {1}
    assert os.getpid() not in {r["pid"] for r in runs} and len({r["pid"] for r in runs}) == 2


def test_a_known_error_is_one_line_and_skips_only_the_units_that_need_it(tmp_path, capfd):
    units = [
        unit(tmp_path, "bad"),
        unit(tmp_path, "needs-bad", needs="bad"),
        unit(tmp_path, "good"),
        unit(tmp_path, "after-good", needs="good"),
    ]
    with pytest.raises(AlreadyReported) as ended:
        run_units(units, jobs=2, threads=1)
    assert ended.value.code == 2
    assert (tmp_path / "good").exists() and (tmp_path / "after-good").exists()
    assert not (tmp_path / "needs-bad").exists()
    err = capfd.readouterr().err
    assert err.count("error: tasks.bad: this task cannot run") == 1 and "Traceback" not in err


SCRIPT = """
import os, signal, sys, time
from pathlib import Path
from dcsft.workers import Unit, run_units

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
    run_units([Unit(name, worker, (folder, name)) for name in sys.argv[2:]], jobs=2, threads=1)
"""


def start(tmp_path: Path, *names: str) -> subprocess.Popen:
    script = tmp_path / "command_with_workers.py"
    script.write_text(textwrap.dedent(SCRIPT))
    command = [sys.executable, str(script), str(tmp_path), *names]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def pids(tmp_path: Path, *names: str, timeout: float = 90) -> list[int]:
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
