"""The refcoco source: the RefCOCO splits named in `refcoco_splits` (the refer toolkit's classic
layout or Hugging Face parquet files, dcsft.data.refcoco). `n_coldstart` and `n_train` records
are drawn with the seed, the training draw leaving out every image of the cold start; the ID
test split is the whole RefCOCO split; each OOD split comes from its record file in `files`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from dcsft.data import refcoco, refcoco_parquet
from dcsft.data.records import LoadedRecords
from dcsft.data.sources.common import (
    ROLES,
    Findings,
    RealSourceConfig,
    SplitCheck,
    bad_record,
    enough,
    subsample,
    unknown_keys,
)
from dcsft.data.sources.records import file_splits, files_of, survey_file
from dcsft.data.splits import Study, id_split, roles
from dcsft.errors import DataError


class RefcocoSource(RealSourceConfig):
    source: Literal["refcoco"] = "refcoco"
    ood_splits: list[str] = ["ref-l4", "lisa-grounding"]
    n_coldstart: int = 100  # cold-start records drawn from refcoco_splits.coldstart
    n_train: int = 600  # training records drawn from refcoco_splits.train, no image of the cold start's
    files: dict[str, str] = {}  # the record file of each OOD split (problem/solution/image or ms-swift)
    refcoco_layout: Literal["classic", "parquet"] = "classic"
    refcoco_refs: str = "refcoco/refs(unc).p"  # classic: the refer toolkit's data/ layout under root
    refcoco_instances: str = "refcoco/instances.json"  # classic: the COCO instances file the refs come with
    # classic: COCO train2014; parquet: the folder image paths are relative to
    refcoco_images: str = "images/mscoco/images/train2014"
    refcoco_parquet: list[str] = []  # parquet: files or glob patterns
    # role -> the RefCOCO split it is drawn from
    refcoco_splits: dict[str, str] = {"coldstart": "train", "train": "train", "test": "val"}
    one_sentence_per_ref: bool = False  # only each ref's first expression

    @model_validator(mode="after")
    def _splits_named(self) -> RefcocoSource:
        files_of(self.files, self.ood_splits, self.split_names(), self.source)
        unknown_keys(self.refcoco_splits, set(ROLES), "refcoco_splits")
        absent = [r for r in ROLES if r not in self.refcoco_splits]
        if absent:
            raise ValueError(f"data.refcoco_splits: no RefCOCO split named for role {absent[0]!r}")
        if self.refcoco_layout == "parquet" and not self.refcoco_parquet:
            raise ValueError(
                "data.refcoco_parquet: list the parquet files (or glob patterns) of layout parquet"
            )
        return self

    def known_size(self, role: str) -> int:
        return {"coldstart": self.n_coldstart, "train": self.n_train}.get(role, 0)

    def paths(self) -> list[str]:
        classic = [self.refcoco_refs, self.refcoco_instances, self.refcoco_images]
        layout = classic if self.refcoco_layout == "classic" else self.refcoco_parquet
        return [*self.files.values(), *layout]

    def classic_files(self) -> tuple[Path, Path, Path]:
        return self.path(self.refcoco_refs), self.path(self.refcoco_instances), self.path(self.refcoco_images)

    def parquet_files(self) -> list[Path]:
        """The parquet files, glob patterns expanded."""
        files = []
        for pattern in self.refcoco_parquet:
            path = self.path(pattern)
            found = sorted(path.parent.glob(path.name)) if any(c in path.name for c in "*?[") else [path]
            files.extend(found or [path])
        return files

    def parquet_images(self) -> Path | None:
        """Parquet rows with an image path (not bytes) are read relative to refcoco_images when it
        exists, else to the parquet file's folder."""
        if not (self.root or Path(self.refcoco_images).is_absolute()):
            return None
        images = self.path(self.refcoco_images)
        return images if images.is_dir() else None

    def where(self) -> str:
        """The file named in messages about the RefCOCO pools."""
        return str(self.classic_files()[0] if self.refcoco_layout == "classic" else self.parquet_files()[0])


def draw_sizes(data: RefcocoSource, cold_pool: int, train_pool: int, cold_images: int | None = None) -> None:
    """The pools hold the records to draw; `cold_images`: the cold start's images, known once it is drawn
    (plan, before drawing, counts the cold start's records out of a shared pool instead)."""
    split_of = data.refcoco_splits
    enough(data.n_coldstart, cold_pool, "cold-start", f"RefCOCO {split_of['coldstart']} (data.n_coldstart)")
    shared = split_of["coldstart"] == split_of["train"]
    after = (
        f", without the cold start's {cold_images} images"
        if cold_images is not None
        else f", after the {data.n_coldstart} of the cold start"
        if shared
        else ""
    )
    enough(data.n_train, train_pool, "training", f"RefCOCO {split_of['train']} (data.n_train{after})")


# ---------------------------------------------------------------- load (prepare)


def load_pool(data: RefcocoSource, folder: Path, split: str) -> LoadedRecords:
    """Every usable record of one RefCOCO split; parquet image bytes are written to folder/images/refcoco/."""
    if data.refcoco_layout == "classic":
        loaded = refcoco.load_refcoco_classic(*data.classic_files(), split, data.one_sentence_per_ref)
    else:
        loaded = refcoco_parquet.load_refcoco_parquet(
            data.parquet_files(),
            folder / "images" / "refcoco",
            split,
            data.one_sentence_per_ref,
            data.parquet_images(),
        )
    bad_record(data, loaded)
    if not loaded.records:
        raise DataError(
            f"{data.where()}: no usable records of RefCOCO split {split!r} ({len(loaded.skipped)} skipped)"
        )
    return loaded


def load(cfg: Study, folder: Path) -> dict[str, LoadedRecords]:
    data, split_of = cfg.data, cfg.data.refcoco_splits
    pools = {split: load_pool(data, folder, split) for split in dict.fromkeys(split_of[r] for r in ROLES)}
    cold_pool, train_pool = pools[split_of["coldstart"]], pools[split_of["train"]]
    cold = subsample(data.seed, cold_pool.records, data.n_coldstart, "coldstart")
    cold_images = {r["image"] for r in cold}
    usable = [r for r in train_pool.records if r["image"] not in cold_images]
    draw_sizes(data, len(cold_pool.records), len(usable), len(cold_images))  # before anything is written
    train = subsample(data.seed, usable, data.n_train, "train")
    # a pool's skips are counted once, with the first role drawn from it
    counted: set[str] = set()

    def skips(role: str) -> list:
        split = split_of[role]
        first = split not in counted
        counted.add(split)
        return pools[split].skipped if first else []

    splits = {
        "coldstart": LoadedRecords(cold, skips("coldstart")),
        "train": LoadedRecords(train, skips("train")),
        id_split(cfg.task): LoadedRecords(pools[split_of["test"]].records, skips("test")),
    }
    splits.update(file_splits(cfg, [(name, name) for name in data.ood_splits]))
    return splits


def describe(cfg: Study, role: str) -> str:
    data = cfg.data
    if role in data.refcoco_splits:
        return f"RefCOCO {data.refcoco_splits[role]} ({data.refcoco_layout} layout)"
    return f"records file {data.path(data.files[role])}"


# ---------------------------------------------------------------- survey (plan): counts without decoding


@dataclass
class SplitSurvey:
    """One RefCOCO split as `dcsft plan` sees it: the records it gives, its image files
    (existing), and the files missing with the records they take along."""

    records: int = 0
    images: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    lost: int = 0


def survey(cfg: Study, out: Findings) -> None:
    data, split_of = cfg.data, cfg.data.refcoco_splits
    pools = classic_pools(cfg, out) if data.refcoco_layout == "classic" else parquet_pools(cfg, out)
    shared = split_of["coldstart"] == split_of["train"]
    needed = data.n_coldstart + data.n_train if shared else data.n_train
    draw_sizes(
        data,
        pools[split_of["coldstart"]].records,
        pools[split_of["train"]].records - (data.n_coldstart if shared else 0),
    )
    shown = set()  # a pool's missing files are listed on the first split drawn from it
    for name, role in roles(cfg)[:3]:
        pool = pools[split_of[role]]
        size = pool.records if role == "test" else data.known_size(role)
        check = SplitCheck(name, f"RefCOCO {split_of[role]} ({data.refcoco_layout})", size, pool.images, True)
        if split_of[role] not in shown:
            check.missing, check.lost = pool.missing, pool.lost
            shown.add(split_of[role])
        out.splits[name] = check
    for name in data.ood_splits:
        out.splits[name] = survey_file(cfg, name, name, out)
    if shared:
        out.lines.append(
            f"  cold start and training set: drawn from RefCOCO {split_of['train']}, the "
            f"training draw leaving out every image of the cold start (so it needs somewhat "
            f"more than {needed:,} records)"
        )


def classic_pools(cfg: Study, out: Findings) -> dict[str, SplitSurvey]:
    """RefCOCO split -> what `load_refcoco_classic` would give, from the refs and instances files
    and the image folder's files (checked to exist; prepare decodes them)."""
    data = cfg.data
    refs_path, instances_path, image_root = data.classic_files()
    for path, key in ((refs_path, "refs"), (instances_path, "instances")):
        if not path.is_file():
            raise DataError(f"{path}: file not found (data.refcoco_{key})")
    if not image_root.is_dir():
        raise DataError(f"{image_root}: folder does not exist (data.refcoco_images)")
    anns, images = refcoco.read_instances(instances_path)
    pools = {split: SplitSurvey() for split in data.refcoco_splits.values()}
    exists: dict[Path, bool] = {}
    bad: list[str] = []
    for ref in refcoco.read_refs(refs_path):
        if not isinstance(ref, dict) or ref.get("split") not in pools:
            continue
        try:
            ann, _, image, path = refcoco.classic_target(ref, anns, images, image_root)
            if image and "width" in image and "height" in image:
                refcoco.coco_box(ann.get("bbox"), (image["width"], image["height"]))
        except refcoco.BadRef as err:
            bad.append(f"ref_id {ref.get('ref_id')}: {err}")
            continue
        sentences = len(ref.get("sentences") or [])
        records = min(sentences, 1) if data.one_sentence_per_ref else sentences
        pool = pools[ref["split"]]
        if path not in exists:
            exists[path] = path.is_file()
            (pool.images if exists[path] else pool.missing).append(path if exists[path] else str(path))
        if exists[path]:
            pool.records += records
        else:
            pool.lost += records
    counts = ", ".join(
        f"{split} {pool.records:,} records of {len(pool.images):,} images"
        for split, pool in sorted(pools.items())
    )
    out.lines.append(f"  RefCOCO {refs_path}: {counts}")
    if bad:
        out.bad_input(
            data.bad_images, f"{refs_path}: {len(bad)} refs with a bad box or annotation (first: {bad[0]})"
        )
    return pools


def parquet_pools(cfg: Study, out: Findings) -> dict[str, SplitSurvey]:
    """RefCOCO split -> the records the parquet files would give (their images are not read)."""
    data = cfg.data
    pools = {split: SplitSurvey() for split in data.refcoco_splits.values()}
    for path in data.parquet_files():
        if not path.is_file():
            raise DataError(f"{path}: file not found (data.refcoco_parquet)")
        parquet, columns = refcoco_parquet.parquet_columns(path)
        expressions = next(c for c in refcoco_parquet.EXPRESSION_COLUMNS if c in columns)
        table = parquet.read(columns=[expressions, *(["split"] if "split" in columns else [])])
        texts = table.column(expressions).to_pylist()
        splits = (
            table.column("split").to_pylist()
            if "split" in columns
            else [refcoco_parquet.file_split(path) or "unknown"] * len(texts)
        )
        for split, value in zip(splits, texts):
            if split in pools:
                pools[split].records += sentences(value, data.one_sentence_per_ref)
    counts = ", ".join(f"{s} {pool.records:,} records" for s, pool in sorted(pools.items()))
    out.lines.append(
        f"  RefCOCO parquet: {counts} (images inside the files are decoded by prepare, not here)"
    )
    return pools


def sentences(value: object, one_per_ref: bool) -> int:
    """The records a row's expressions give."""
    try:
        count = len(refcoco.sentence_list(value)) if value is not None else 0
    except refcoco.BadRef:
        count = 0
    return min(count, 1) if one_per_ref else count
