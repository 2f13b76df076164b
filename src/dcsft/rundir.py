"""The run directory: where every stage reads its inputs and writes its outputs.

Layout (folder names from dcsft.stages, numbered so `ls` shows the order of the study)::

    RUN_DIR/
      config.yaml                 resolved config of the last run
      00_pretrain/base.json       the base model: what from_pretrained loads, and its identity
      01_prepare/                 records/<split>.json, images/<split>/*.png, skipped.jsonl
      02_coldstart/model/         full fine-tune of the base (save_pretrained folder)
      03_profile/profile.jsonl    k responses and pass count per training sample
      04_curate/                  easy|medium|hard.jsonl (ms-swift format), buckets.json
      05_train/<method>/seed<s>/  LoRA adapter/, loss.jsonl (one folder per training seed)
      06_evaluate/<model>/        <split>.jsonl predictions, scores.json (base, coldstart)
      06_evaluate/<method>/seed<s>/   the same for each trained method and seed
      07_report/                  report.md, report.html, figures/*.png, results.json, buckets.json

Every stage folder gets a `stats.json` and, written last, a `DONE` marker holding the
stage's fingerprint (a hash of its config and of its inputs' fingerprints). A folder whose
marker matches the current fingerprint is complete and the stage skips itself; anything
else is rebuilt, and its changed fingerprint makes every stage downstream rebuild too.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcsft.errors import RunDirBusy
from dcsft.stages import BY_NAME

MARKER = "DONE"
STARTED = "STARTED"
LOCK = ".lock"
_held_locks: list = []  # open lock files of this process; the kernel releases them when it exits


def hold_lock(root: Path) -> None:
    """Make this process the one writer of run directory `root` until it exits.

    An flock on RUN_DIR/.lock: a second dcsft on the same directory fails at once, naming the
    holder; a lock left by a dead process (even one killed with SIGKILL) was released by the
    kernel, so it is simply taken over. (flock is per machine: on NFS use one host per run dir.)"""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "an unknown process"
        handle.close()
        raise RunDirBusy(f"{root} is in use by {holder}; wait for it to finish or stop it") from None
    handle.seek(0)
    handle.truncate()
    handle.write(
        f"dcsft pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    )
    handle.flush()
    _held_locks.append(handle)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a write that was killed
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    count = 0
    with atomic_path(path) as tmp, tmp.open("w") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: Path) -> list[dict]:
    with Path(path).open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


def read_jsonl_complete(path: Path) -> list[dict]:
    """Complete lines of an append-only JSONL file; a torn last line (an interrupted write)
    is cut off the file so appending can continue cleanly."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if len(complete) != len(raw):
        path.write_bytes(complete)
    return [json.loads(line) for line in complete.decode().splitlines() if line.strip()]


def resume_jsonl(path: Path, batch_size: int, total: int) -> list[dict]:
    """The rows of an append-only JSONL file written one batch at a time for `total` records, cut
    back to whole batches (a torn line or a batch cut short by a kill is dropped), ready to append
    to. A file with all `total` rows is complete: its last, short batch is kept."""
    rows = read_jsonl_complete(path)
    kept = rows[:total] if len(rows) >= total else rows[: len(rows) // batch_size * batch_size]
    if len(kept) != len(rows):
        write_jsonl(path, kept)
    return kept


_units_this_process: dict[str, int] = {}


def unit_finished(stage: str, unit: str) -> None:
    """Called when a unit of work (an image, a batch, a checkpoint) is durably on disk.

    Fault injection for the kill tests: DCSFT_UNIT_LOG=<file> appends "stage<TAB>unit" per
    finished unit (so a test can count units done twice), and DCSFT_KILL_AT=<stage>:<n> kills
    this process with SIGKILL right after its n-th finished unit of that stage."""
    log = os.environ.get("DCSFT_UNIT_LOG")
    if log:
        with open(log, "a") as out:
            out.write(f"{stage}\t{unit}\n")
    kill_point(stage)


def kill_point(stage: str) -> None:
    """A point where the kill tests may stop the process (every finished unit is one; stages
    that redo all their work when killed, curate and report, have points between their files)."""
    _units_this_process[stage] = _units_this_process.get(stage, 0) + 1
    if os.environ.get("DCSFT_KILL_AT") == f"{stage}:{_units_this_process[stage]}":
        os.kill(os.getpid(), signal.SIGKILL)


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Stage:
    """One stage's folder in a run directory and its completion marker."""

    root: Path
    name: str  # the stage's verb (dcsft.stages), named in "run `dcsft <name>` first"

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    def done_fingerprint(self) -> str | None:
        try:
            return read_json(self.marker)["fingerprint"]
        except (FileNotFoundError, KeyError, TypeError, json.JSONDecodeError):
            return None

    def is_done(self, current: str) -> bool:
        return self.done_fingerprint() == current

    def begin(self, current: str) -> None:
        """Prepare the folder for a run with fingerprint `current`: partial work of the same
        fingerprint is kept (stages reuse its finished units), anything else is removed so no
        stale file is mistaken for new output."""
        started = self.root / STARTED
        if self.root.is_symlink():  # a stage reused from another run directory: never write into that one
            self.root.unlink()
        if not (started.exists() and started.read_text() == current):
            if self.root.exists():
                shutil.rmtree(self.root)
            self.root.mkdir(parents=True)
            write_text(started, current)
        self.marker.unlink(missing_ok=True)

    def link_to(self, other: Stage) -> None:
        """Make this folder a symlink to `other`'s finished folder (replacing whatever is here)."""
        if self.root.is_symlink():
            self.root.unlink()
        elif self.root.exists():
            shutil.rmtree(self.root)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        # relative, so that the folder holding both run directories can be moved as a whole
        self.root.symlink_to(
            os.path.relpath(other.root.resolve(), self.root.parent.resolve()), target_is_directory=True
        )

    def finish(self, current: str, stats: dict) -> None:
        write_json(self.root / "stats.json", stats)
        write_json(self.marker, {"fingerprint": current})
        for checkpoint in self.root.glob("trainer/checkpoint-*"):  # only needed to resume an unfinished run
            shutil.rmtree(checkpoint, ignore_errors=True)


class RunDir:
    """Paths of one run directory (see the module docstring for the layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def stage(self, name: str, *parts: str) -> Stage:
        return Stage(self.root.joinpath(BY_NAME[name].folder, *parts), name)

    pretrain = property(lambda self: self.stage("pretrain"))
    prepare = property(lambda self: self.stage("prepare"))
    coldstart = property(lambda self: self.stage("coldstart"))
    profile = property(lambda self: self.stage("profile"))
    curate = property(lambda self: self.stage("curate"))
    report = property(lambda self: self.stage("report"))

    def train(self, method: str, seed: int) -> Stage:
        return self.stage("train", method, f"seed{seed}")

    def evaluate(self, model_name: str, seed: int | None = None) -> Stage:
        """base and coldstart have one evaluation; trained methods one per training seed."""
        return self.stage("evaluate", model_name, *([f"seed{seed}"] if seed is not None else []))

    def records(self, split: str) -> Path:
        return self.prepare.root / "records" / f"{split}.json"

    @property
    def base_file(self) -> Path:
        return self.pretrain.root / "base.json"

    @property
    def coldstart_model(self) -> Path:
        return self.coldstart.root / "model"

    @property
    def profile_file(self) -> Path:
        return self.profile.root / "profile.jsonl"

    @property
    def assignments_file(self) -> Path:
        return self.curate.root / "assignments.jsonl"

    def bucket_file(self, bucket: str) -> Path:
        return self.curate.root / f"{bucket}.jsonl"

    def adapter(self, method: str, seed: int) -> Path:
        return self.train(method, seed).root / "adapter"


# What torch.save and safetensors raise when a write fails for want of space.
DISK_FULL = ("No space left on device", "unexpected pos", "failed writing", "Disk quota exceeded")


@contextmanager
def disk_full_is_oserror(where: Path) -> Iterator[None]:
    """Turn the RuntimeError that torch / safetensors raise on a full disk into the ENOSPC OSError
    the command line reports in one line (naming `where`); finished work stays on disk."""
    try:
        yield
    except RuntimeError as err:
        if not any(text in str(err) for text in DISK_FULL):
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where)) from None


def save_model_atomic(model, processor, folder: Path) -> None:
    """save_pretrained into a temporary sibling folder, then rename: a half-saved model never
    sits at `folder`."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with disk_full_is_oserror(tmp):
        model.save_pretrained(tmp)
        if processor is not None:
            processor.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
