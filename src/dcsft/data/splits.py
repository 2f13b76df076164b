"""The study's splits: what each one is drawn from and which ones are evaluated."""

from __future__ import annotations

from dataclasses import dataclass

from dcsft.config import StudyConfig

ID_SPLIT = "photo"  # the in-distribution test split (mirrors ImageNet val)


@dataclass(frozen=True)
class SplitSpec:
    name: str
    style: str
    size: int
    noisy: bool = False  # carries label noise and ambiguous images, as real training sets do


def split_specs(cfg: StudyConfig) -> list[SplitSpec]:
    data = cfg.data
    return [SplitSpec("coldstart", "photo", data.n_coldstart),
            SplitSpec("train", "photo", data.n_train, noisy=True),
            SplitSpec(ID_SPLIT, "photo", data.n_test),
            *(SplitSpec(name, name, data.n_test) for name in data.ood_splits)]


def eval_splits(cfg: StudyConfig) -> list[str]:
    return [ID_SPLIT, *cfg.data.ood_splits]
