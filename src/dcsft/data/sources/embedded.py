"""The embedded source: the procedurally drawn worlds (classification: dcsft.data.world,
grounding: dcsft.data.scenes, reasoning: dcsft.data.reasoning_world), drawn by prepare from the
seed, in the frame the model sees.

Every split is drawn from its own seed stream, so pools are disjoint; the training split
carries the configured shares of mislabeled and ambiguous items (README, "Hard samples of the
kinds real data has", gives each default's source).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from dcsft.console import progress
from dcsft.data.sources.common import Findings, SourceConfig, SplitCheck
from dcsft.data.splits import SplitSpec, Study, split_specs
from dcsft.rundir import atomic_path, unit_finished
from dcsft.tasks import grounding

if TYPE_CHECKING:
    from dcsft.conventions import Wording


class EmbeddedSource(SourceConfig):
    source: Literal["embedded"] = "embedded"
    ood_splits: list[str] = ["rendition", "adversarial"]  # the grounding world's: relational, indirect
    image_size: int = 84  # the side images are drawn at (grounding: 126), then resized to the model's frame
    n_coldstart: int = 100  # cold-start images
    n_train: int = 600  # training images
    n_test: int = 300  # images per evaluation split
    # Training split only: label_noise (a wrong label or box), ambiguous (classification: several
    # objects or heavy occlusion; grounding: an expression that fits two objects). Exclusive kinds.
    label_noise: float = Field(0.06, ge=0, le=1)
    ambiguous: float = Field(0.05, ge=0, le=1)
    # Every split of the ID distribution (cold start, train, ID test). small: classification a small
    # or low-contrast object, grounding a tiny target; context (classification): the background is
    # the class's habitat, and in `adversarial` another class's; occluded, twin (grounding): a
    # partly hidden target, a near-duplicate distractor. small + occluded + twin at most 1 (grounding).
    small: float = Field(0.1, ge=0, le=1)
    context: float = Field(0.5, ge=0, le=1)
    occluded: float = Field(0.15, ge=0, le=1)
    twin: float = Field(0.15, ge=0, le=1)
    # classification: classes the base never saw (world.NOVEL_CLASSES)
    novel_classes: int = Field(1, ge=0, le=4)

    @model_validator(mode="after")
    def _exclusive_noise(self) -> EmbeddedSource:
        if self.label_noise + self.ambiguous > 1:
            raise ValueError(
                f"data.label_noise + data.ambiguous: {self.label_noise} + {self.ambiguous} is "
                f"above 1; the two kinds are exclusive, so their shares must sum to at most 1"
            )
        return self

    def known_size(self, role: str) -> int:
        return {"coldstart": self.n_coldstart, "train": self.n_train}.get(role, self.n_test)


def hard_sample_dials(cfg: Study) -> str:
    """The world's hard-sample dials in force (README, "Hard samples of the kinds real data has")."""
    from dcsft.data import world

    d = cfg.data
    if cfg.task == "reasoning":
        return (
            "none: every answer is verified (no label noise); skills counting, comparing, chart, arithmetic"
        )
    shared = f"label_noise {d.label_noise}, ambiguous {d.ambiguous} (train)"
    if cfg.task == "grounding":
        return f"{shared}; tiny {d.small}, occluded {d.occluded}, twin {d.twin} (every ID split)"
    novel = world.NOVEL_CLASSES[: d.novel_classes]
    named = f" ({', '.join(novel)})" if novel else ""
    return (
        f"{shared}; small {d.small}, context {d.context} (every photo split); "
        f"{len(novel)} class(es) the base knows only partly{named}"
    )


def survey(cfg: Study, out: Findings) -> None:
    for spec in split_specs(cfg):
        out.splits[spec.name] = SplitCheck(spec.name, f"drawn ({spec.style})", spec.size, listed=True)
    out.lines.append(f"  data: the embedded {cfg.task} world, drawn by prepare (seed {cfg.data.seed})")
    out.lines.append(f"  hard samples: {hard_sample_dials(cfg)}")


def load(cfg: Study, folder: Path, words: Wording) -> dict[str, list[dict]]:
    """Every split drawn: its images under folder/images/<split>/ (one already on disk, from an
    interrupted run, is reused) and its records, worded as `words` says."""
    specs = split_specs(cfg)
    with progress("drawing images", sum(s.size for s in specs)) as advance:
        return {spec.name: draw_split(cfg, spec, folder, words, advance) for spec in specs}


def draw_split(cfg: Study, spec: SplitSpec, folder: Path, words: Wording, advance) -> list[dict]:
    images = folder / "images" / spec.name
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(spec.size):
        path = images / f"{index:05d}.png"
        image, meta = DRAW_ITEM[cfg.task](cfg, spec, index)
        meta.update(words.box_meta())
        if not path.exists():
            with atomic_path(path) as tmp:
                # PNG is lossless at every level: the fastest compression (3x faster to write than
                # the default level 6, files about a third larger) gives the same pixels
                image.save(tmp, format="PNG", compress_level=1)
            unit_finished("prepare", str(path))
        records.append(
            {
                "id": f"{spec.name}-{index:05d}",
                "problem": words.problem(meta),
                "solution": solution(cfg.task, meta, words),
                "image": str(path.resolve()),
                "meta": meta,
            }
        )
        advance(1)
    return records


def solution(task: str, meta: dict, words: Wording) -> str:
    """The answer SFT trains on: a box in the wording's convention, the option letter, or the class."""
    if task == "grounding":
        return words.solution(meta)
    return meta["answer"] if task == "reasoning" else meta["label"]


# The drawing modules import transformers' resize rule: imported when drawing, so that loading a
# config and `dcsft plan` stay light.


def classification_item(cfg: Study, spec: SplitSpec, index: int):
    """(image as the model sees it, meta) of one shape-world image."""
    from dcsft.data import world
    from dcsft.data.resize import fit_image

    data = cfg.data
    image, meta = world.draw_pool_item(
        data.seed,
        f"study-{spec.name}",
        index,
        spec.style,
        size=data.image_size,
        label_noise=data.label_noise if spec.noisy else 0.0,
        ambiguous=data.ambiguous if spec.noisy else 0.0,
        small=data.small,
        context=data.context,
        classes=world.study_classes(data.novel_classes),
    )
    image, _ = fit_image(image, cfg.model.min_pixels, cfg.model.max_pixels)
    return image, meta


def grounding_item(cfg: Study, spec: SplitSpec, index: int):
    """(image as the model sees it, meta) of one scene; the box follows the resize."""
    from dcsft.data import scenes
    from dcsft.data.resize import fit_image

    data = cfg.data
    image, meta = scenes.draw_scene_item(
        data.seed,
        f"study-{spec.name}",
        index,
        spec.style,
        spec.grammar,
        size=data.image_size,
        label_noise=data.label_noise if spec.noisy else 0.0,
        ambiguous=data.ambiguous if spec.noisy else 0.0,
        hardness=scenes.hardness_mix(data.small, data.occluded, data.twin),
    )
    fitted, factors = fit_image(image, cfg.model.min_pixels, cfg.model.max_pixels)
    box = [round(v, 2) for v in grounding.scale_box(meta["box"], factors)]
    meta.update(
        orig_box=meta["box"],
        orig_size=meta["size"],
        box=box,
        size=list(fitted.size),
        scale=[round(f, 6) for f in factors],
    )
    return fitted, meta


def reasoning_item(cfg: Study, spec: SplitSpec, index: int):
    """(image as the model sees it, meta) of one multiple-choice item; no label noise (the
    question and answer are the drawing's, as MMK12's answers are verified)."""
    from dcsft.data import reasoning_world
    from dcsft.data.resize import fit_image

    image, meta = reasoning_world.draw_item(
        cfg.data.seed, f"study-{spec.name}", index, spec.style, spec.grammar, size=cfg.data.image_size
    )
    image, _ = fit_image(image, cfg.model.min_pixels, cfg.model.max_pixels)
    return image, meta


def world_version(cfg: Study) -> list[str]:
    """Prepare's fingerprint part for a world redrawn since its first version (the reasoning
    world's, dcsft.data.reasoning_world.VERSION), so that its old records are drawn again; the
    other worlds add nothing, and run directories prepared before stay valid."""
    from dcsft.data import reasoning_world

    return [f"reasoning-world-v{reasoning_world.VERSION}"] if cfg.task == "reasoning" else []


def split_facts(cfg: Study) -> dict:
    """What prepare's stats.json records about the drawn splits: the shape world's classes, in
    its order, which the later stages check answers against."""
    from dcsft.data import world

    return (
        {"classes": list(world.study_classes(cfg.data.novel_classes))} if cfg.task == "classification" else {}
    )


DRAW_ITEM = {"classification": classification_item, "grounding": grounding_item, "reasoning": reasoning_item}
