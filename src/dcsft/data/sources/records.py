"""The records source: every split from its own record file in `files` (problem/solution/image
or ms-swift records, dcsft.data.formats): how Ref-L4, LISA-Grounding or any other set gets in.
The file readers here also serve the OOD splits of the refcoco source."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator

from dcsft.console import progress
from dcsft.data.formats import import_records
from dcsft.data.records import LoadedRecords
from dcsft.data.sources.common import (
    ROLES,
    Findings,
    RealSourceConfig,
    SplitCheck,
    check_disjoint,
    decoded,
    unknown_keys,
)
from dcsft.data.splits import Study, id_split, roles
from dcsft.tasks import get_task
from dcsft.tasks.base import Task


def files_of(files: dict[str, str], splits: list[str], all_splits: set[str], source: str) -> None:
    """`files` names a file for each of `splits` and for nothing else."""
    unknown_keys(files, all_splits, "files")
    absent = [n for n in splits if n not in files]
    if absent:
        raise ValueError(
            f"data.files: no file for split {absent[0]!r} (source {source} reads "
            f"{', '.join(splits)} from data.files)"
        )


class RecordsSource(RealSourceConfig):
    source: Literal["records"] = "records"
    files: dict[str, str] = {}  # the record file of each role: coldstart, train, test and each OOD split

    @model_validator(mode="after")
    def _a_file_per_split(self) -> RecordsSource:
        files_of(self.files, [*ROLES, *self.ood_splits], self.split_names(), self.source)
        if self.files["coldstart"] == self.files["train"]:
            raise ValueError("data.files: coldstart and train are the same file; they must be disjoint")
        return self

    def paths(self) -> list[str]:
        return list(self.files.values())


def file_splits(cfg: Study, names: list[tuple[str, str]]) -> dict[str, LoadedRecords]:
    """(split name, role) -> the records of `files.<role>` whose images decode."""
    paths = {name: cfg.data.path(cfg.data.files[role]) for name, role in names}
    files = {name: import_records(path) for name, path in paths.items()}
    with progress("checking images", sum(len(f.records) for f in files.values())) as advance:
        return {name: decoded(cfg.data, files[name], str(paths[name]), advance) for name in files}


def unusable(task: Task, record: dict) -> bool:
    """Whether prepare will skip a record of a file: the task's own check, except that a box may
    come in meta.box instead of the solution (the RefCOCO loaders' records), which prepare reads."""
    if task.coordinates and "box" in (record.get("meta") or {}):
        return False
    return task.record_problem(record) is not None


def survey_file(cfg: Study, name: str, role: str, out: Findings) -> SplitCheck:
    """A record file's split: its records and images (checked later); records prepare skips named."""
    path = cfg.data.path(cfg.data.files[role])
    loaded = import_records(path)
    records = loaded.records
    check = SplitCheck(name, str(path), len(records), [Path(r["image"]) for r in records])
    if loaded.skipped:
        out.warnings.append(
            f"{loaded.skipped[0].line()}; prepare skips it and {len(loaded.skipped) - 1} "
            f"more unusable record(s) of this file"
        )
    task = get_task(cfg.task)
    bad = [r["id"] for r in records if unusable(task, r)]
    if bad:
        check.note = f"{len(bad)} unusable records (first: {bad[0]})"
        out.warnings.append(
            f"{path}: {len(bad)} records the {task.name} task cannot use (first: {bad[0]}); "
            "prepare skips them"
        )
        check.count -= len(bad)
    else:
        check.note = f"{len({task.answer(r).strip().lower() for r in records})} distinct answers"
    return check


def survey(cfg: Study, out: Findings) -> None:
    for name, role in roles(cfg):
        out.splits[name] = survey_file(cfg, name, role, out)
    check_disjoint({name: set(check.images) for name, check in out.splits.items()}, id_split(cfg.task))
    if "classes" in get_task(cfg.task).split_stats([]):
        out.lines.append("  label map: the answers of the record files are the classes")


def load(cfg: Study, folder: Path) -> dict[str, LoadedRecords]:
    return file_splits(cfg, roles(cfg))


def describe(cfg: Study, role: str) -> str:
    return f"records file {cfg.data.path(cfg.data.files[role])}"
