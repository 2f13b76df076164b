"""The data sources, one module each, chosen by `data.source`.

Each module has its config (the keys of `data` it reads, with their validators), `survey(cfg,
findings)`, which `dcsft plan` calls (counts, missing images, label-map coverage, without
decoding), and `load(cfg, folder)`, which `prepare` calls; the real sources also `describe(cfg,
role)` each split for prepare's stats.json. What they share is dcsft.data.sources.common.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, Union

from pydantic import BaseModel, Field

from dcsft.data.records import image_problem
from dcsft.data.sources import embedded, imagenet, mmk12, paper, records, refcoco
from dcsft.data.sources.common import Findings, SplitCheck, check_root
from dcsft.data.splits import Study, check_data, is_real
from dcsft.errors import ConfigError, DataError

# Each source's config class, by the `data.source` value it is chosen by; the rest derives from it.
CONFIGS: dict[str, type[BaseModel]] = {
    "embedded": embedded.EmbeddedSource,
    "imagenet": imagenet.ImagenetSource,
    "paper": paper.PaperSource,
    "refcoco": refcoco.RefcocoSource,
    "records": records.RecordsSource,
    "mmk12": mmk12.Mmk12Source,
}
MODULES: dict[str, ModuleType] = {name: sys.modules[config.__module__] for name, config in CONFIGS.items()}
# pydantic picks the class by `source`; Union of the table (ruff's X | Y rewrite cannot take a tuple)
DataConfig = Annotated[Union[tuple(CONFIGS.values())], Field(discriminator="source")]  # noqa: UP007
DEFAULT_SOURCE = "embedded"
SHOWN = 3  # missing images named per split


def keys_of(source: str) -> list[str]:
    """The keys of `data` a source reads besides `source`."""
    return [key for key in CONFIGS[source].model_fields if key != "source"]


def source_module(cfg: Study) -> ModuleType:
    return MODULES[cfg.data.source]


def survey(cfg: Study, sample: int) -> Findings:
    """What `dcsft plan` says about the data: the source's survey, then every image checked to
    exist and a seeded sample of `sample` per split decoded; blocking problems in `problems`."""
    out = Findings()
    try:
        check_data(cfg)
        if is_real(cfg):
            check_root(cfg.data)
        source_module(cfg).survey(cfg, out)
    except (ConfigError, DataError) as err:
        out.problems.append(str(err))
        return out
    bad_images = cfg.data.bad_images if is_real(cfg) else "error"  # the drawn worlds have no bad images
    for check in out.splits.values():
        check_images(cfg, check, sample)
        if check.missing:
            first = ", ".join(check.missing[:SHOWN])
            out.bad_input(
                bad_images,
                f"{check.name}: {len(check.missing)} image file(s) missing, "
                f"{check.lost} record(s) left out (first: {first})",
                blocking=check.count == 0,
            )
        if check.unreadable:
            out.bad_input(
                bad_images,
                f"{check.name}: {len(check.unreadable)} of {check.sampled} sampled "
                f"images do not decode (first: {check.unreadable[0]})",
            )
        if check.count == 0 and not check.lost + (len(check.unreadable) if check.sampled else 0):
            out.problems.append(f"{check.name}: no records ({check.where})")
    return out


def check_images(cfg: Study, check: SplitCheck, sample: int) -> None:
    """Existence of every image (unless listed from its folder) and decoding of a seeded sample."""
    if not check.listed:
        found: dict[Path, bool] = {}
        for image in check.images:
            if image not in found:
                found[image] = image.is_file()
                if not found[image]:
                    check.missing.append(str(image))
            check.lost += not found[image]
        check.count -= check.lost
    present = sorted({str(p) for p in check.images} - set(check.missing))
    chosen = random.Random(f"plan:{cfg.data.seed}:{check.name}").sample(present, min(sample, len(present)))
    check.sampled = len(chosen)
    check.unreadable = [problem for p in chosen if (problem := image_problem(Path(p)))]
