"""The study's splits per task and source: what each one is made of and which are evaluated.

Every study has the same roles: `coldstart`, `train`, `test` (the in-distribution split) and
the OOD splits of `data.ood_splits`. In the run directory the ID split keeps the task's name
whatever the source (`photo` for classification, `refs` for grounding), so reports, status
and comparisons read every run the same way; prepare's stats.json says what each split is.

Embedded (the drawn worlds). Classification: ID `photo` mirrors ImageNet val, OOD `rendition`
and `adversarial` mirror ImageNet-R and ImageNet-A. Grounding: ID `refs` mirrors RefCOCO
(short expressions on photo scenes), OOD `relational` mirrors Ref-L4 (longer, compositional
expressions) and `indirect` mirrors LISA-Grounding (expressions to reason about, on drawn
scenes, a style training never shows).

Real sources (paths relative to `data.root` unless absolute):
- `imagenet`: folders of `<wnid>/` class folders, or a flat folder + labels file
  (dcsft.data.imagenet). Cold start and training images both come from `folders.train`
  (default ROOT/train), drawn per class with `per_class.coldstart` / `per_class.train`, the
  training draw leaving the cold-start images out; `test` from `folders.test` (default
  ROOT/val, flat with `labels.test` or LOC_val_solution.csv at the root) over the training
  classes; each OOD split from `folders.<name>` (default ROOT/<name>) over `ood_classes`.
- `paper`: the paper's exact splits from the manifest (dcsft.data.paper): cold start 400,
  train 9,600, test = ImageNet val 5,000, OOD `imagenet-r` / `imagenet-a`.
- `refcoco`: the RefCOCO splits named in `refcoco_splits` (classic refer layout or parquet,
  dcsft.data.refcoco); `n_coldstart` and `n_train` records are drawn with the seed, the
  training draw leaving out every image of the cold start; each OOD split from `files.<name>`.
- `records`: every role from its own file in `files` (problem/solution/image or ms-swift
  records, dcsft.data.formats); how Ref-L4, LISA-Grounding or any other set gets in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.errors import ConfigError


@dataclass(frozen=True)
class SplitSpec:
    name: str
    style: str
    size: int
    noisy: bool = False  # carries label noise and ambiguous items, as real training sets do
    grammar: str | None = None  # grounding: how expressions are phrased (dcsft.data.scenes)


ID_SPLITS = {"classification": "photo", "grounding": "refs"}
# Evaluation splits each task can draw: name -> (style, grammar).
OOD_SPLITS = {
    "classification": {"rendition": ("rendition", None), "adversarial": ("adversarial", None)},
    "grounding": {"relational": ("photo", "relational"), "indirect": ("drawing", "indirect")},
}
TRAIN_SOURCE = {"classification": ("photo", None), "grounding": ("photo", "short")}

REAL_SOURCES = ("imagenet", "paper", "refcoco", "records")
SOURCE_TASK = {"imagenet": "classification", "paper": "classification", "refcoco": "grounding"}
ROLES = ("coldstart", "train", "test")
PAPER_OOD = ("imagenet-r", "imagenet-a")
# The manifest's split (and image folder under the root) of each role of the paper source.
PAPER_SPLIT = {"coldstart": "coldstart", "train": "train", "test": "val", "imagenet-r": "imagenet-r",
               "imagenet-a": "imagenet-a"}
PAPER_FOLDER = {"coldstart": "train", "train": "train", "test": "val", "imagenet-r": "imagenet-r",
                "imagenet-a": "imagenet-a"}
DEFAULT_FOLDER = {"train": "train", "coldstart": "train", "test": "val"}  # imagenet; an OOD split: its name
LOC_LABELS = "LOC_val_solution.csv"  # the Kaggle ImageNet layout's val labels, found at the root


def id_split(task: str) -> str:
    return ID_SPLITS[task]


def is_real(cfg: StudyConfig) -> bool:
    return cfg.data.source != "embedded"


def roles(cfg: StudyConfig) -> list[tuple[str, str]]:
    """(split name in the run directory, role) of every split, in order."""
    return [("coldstart", "coldstart"), ("train", "train"), (id_split(cfg.task), "test"),
            *((name, name) for name in cfg.data.ood_splits)]


def check_ood_splits(cfg: StudyConfig) -> None:
    data = cfg.data
    if len(set(data.ood_splits)) != len(data.ood_splits):
        raise ConfigError(f"data.ood_splits: a split is listed twice in {data.ood_splits}")
    if data.source == "embedded":
        known = OOD_SPLITS[cfg.task]
        unknown = [name for name in data.ood_splits if name not in known]
        if unknown:
            raise ConfigError(f"data.ood_splits: {', '.join(unknown)} not an OOD split of task {cfg.task}; "
                              f"known: {', '.join(known)}")
        return
    taken = [n for n in data.ood_splits if n in (*ROLES, id_split(cfg.task))]
    if taken:
        raise ConfigError(f"data.ood_splits: {taken[0]!r} is the name of another split; "
                          f"name OOD splits after their data (e.g. imagenet-r)")
    if data.source == "paper":
        unknown = [n for n in data.ood_splits if n not in PAPER_OOD]
        if unknown:
            raise ConfigError(f"data.ood_splits: {', '.join(unknown)} not in the paper's splits; "
                              f"known: {', '.join(PAPER_OOD)}")
    if data.source in ("refcoco", "records"):
        wanted = [*(ROLES if data.source == "records" else ()), *data.ood_splits]
        absent = [n for n in wanted if n not in data.files]
        if absent:
            raise ConfigError(f"data.files: no file for split {absent[0]!r} (source {data.source} reads "
                              f"{', '.join(wanted)} from data.files)")


def check_data(cfg: StudyConfig) -> None:
    """A one-line ConfigError for a data section that cannot work, before anything is read."""
    data = cfg.data
    check_ood_splits(cfg)
    if data.source == "embedded":
        if data.label_noise + data.ambiguous > 1:
            raise ConfigError(f"data.label_noise + data.ambiguous: {data.label_noise} + {data.ambiguous} is above 1; "
                              f"the two kinds are exclusive, so their shares must sum to at most 1")
        if cfg.task == "grounding" and data.small + data.occluded + data.twin > 1:
            raise ConfigError(f"data.small + data.occluded + data.twin: {data.small} + {data.occluded} + {data.twin} "
                              f"is above 1; a scene has one hardness, so the shares must sum to at most 1")
        return
    expected = SOURCE_TASK.get(data.source)
    if expected and expected != cfg.task:
        raise ConfigError(f"data.source {data.source} holds {expected} data, the task is {cfg.task}: "
                          f"set task: {expected}")
    used = [*data.folders.values(), *data.labels.values(), *data.files.values(), data.names, data.manifest]
    if data.source == "refcoco":
        used += ([data.refcoco_refs, data.refcoco_instances, data.refcoco_images]
                 if data.refcoco_layout == "classic" else data.refcoco_parquet)
    relative = [v for v in used if v and not Path(v).expanduser().is_absolute()]
    if data.source in ("imagenet", "paper") or relative:
        if not data.root:
            raise ConfigError(f"data.root: the dataset root is needed by data.source {data.source} "
                              f"(--set data.root=/path/to/data)")
    splits = {"coldstart", "train", "test", *data.ood_splits}
    for field, keys in (("folders", splits), ("labels", splits), ("per_class", set(ROLES)),
                        ("files", splits), ("refcoco_splits", set(ROLES))):
        unknown = sorted(set(getattr(data, field)) - keys)
        if unknown:
            raise ConfigError(f"data.{field}: unknown key {unknown[0]!r}; keys are roles "
                              f"({', '.join(ROLES if field in ('per_class', 'refcoco_splits') else sorted(splits))})")
    bad = {k: n for k, n in data.per_class.items() if n < 1}
    if bad:
        raise ConfigError(f"data.per_class.{next(iter(bad))}: must be at least 1")
    if data.source == "imagenet" and "coldstart" not in data.per_class:
        raise ConfigError("data.per_class.coldstart: the cold start is drawn per class from the training folder; "
                          "say how many images per class (paper: 4)")
    if data.source == "refcoco":
        absent = [r for r in ROLES if r not in data.refcoco_splits]
        if absent:
            raise ConfigError(f"data.refcoco_splits: no RefCOCO split named for role {absent[0]!r}")
        if data.refcoco_layout == "parquet" and not data.refcoco_parquet:
            raise ConfigError("data.refcoco_parquet: list the parquet files (or glob patterns) of layout parquet")
    if data.source == "records" and data.files.get("coldstart") == data.files.get("train"):
        raise ConfigError("data.files: coldstart and train are the same file; they must be disjoint")


def data_path(cfg: StudyConfig, value: str) -> Path:
    """A path of the data section: absolute, or relative to data.root."""
    path = Path(value).expanduser()
    if path.is_absolute() or not cfg.data.root:
        return path.absolute()
    return (Path(cfg.data.root).expanduser() / path).absolute()


def root(cfg: StudyConfig) -> Path:
    return Path(cfg.data.root).expanduser().absolute()


def image_folder(cfg: StudyConfig, role: str) -> Path:
    """imagenet / paper: the folder a role's images are in (coldstart shares train's)."""
    key = "train" if role == "coldstart" else role
    if key in cfg.data.folders:
        return data_path(cfg, cfg.data.folders[key])
    default = (PAPER_FOLDER if cfg.data.source == "paper" else DEFAULT_FOLDER).get(key, key)
    return root(cfg) / default


def labels_file(cfg: StudyConfig, role: str) -> Path | None:
    """imagenet: the labels file of a flat folder: `labels.<role>`, else for the test split
    LOC_val_solution.csv at the root when the folder is flat and that file exists."""
    if role in cfg.data.labels:
        return data_path(cfg, cfg.data.labels[role])
    folder = image_folder(cfg, role)
    loc = root(cfg) / LOC_LABELS
    if role == "test" and loc.is_file() and folder.is_dir() and not any(p.is_dir() for p in folder.iterdir()):
        return loc
    return None


def check_image_folder(cfg: StudyConfig, role: str, name: str) -> tuple[Path, Path | None]:
    """imagenet: a role's image folder and labels file, or a DataError naming the config key to set."""
    from dcsft.data.imagenet import is_image
    from dcsft.errors import DataError

    folder, labels = image_folder(cfg, role), labels_file(cfg, role)
    if not folder.is_dir():
        raise DataError(f"{folder}: {'not a folder' if folder.exists() else 'folder does not exist'} "
                        f"(split {name}; set data.folders.{role} or data.root)")
    entries = list(folder.iterdir())
    if labels is None and not any(p.is_dir() for p in entries) and any(is_image(p) for p in entries):
        raise DataError(f"{folder}: a flat folder of images: set data.labels.{role} to its labels file "
                        f"(`<file> <wnid>` lines or LOC_val_solution.csv)")
    return folder, labels


def records_file(cfg: StudyConfig, role: str) -> Path:
    return data_path(cfg, cfg.data.files[role])


def refcoco_inputs(cfg: StudyConfig) -> dict:
    """The RefCOCO files: refs / instances / images (classic) or parquet files (globs expanded)."""
    data = cfg.data
    if data.refcoco_layout == "classic":
        return {"refs": data_path(cfg, data.refcoco_refs), "instances": data_path(cfg, data.refcoco_instances),
                "images": data_path(cfg, data.refcoco_images)}
    # parquet rows with an image path (not bytes) are read relative to refcoco_images when it
    # exists, else to the parquet file's folder
    images = data_path(cfg, data.refcoco_images) if data.root or Path(data.refcoco_images).is_absolute() else None
    files = []
    for pattern in data.refcoco_parquet:
        path = data_path(cfg, pattern)
        found = sorted(path.parent.glob(path.name)) if any(c in path.name for c in "*?[") else [path]
        files.extend(found or [path])
    return {"parquet": files, "images": images if images is not None and images.is_dir() else None}


def names_file(cfg: StudyConfig) -> Path:
    """imagenet: the wnid -> name map (default: the paper's names, shipped with dcsft)."""
    from dcsft.data.imagenet import NAMES_FILE

    return data_path(cfg, cfg.data.names) if cfg.data.names else NAMES_FILE


def manifest_file(cfg: StudyConfig) -> Path:
    from dcsft.data.paper import MANIFEST

    return data_path(cfg, cfg.data.manifest) if cfg.data.manifest else MANIFEST


def training_classes(cfg: StudyConfig, by_class: dict, names: dict[str, str], names_path: Path,
                     folder: Path) -> list[str]:
    """imagenet: the wnids of the study among the training folder's classes `by_class`: every
    class folder, the paper's 100, the listed ones, or n of the folders the name map names,
    drawn with the seed (the draw dcsft.data.imagenet.choose_classes makes)."""
    import random

    from dcsft.data.paper import paper_classes
    from dcsft.errors import DataError

    classes, available = cfg.data.classes, sorted(by_class)
    if classes is None:
        return available
    if classes == "paper":
        return paper_classes(manifest_file(cfg))
    if isinstance(classes, int):
        named = [wnid for wnid in available if wnid in names]
        if not 0 < classes <= len(named):
            raise DataError(f"{folder}: {classes} classes requested, {len(named)} of its {len(available)} class "
                            f"folders are named in {names_path}")
        return sorted(random.Random(f"classes:{cfg.data.seed}").sample(named, classes))
    return list(classes)


def check_per_class(cfg: StudyConfig, by_class: dict, chosen: list[str], folder: Path) -> None:
    """imagenet: every study class has its cold-start and training images in the training folder."""
    from dcsft.errors import DataError

    cold, train = cfg.data.per_class["coldstart"], cfg.data.per_class.get("train")
    short = {w: len(by_class[w]) for w in chosen if w in by_class and len(by_class[w]) < cold + (train or 1)}
    if short:
        wnid, have = next(iter(short.items()))
        more = f" (and {len(short) - 1} more classes short)" if len(short) > 1 else ""
        raise DataError(f"{folder}/{wnid}: {cold} cold-start + {train or 'at least 1'} training images per class "
                        f"requested, only {have} images{more}")


def ood_classes(cfg: StudyConfig, by_class: dict, names: dict[str, str], chosen: list[str], names_path: Path,
                folder: Path) -> list[str] | None:
    """imagenet: the classes of an OOD folder the study evaluates (None: all, by data.ood_classes)."""
    from dcsft.errors import DataError

    if cfg.data.ood_classes == "all":
        return None
    keep = [w for w in by_class if (w in names if cfg.data.ood_classes == "named" else w in chosen)]
    if not keep:
        which = f"named in {names_path}" if cfg.data.ood_classes == "named" else "a training class"
        raise DataError(f"{folder}: none of its {len(by_class)} classes is {which} (data.ood_classes)")
    return keep


def split_specs(cfg: StudyConfig) -> list[SplitSpec]:
    """Embedded: what each split is drawn from and how many. Real sources: the split names with
    the sizes known before loading (refcoco's draws; 0 where the data decides)."""
    check_ood_splits(cfg)
    data, task = cfg.data, cfg.task
    if is_real(cfg):
        known = {"coldstart": data.n_coldstart, "train": data.n_train} if data.source == "refcoco" else {}
        return [SplitSpec(name, data.source, known.get(role, 0)) for name, role in roles(cfg)]
    style, grammar = TRAIN_SOURCE[task]
    return [SplitSpec("coldstart", style, data.n_coldstart, grammar=grammar),
            SplitSpec("train", style, data.n_train, noisy=True, grammar=grammar),
            SplitSpec(id_split(task), style, data.n_test, grammar=grammar),
            *(SplitSpec(name, *OOD_SPLITS[task][name][:1], data.n_test, grammar=OOD_SPLITS[task][name][1])
              for name in data.ood_splits)]


def eval_splits(cfg: StudyConfig) -> list[str]:
    return [id_split(cfg.task), *cfg.data.ood_splits]
