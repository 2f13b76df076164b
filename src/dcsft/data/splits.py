"""The study's splits per task and source: what each one is made of and which are evaluated.

Every study has the same roles: `coldstart`, `train`, `test` (the in-distribution split) and
the OOD splits of `data.ood_splits`. In the run directory the ID split keeps the task's name
whatever the source (`photo` for classification, `refs` for grounding), so reports, status
and comparisons read every run the same way; prepare's stats.json says what each split is.

Embedded (the drawn worlds). Classification: ID `photo` mirrors ImageNet val, OOD `rendition`
and `adversarial` mirror ImageNet-R and ImageNet-A. Grounding: ID `refs` mirrors RefCOCO
(short expressions on photo scenes), OOD `relational` mirrors Ref-L4 (longer, compositional
expressions) and `indirect` mirrors LISA-Grounding (expressions to reason about, on drawn
scenes, a style training never shows). Reasoning (dcsft.data.reasoning_world): ID `questions`
mirrors MMK12's own questions (training templates, photo-like scenes), OOD `rephrased` (new
question templates) and `rendered` (a new figure style and layout) mirror MathVista's mix of
question sources and figure styles.

Real sources (dcsft.data.sources, one module each; paths relative to `data.root` unless absolute):
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
- `mmk12` (task reasoning): cold start, training set and ID test split drawn with the seed from
  MMK12's parquet files; each OOD split a benchmark's parquet files (dcsft.data.math_benchmarks).
- `records`: every role from its own file in `files` (problem/solution/image or ms-swift
  records, dcsft.data.formats); how Ref-L4, LISA-Grounding or any other set gets in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from dcsft.errors import ConfigError


class Study(Protocol):
    """What the data code reads of a study's config (dcsft.config.Study). A protocol, not
    the class itself: dcsft.config imports the data sources' config classes, so the data code must
    not import dcsft.config."""

    task: str
    data: Any  # the chosen source's config (dcsft.data.sources)
    model: Any  # dcsft.config.ModelConfig: the resize bounds


@dataclass(frozen=True)
class SplitSpec:
    name: str
    style: str
    size: int
    noisy: bool = False  # carries label noise and ambiguous items, as real training sets do
    # grounding: how expressions are phrased (dcsft.data.scenes); reasoning: the question
    # template set (dcsft.data.reasoning_world.TEMPLATES)
    grammar: str | None = None


ID_SPLITS = {"classification": "photo", "grounding": "refs", "reasoning": "questions"}
# Evaluation splits each task can draw: name -> (style, grammar).
OOD_SPLITS = {
    "classification": {"rendition": ("rendition", None), "adversarial": ("adversarial", None)},
    "grounding": {"relational": ("photo", "relational"), "indirect": ("drawing", "indirect")},
    "reasoning": {"rephrased": ("photo", "rephrased"), "rendered": ("rendered", "train")},
}
TRAIN_SOURCE = {
    "classification": ("photo", None),
    "grounding": ("photo", "short"),
    "reasoning": ("photo", "train"),
}

REAL_SOURCES = ("imagenet", "paper", "refcoco", "records", "mmk12")
SOURCE_TASK = {
    "imagenet": "classification",
    "paper": "classification",
    "refcoco": "grounding",
    "mmk12": "reasoning",
}
ROLES = ("coldstart", "train", "test")


def id_split(task: str) -> str:
    """The in-distribution test split's name: the built-in tasks' own, `test` for any other task."""
    return ID_SPLITS.get(task, "test")


def is_real(cfg: Study) -> bool:
    return cfg.data.source != "embedded"


def roles(cfg: Study) -> list[tuple[str, str]]:
    """(split name in the run directory, role) of every split, in order."""
    return [
        ("coldstart", "coldstart"),
        ("train", "train"),
        (id_split(cfg.task), "test"),
        *((name, name) for name in cfg.data.ood_splits),
    ]


def check_world_splits(cfg: Study) -> None:
    """Embedded: every OOD split is one the task's world draws."""
    known = OOD_SPLITS[cfg.task]
    unknown = [name for name in cfg.data.ood_splits if name not in known]
    if unknown:
        raise ConfigError(
            f"data.ood_splits: {', '.join(unknown)} not an OOD split of task {cfg.task}; "
            f"known: {', '.join(known)}"
        )


def check_data(cfg: Study) -> None:
    """The checks of the data section that need the task (the others are the source config's
    validators), and the dataset root: a one-line ConfigError before anything is read. The root
    is checked here, not on loading, since the shipped configs leave it to `--set data.root`."""
    data, task = cfg.data, cfg.task
    if data.source == "embedded":
        if task not in OOD_SPLITS:
            raise ConfigError(
                f"data.source embedded draws worlds for {' and '.join(OOD_SPLITS)}; task {task} needs its "
                f"records: set data.source to records (data.files: coldstart, train, test)"
            )
        check_world_splits(cfg)
        if task == "grounding" and data.small + data.occluded + data.twin > 1:
            raise ConfigError(
                f"data.small + data.occluded + data.twin: {data.small} + {data.occluded} + "
                f"{data.twin} is above 1; a scene has one hardness, so the shares must sum to at most 1"
            )
        return
    taken = [n for n in data.ood_splits if n in (*ROLES, id_split(task))]
    if taken:
        raise ConfigError(
            f"data.ood_splits: {taken[0]!r} is the name of another split; "
            f"name OOD splits after their data (e.g. imagenet-r)"
        )
    expected = SOURCE_TASK.get(data.source)
    if expected and expected != task:
        raise ConfigError(
            f"data.source {data.source} holds {expected} data, the task is {task}: set task: {expected}"
        )
    if data.needs_a_root() and not data.root:
        raise ConfigError(
            f"data.root: the dataset root is needed by data.source {data.source} "
            f"(--set data.root=/path/to/data)"
        )


def split_specs(cfg: Study) -> list[SplitSpec]:
    """Embedded: what each split is drawn from and how many. Real sources: the split names with
    the sizes known before loading (refcoco's draws; 0 where the data decides)."""
    data, task = cfg.data, cfg.task
    if is_real(cfg):
        return [SplitSpec(name, data.source, data.known_size(role)) for name, role in roles(cfg)]
    check_world_splits(cfg)
    style, grammar = TRAIN_SOURCE[task]
    return [
        SplitSpec("coldstart", style, data.n_coldstart, grammar=grammar),
        SplitSpec("train", style, data.n_train, noisy=True, grammar=grammar),
        SplitSpec(id_split(task), style, data.n_test, grammar=grammar),
        *(
            SplitSpec(name, *OOD_SPLITS[task][name][:1], data.n_test, grammar=OOD_SPLITS[task][name][1])
            for name in data.ood_splits
        ),
    ]


def eval_splits(cfg: Study) -> list[str]:
    return [id_split(cfg.task), *cfg.data.ood_splits]
