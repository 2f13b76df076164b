"""The imagenet source: ImageNet-style image folders (dcsft.data.imagenet), the splits drawn with the seed.

Cold start and training images both come from `folders.train` (default ROOT/train), drawn per
class with `per_class.coldstart` / `per_class.train`, the training draw leaving the cold-start
images out; `test` from `folders.test` (default ROOT/val, flat with `labels.test` or
LOC_val_solution.csv at the root) over the training classes; each OOD split from
`folders.<name>` (default ROOT/<name>) over `ood_classes`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import model_validator

from dcsft.data import imagenet, paper
from dcsft.data.records import LoadedRecords
from dcsft.data.sources.common import ROLES, Findings, RealSourceConfig, SplitCheck, unknown_keys
from dcsft.data.splits import Study, roles
from dcsft.errors import DataError

DEFAULT_FOLDER = {"train": "train", "coldstart": "train", "test": "val"}  # an OOD split: its name
LOC_LABELS = "LOC_val_solution.csv"  # the Kaggle ImageNet layout's val labels, found at the root


class ImagenetSource(RealSourceConfig):
    source: Literal["imagenet"] = "imagenet"
    ood_splits: list[str] = ["imagenet-r", "imagenet-a"]
    # The image folder per role (train, test, an OOD split's name); cold start shares train's.
    # Default: ROOT/train, ROOT/val, ROOT/<name>.
    folders: dict[str, str] = {}
    # The labels file of a flat folder per role (test: `<file> <wnid>` lines or LOC_val_solution.csv).
    labels: dict[str, str] = {}
    # The wnid -> one-word name map (default: dcsft.data.imagenet.NAMES_FILE, shipped with dcsft:
    # the paper's 186 classes and 296 more, none of them an ImageNet-R / -A class).
    names: str | None = None
    # The study's classes: None all folders, n named ones drawn with the seed, a list of wnids, or
    # the paper's 100.
    classes: int | list[str] | Literal["paper"] | None = None
    # Images per class per role (coldstart required, train, test) drawn with the seed; absent: all.
    per_class: dict[str, int] = {}
    # The classes an OOD split is evaluated on: those the name map names, the training ones, or all.
    ood_classes: Literal["named", "train", "all"] = "named"

    needs_root: ClassVar[bool] = True

    @model_validator(mode="after")
    def _per_split_keys(self) -> ImagenetSource:
        unknown_keys(self.folders, self.split_names(), "folders")
        unknown_keys(self.labels, self.split_names(), "labels")
        unknown_keys(self.per_class, set(ROLES), "per_class")
        small = [k for k, n in self.per_class.items() if n < 1]
        if small:
            raise ValueError(f"data.per_class.{small[0]}: must be at least 1")
        if "coldstart" not in self.per_class:
            raise ValueError(
                "data.per_class.coldstart: the cold start is drawn per class from the training "
                "folder; say how many images per class (paper: 4)"
            )
        return self

    def paths(self) -> list[str]:
        return [*self.folders.values(), *self.labels.values(), self.names]

    def image_folder(self, role: str) -> Path:
        """The folder a role's images are in (coldstart shares train's)."""
        key = "train" if role == "coldstart" else role
        if key in self.folders:
            return self.path(self.folders[key])
        return self.root_path() / DEFAULT_FOLDER.get(key, key)

    def labels_file(self, role: str) -> Path | None:
        """`labels.<role>`, else for the test split LOC_val_solution.csv at the root when the
        folder is flat and that file exists."""
        if role in self.labels:
            return self.path(self.labels[role])
        folder, loc = self.image_folder(role), self.root_path() / LOC_LABELS
        flat = folder.is_dir() and not any(p.is_dir() for p in folder.iterdir())
        if role == "test" and loc.is_file() and flat:
            return loc
        return None

    def names_file(self) -> Path:
        return self.path(self.names) if self.names else imagenet.NAMES_FILE


def checked_folder(data: ImagenetSource, role: str, name: str) -> tuple[Path, Path | None]:
    """A role's image folder and labels file, or a DataError naming the config key to set."""
    folder, labels = data.image_folder(role), data.labels_file(role)
    if not folder.is_dir():
        raise DataError(
            f"{folder}: {'not a folder' if folder.exists() else 'folder does not exist'} "
            f"(split {name}; set data.folders.{role} or data.root)"
        )
    entries = list(folder.iterdir())
    if labels is None and not any(p.is_dir() for p in entries) and any(imagenet.is_image(p) for p in entries):
        raise DataError(
            f"{folder}: a flat folder of images: set data.labels.{role} to its labels file "
            f"(`<file> <wnid>` lines or LOC_val_solution.csv)"
        )
    return folder, labels


@dataclass
class StudyClasses:
    """The training folder's classes and the study's among them, every one named."""

    names_path: Path
    names: dict[str, str]
    folder: Path
    by_class: dict[str, list[Path]]
    chosen: list[str]


def study_classes(data: ImagenetSource) -> StudyClasses:
    names_path = data.names_file()
    names = imagenet.read_name_map(names_path)
    folder = data.image_folder("train")
    by_class = imagenet.scan(folder)
    chosen = training_classes(data, by_class, names, names_path, folder)
    absent = [w for w in chosen if w not in by_class]
    if absent:
        raise DataError(f"{folder}: no images of {len(absent)} requested class(es) (first: {absent[0]})")
    imagenet.check_names(chosen, names, folder, str(names_path))
    cold, train = data.per_class["coldstart"], data.per_class.get("train")
    short = {w: len(by_class[w]) for w in chosen if len(by_class[w]) < cold + (train or 1)}
    if short:
        wnid, have = next(iter(short.items()))
        more = f" (and {len(short) - 1} more classes short)" if len(short) > 1 else ""
        raise DataError(
            f"{folder}/{wnid}: {cold} cold-start + {train or 'at least 1'} training images per "
            f"class requested, only {have} images{more}"
        )
    return StudyClasses(names_path, names, folder, by_class, chosen)


def training_classes(
    data: ImagenetSource, by_class: dict, names: dict[str, str], names_path: Path, folder: Path
) -> list[str]:
    """Every class folder, the paper's 100, the listed ones, or n of the folders the name map
    names, drawn with the seed (the draw dcsft.data.imagenet.choose_classes makes)."""
    classes, available = data.classes, sorted(by_class)
    if classes is None:
        return available
    if classes == "paper":
        return paper.paper_classes()
    if isinstance(classes, int):
        named = [wnid for wnid in available if wnid in names]
        if not 0 < classes <= len(named):
            raise DataError(
                f"{folder}: {classes} classes requested, {len(named)} of its {len(available)} "
                f"class folders are named in {names_path}"
            )
        return sorted(random.Random(f"classes:{data.seed}").sample(named, classes))
    return list(classes)


def test_classes(data: ImagenetSource, found: dict, chosen: list[str], folder: Path) -> None:
    """The test folder holds every training class, with `per_class.test` images each."""
    missing = [w for w in chosen if w not in found]
    if missing:
        raise DataError(f"{folder}: no images of {len(missing)} training class(es) (first: {missing[0]})")
    per = data.per_class.get("test")
    short = {w: len(found[w]) for w in chosen if per and len(found[w]) < per}
    if short:
        wnid, have = next(iter(short.items()))
        raise DataError(f"{folder}/{wnid}: {per} test images per class requested, only {have}")


def ood_classes(data: ImagenetSource, found: dict, classes: StudyClasses, folder: Path) -> list[str]:
    """The classes of an OOD folder the study evaluates (by data.ood_classes), every one named."""
    if data.ood_classes == "all":
        imagenet.check_names(list(found), classes.names, folder, str(classes.names_path))
        return list(found)
    named = data.ood_classes == "named"
    keep = [w for w in found if (w in classes.names if named else w in classes.chosen)]
    if not keep:
        which = f"named in {classes.names_path}" if named else "a training class"
        raise DataError(f"{folder}: none of its {len(found)} classes is {which} (data.ood_classes)")
    return keep


def eval_folders(cfg: Study, classes: StudyClasses):
    """(split name, role, folder, labels file, its classes, images per class) of each evaluation split."""
    data = cfg.data
    for name, role in roles(cfg)[2:]:
        folder, labels = checked_folder(data, role, name)
        found = imagenet.scan(folder, labels)
        if role == "test":
            test_classes(data, found, classes.chosen, folder)
            yield name, role, folder, labels, found, classes.chosen, data.per_class.get("test")
        else:
            yield name, role, folder, labels, found, ood_classes(data, found, classes, folder), None


def survey(cfg: Study, out: Findings) -> None:
    data = cfg.data
    classes = study_classes(data)
    named = sum(w in classes.names for w in classes.by_class)
    out.lines.append(
        f"  label map {classes.names_path}: names {named} of the {len(classes.by_class)} class "
        f"folders of {classes.folder}; the study uses {len(classes.chosen)} classes, all named"
    )
    cold, train, n_classes = data.per_class["coldstart"], data.per_class.get("train"), len(classes.chosen)
    pool = [p for w in classes.chosen for p in classes.by_class[w]]
    out.splits["coldstart"] = SplitCheck(
        "coldstart", f"{classes.folder} ({cold} per class)", cold * n_classes, pool, True
    )
    out.splits["train"] = SplitCheck(
        "train",
        f"{classes.folder} ({train or 'the rest'} per class)",
        train * n_classes if train else len(pool) - cold * n_classes,
        [],
        True,
        note="images checked with coldstart's (the same folder)",
    )
    for name, role, folder, labels, found, chosen, per in eval_folders(cfg, classes):
        images = [p for w in chosen for p in found[w]]
        check = SplitCheck(
            name,
            f"{folder}{' + ' + str(labels) if labels else ''}",
            per * len(chosen) if per else len(images),
            images,
            True,
        )
        if role != "test":
            trained = sum(w in classes.chosen for w in chosen)
            check.note = (
                f"{len(chosen)} of its {len(found)} classes ({data.ood_classes}), {trained} of them trained"
            )
        out.splits[name] = check


def load(cfg: Study, folder: Path) -> dict[str, LoadedRecords]:
    data = cfg.data
    classes = study_classes(data)
    common = dict(names=classes.names_path, seed=data.seed, bad_images=data.bad_images)
    cold = imagenet.load_split(
        classes.folder, "coldstart", classes=classes.chosen, per_class=data.per_class["coldstart"], **common
    )
    train = imagenet.load_split(
        classes.folder,
        "train",
        classes=classes.chosen,
        per_class=data.per_class.get("train"),
        exclude=[Path(r["image"]) for r in cold.records],
        **common,
    )
    splits = {"coldstart": cold, "train": train}
    for name, role, where, labels, _, chosen, per in eval_folders(cfg, classes):
        split = "val" if role == "test" else name
        splits[name] = imagenet.load_split(
            where, split, classes=chosen, per_class=per, labels=labels, **common
        )
    return splits


def describe(cfg: Study, role: str) -> str:
    per = cfg.data.per_class.get(role)
    return f"imagenet folder {cfg.data.image_folder(role)}" + (f", {per} per class" if per else "")
