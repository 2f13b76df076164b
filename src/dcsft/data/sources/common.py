"""What the data sources share: their config base classes, paths under `data.root`, the rules
that `prepare` (each source's `load`) and `dcsft plan` (each source's `survey`) both apply,
and what a survey finds.

A source's config holds exactly the keys it reads, so a key it does not read is an error
(dcsft.config names the source and its keys). The checks that involve only the data section
are its validators; those that also need the task are dcsft.data.splits.check_data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcsft import console
from dcsft.data.records import LoadedRecords, Skip, image_problem
from dcsft.data.splits import ROLES
from dcsft.errors import DataError


class SourceConfig(BaseModel):
    """The keys every source reads."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0  # draws of the source (embedded images, classes, per-class samples, subsets)
    # The OOD evaluation splits: the world's for the embedded source, named after their data
    # (e.g. imagenet-r) for the others; each source has its default (records: none, name yours).
    ood_splits: list[str]

    @field_validator("ood_splits")
    @classmethod
    def _listed_once(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError(f"a split is listed twice in {names}")
        return names

    def split_names(self) -> set[str]:
        """Every split's role name: the keys a per-split mapping of this source may have."""
        return {*ROLES, *self.ood_splits}

    def known_size(self, role: str) -> int:
        """A split's size known before anything is read (0: the data decides)."""
        return 0


class RealSourceConfig(SourceConfig):
    """The keys every source read from disk has. Paths are relative to `root` unless absolute."""

    root: str | None = None  # the dataset root
    # An undecodable image or a bad box: a counted skip, or a one-line error.
    bad_images: Literal["skip", "error"] = "skip"
    max_test: int | None = Field(None, ge=1)  # at most this many records per evaluation split (seeded draw)

    needs_root: ClassVar[bool] = False  # True: the source reads its default folders under the root

    def paths(self) -> list[str]:
        """The path values of the config (each relative to root unless absolute)."""
        return []

    def path(self, value: str) -> Path:
        """A path of the data section: absolute, or relative to root."""
        path = Path(value).expanduser()
        if path.is_absolute() or not self.root:
            return path.absolute()
        return (Path(self.root).expanduser() / path).absolute()

    def root_path(self) -> Path:
        return Path(self.root).expanduser().absolute()

    def needs_a_root(self) -> bool:
        """The source reads its default folders under the root, or a path is relative to it."""
        return self.needs_root or any(v and not Path(v).expanduser().is_absolute() for v in self.paths())


def unknown_keys(mapping: dict, allowed: set[str], key: str) -> None:
    """A per-split mapping of the data section names only splits (its role names)."""
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ValueError(
            f"data.{key}: unknown key {unknown[0]!r}; keys are roles ({', '.join(sorted(allowed))})"
        )


def check_root(data: RealSourceConfig) -> None:
    """A root that is given exists (whether one is needed: dcsft.data.splits.check_data)."""
    if data.root and not data.root_path().is_dir():
        raise DataError(f"data.root {data.root_path()}: folder does not exist")


def check_disjoint(images: dict[str, set], test: str) -> None:
    """No image in both cold start and training set, nor in either and the ID test split `test`."""
    for a, b in [("coldstart", "train"), ("coldstart", test), ("train", test)]:
        shared = images[a] & images[b]
        if shared:
            raise DataError(
                f"{len(shared)} image(s) are in both {a} and {b} (first: {sorted(shared)[0]}); "
                f"the splits must be disjoint"
            )


def ood_overlap(images: dict[str, set], ood_splits: list[str]) -> dict[str, int]:
    """Images an OOD split shares with training, per split, each warned about: an OOD set may
    reuse training images with other labels (Ref-L4 reuses COCO images, with other expressions)."""
    trained = images["coldstart"] | images["train"]
    overlap = {name: len(trained & images[name]) for name in ood_splits}
    for name, shared in overlap.items():
        if shared:
            console.warn(f"{name}: {shared} of its {len(images[name])} images are also training images")
    return overlap


def bad_record(data: RealSourceConfig, loaded: LoadedRecords) -> None:
    """`data.bad_images: error`: the first unusable record ends prepare in one line."""
    if data.bad_images == "error" and loaded.skipped:
        first = loaded.skipped[0]
        raise DataError(
            f"{first.line()} ({len(loaded.skipped)} unusable record(s); "
            f"data.bad_images: skip leaves them out and counts them)"
        )


def subsample(seed: int, records: list[dict], n: int | None, what: str) -> list[dict]:
    """At most n records, drawn with the seed, in their order."""
    if n is None or len(records) <= n:
        return records
    keep = sorted(random.Random(f"{seed}:{what}").sample(range(len(records)), n))
    return [records[i] for i in keep]


def enough(wanted: int, have: int, what: str, where: str) -> None:
    """A draw of `wanted` records from `have` usable ones is possible (prepare and plan say it alike)."""
    if have < wanted:
        raise DataError(f"{where}: {wanted} {what} records requested, only {have} usable")


def decoded(data: RealSourceConfig, loaded: LoadedRecords, file: str, advance) -> LoadedRecords:
    """The records whose image decodes; the others become Skips (or the error)."""
    kept = LoadedRecords([], list(loaded.skipped))
    for index, record in enumerate(loaded.records):
        problem = image_problem(Path(record["image"]))
        if problem:
            kept.skipped.append(Skip(file, index, record.get("id"), problem))
        else:
            kept.records.append(record)
        advance(1)
    bad_record(data, kept)
    return kept


# ---------------------------------------------------------------- what `dcsft plan` finds


@dataclass
class SplitCheck:
    name: str
    where: str
    count: int = 0  # records the split will have (prepare may still skip undecodable ones)
    images: list[Path] = field(default_factory=list)  # images to check
    listed: bool = False  # images come from a folder listing: they exist
    missing: list[str] = field(default_factory=list)  # image files not found
    lost: int = 0  # records left out for them (not in count)
    unreadable: list[str] = field(default_factory=list)
    sampled: int = 0
    note: str = ""


@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    splits: dict[str, SplitCheck] = field(default_factory=dict)

    def bad_input(self, bad_images: str, line: str, blocking: bool = False) -> None:
        """Unusable input: a problem under `bad_images: error` (or when `blocking`), else a
        warning that prepare skips it."""
        if bad_images == "error" or blocking:
            self.problems.append(line if bad_images == "error" else f"{line}; prepare skips them")
        else:
            self.warnings.append(f"{line}; prepare skips them")
