"""The paper source: the paper's exact ImageNet splits from the manifest shipped with dcsft
(dcsft.data.paper), mapped onto your ImageNet root: cold start 400, train 9,600, test =
ImageNet val 5,000, OOD `imagenet-r` (10,741) and `imagenet-a` (3,015)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import model_validator

from dcsft.console import progress
from dcsft.data import paper
from dcsft.data.records import LoadedRecords
from dcsft.data.sources.common import Findings, RealSourceConfig, SplitCheck, decoded, unknown_keys
from dcsft.data.splits import Study, roles

PAPER_OOD = ("imagenet-r", "imagenet-a")
# The manifest's split of each role, and the image folder under the root it lies in.
MANIFEST_SPLIT = {
    "coldstart": "coldstart",
    "train": "train",
    "test": "val",
    "imagenet-r": "imagenet-r",
    "imagenet-a": "imagenet-a",
}
FOLDER = {
    "coldstart": "train",
    "train": "train",
    "test": "val",
    "imagenet-r": "imagenet-r",
    "imagenet-a": "imagenet-a",
}


class PaperSource(RealSourceConfig):
    source: Literal["paper"] = "paper"
    ood_splits: list[str] = list(PAPER_OOD)
    # The image folder per role (train, test, imagenet-r, imagenet-a), holding its `<wnid>/`
    # folders; cold start shares train's. Default: ROOT/train, ROOT/val, ROOT/imagenet-r, ROOT/imagenet-a.
    folders: dict[str, str] = {}
    manifest: str | None = None  # the manifest of the exact splits (default: shipped with dcsft)

    needs_root: ClassVar[bool] = True

    @model_validator(mode="after")
    def _paper_splits(self) -> PaperSource:
        unknown = [n for n in self.ood_splits if n not in PAPER_OOD]
        if unknown:
            raise ValueError(
                f"data.ood_splits: {', '.join(unknown)} not in the paper's splits; "
                f"known: {', '.join(PAPER_OOD)}"
            )
        unknown_keys(self.folders, self.split_names(), "folders")
        return self

    def paths(self) -> list[str]:
        return [*self.folders.values(), self.manifest]

    def manifest_file(self) -> Path:
        return self.path(self.manifest) if self.manifest else paper.MANIFEST

    def folder_roots(self) -> dict[str, Path]:
        """The manifest's top folder -> the folder given for it in `folders`."""
        return {FOLDER[role]: self.path(value) for role, value in self.folders.items()}

    def image_folder(self, role: str) -> Path:
        key = "train" if role == "coldstart" else role
        return self.path(self.folders[key]) if key in self.folders else self.root_path() / FOLDER[key]


def survey(cfg: Study, out: Findings) -> None:
    data = cfg.data
    manifest = data.manifest_file()
    rows = paper.read_manifest(manifest)
    roots, root = data.folder_roots(), data.root_path()
    name_of = {MANIFEST_SPLIT[role]: name for name, role in roles(cfg)}
    for name, role in roles(cfg):
        where = f"{data.image_folder(role)} ({manifest.name}: {MANIFEST_SPLIT[role]})"
        out.splits[name] = SplitCheck(name, where, listed=True)  # located images exist
    for row in rows:
        if row["split"] not in name_of:
            continue
        check = out.splits[name_of[row["split"]]]
        image = paper.locate(row, root, roots)
        if image is None:
            check.missing.append(row["file"])
            check.lost += 1
        else:
            check.images.append(image)
            check.count += 1
    trained = {r["wnid"] for r in rows if r["split"] == "train"}
    out.lines.append(
        f"  label map: the manifest's names ({manifest}): {len(trained)} training classes, "
        f"{len({r['wnid'] for r in rows})} classes in all, every one named"
    )


def load(cfg: Study, folder: Path) -> dict[str, LoadedRecords]:
    data = cfg.data
    manifest = data.manifest_file()
    wanted = {name: MANIFEST_SPLIT[role] for name, role in roles(cfg)}
    found = paper.import_paper_splits(
        manifest,
        data.root_path(),
        roots=data.folder_roots(),
        splits=tuple(wanted.values()),
        missing=data.bad_images,
    )
    total = sum(len(found[split].records) for split in wanted.values())
    with progress("checking images", total) as advance:
        return {name: decoded(data, found[split], str(manifest), advance) for name, split in wanted.items()}


def describe(cfg: Study, role: str) -> str:
    return f"the paper's {MANIFEST_SPLIT[role]} split, images under {cfg.data.image_folder(role)}"
