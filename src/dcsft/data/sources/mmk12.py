"""The mmk12 source: multimodal reasoning, the paper's third task family (task `reasoning`).
Cold start, training set and ID test split are drawn with the seed from MMK12's parquet files
(`n_coldstart`, `n_train`, `n_test`; paper: 400 cold start and 6,400 training samples of 6,800
verified pairs), disjoint in items and images; each OOD split is a benchmark's parquet files
(MathVista, MathVerse, MathVision, WeMath, MMMU). Layouts, what is kept and what is left out:
dcsft.data.math_benchmarks.

Where the files lie (a glob under `root`, `**` any folders; `files.<name>` names other files, a
folder or a glob): mmk12 `mmk12/**/train-*.parquet`, mathvista `mathvista/**/testmini-*.parquet`,
mathverse `mathverse/**/testmini.parquet`, mathvision `mathvision/**/test-*.parquet` (testmini:
`files.mathvision: mathvision/**/testmini-*.parquet`), wemath `wemath/**/testmini*.parquet`,
mmmu `mmmu/**/validation-*.parquet` (one file per subject). An OOD split named otherwise says its
layout in `layouts.<name>`. Image bytes are written once to 01_prepare/images/<layout>/.

Unsupported items (a free-form answer that is not a number, several images, ...) are left out
before they become records, each listed in 01_prepare/unsupported.jsonl with its reason and
counted per split in stats.json; bad input (an answer outside the options, an image that does
not decode, ...) is a counted skip in skipped.jsonl, or the one-line error of
`bad_images: error`.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dcsft import console
from dcsft.data import math_benchmarks as mb
from dcsft.data.records import LoadedRecords, Skip
from dcsft.data.sources.common import Findings, RealSourceConfig, SplitCheck, bad_record, enough
from dcsft.data.splits import Study, id_split, roles
from dcsft.errors import DataError
from dcsft.rundir import RunDir, read_jsonl, write_jsonl

POOL = "mmk12"  # the key of MMK12's files in `files`
UNSUPPORTED_FILE = "unsupported.jsonl"


class Mmk12Source(RealSourceConfig):
    source: Literal["mmk12"] = "mmk12"
    ood_splits: list[str] = ["mathvista", "mathverse", "mathvision", "wemath", "mmmu"]
    n_coldstart: int = Field(400, ge=1)  # cold-start items drawn from MMK12 (paper: 400)
    n_train: int = Field(
        6400, ge=1
    )  # training items drawn from MMK12, none of the cold start's (paper: 6,400)
    n_test: int = Field(1000, ge=1)  # the ID test split: MMK12 items held out from both
    # The parquet files of MMK12 (key `mmk12`) and of each OOD split: a file, a folder or a glob,
    # relative to root unless absolute; absent: the layout's default (the module's docstring).
    files: dict[str, str] = {}
    # The benchmark layout of an OOD split not named after one (e.g. {mathvision-mini: mathvision}).
    layouts: dict[str, str] = {}

    @model_validator(mode="after")
    def _splits_have_layouts(self) -> Mmk12Source:
        known = ", ".join(mb.LAYOUTS)
        if POOL in self.ood_splits:
            raise ValueError(
                f"data.ood_splits: {POOL!r} names MMK12's training pool; name the split otherwise"
            )
        for name, layout in self.layouts.items():
            if name not in self.ood_splits:
                raise ValueError(f"data.layouts: {name!r} is not an OOD split ({', '.join(self.ood_splits)})")
            if layout not in mb.LAYOUTS:
                raise ValueError(f"data.layouts.{name}: unknown layout {layout!r}; known: {known}")
        for name in self.ood_splits:
            if self.layout_name(name) not in mb.LAYOUTS:
                raise ValueError(
                    f"data.ood_splits: {name!r} is no benchmark layout (known: {known}); "
                    f"name its layout in data.layouts.{name}"
                )
        unknown = sorted(set(self.files) - {POOL, *self.ood_splits})
        if unknown:
            raise ValueError(
                f"data.files: unknown key {unknown[0]!r}; keys are {POOL} and the OOD splits "
                f"({', '.join(self.ood_splits)})"
            )
        return self

    def layout_name(self, name: str) -> str:
        return self.layouts.get(name, name)

    def layout(self, name: str) -> mb.Layout:
        return mb.LAYOUTS[POOL if name == POOL else self.layout_name(name)]

    def pattern(self, name: str) -> str:
        return self.files.get(name) or self.layout(name).pattern

    def known_size(self, role: str) -> int:
        return {"coldstart": self.n_coldstart, "train": self.n_train, "test": self.n_test}.get(role, 0)

    def paths(self) -> list[str]:
        return [self.pattern(name) for name in (POOL, *self.ood_splits)]

    def parquet_files(self, name: str) -> list[Path]:
        """The files of MMK12 (`mmk12`) or of an OOD split, or DataError saying where they were looked for."""
        pattern = self.path(self.pattern(name))
        found = mb.expand(pattern)
        key = f"data.files.{name}"
        if not found:
            raise DataError(
                f"{pattern}: no parquet file found for {name} ({key}; see dcsft.data.sources.mmk12)"
            )
        if len(found) == 1 and not found[0].is_file():
            raise DataError(f"{found[0]}: file not found ({key})")
        return found

    def where(self, name: str) -> str:
        files = self.parquet_files(name)
        return f"{files[0]}" + (f" + {len(files) - 1} more" if len(files) > 1 else "")


def parsed(data: Mmk12Source, name: str) -> mb.Parsed:
    """MMK12's (`mmk12`) or an OOD split's rows, their image bytes not read."""
    return mb.parse(data.layout(name), data.parquet_files(name), name)


def pool_note(data: Mmk12Source, pool: mb.Parsed, after: str = "") -> str:
    return (
        f"drawn from {len(pool.rows):,} usable MMK12 items{after} (data.n_coldstart "
        f"{data.n_coldstart:,} + n_train {data.n_train:,} + n_test {data.n_test:,}, disjoint in images)"
    )


def summary(part: mb.Parsed) -> str:
    """Usable items by answer type, and what is left out, by kind."""
    types = part.answer_types()
    text = f"{types['choice']:,} choice + {types['numeric']:,} numeric of {part.total:,} rows"
    if part.unsupported:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(part.kinds.items()))
        text += f"; {len(part.unsupported):,} unsupported ({kinds})"
    if part.skipped:
        text += f"; {len(part.skipped):,} bad"
    return text


# ---------------------------------------------------------------- survey (plan): counts without images


def survey(cfg: Study, out: Findings) -> None:
    data = cfg.data
    pool = parsed(data, POOL)
    out.lines.append(f"  MMK12 {data.where(POOL)}: {summary(pool)}")
    report_bad(data, POOL, pool, out)
    enough(
        data.n_coldstart + data.n_train + data.n_test,
        len(pool.rows),
        "cold-start + training + test",
        f"MMK12 {data.where(POOL)} (data.n_coldstart + n_train + n_test)",
    )
    images, inside = mb.image_paths(pool)
    exists = {path: path.is_file() for path in images}
    for index, (name, role) in enumerate(roles(cfg)[:3]):
        check = SplitCheck(
            name,
            f"MMK12 ({pool_note(data, pool) if index == 0 else 'as coldstart'})",
            data.known_size(role),
            [p for p in images if exists[p]] if index == 0 else [],
            listed=True,  # checked here: a missing image is passed over by the draw, not a smaller split
        )
        if index == 0:
            check.missing = sorted({str(p) for p, found in exists.items() if not found})
            check.lost = sum(not exists[p] for p in images)
        out.splits[name] = check
    if images or inside:
        out.lines.append(
            f"  MMK12 images: {inside:,} inside the parquet files (decoded by prepare, not here), "
            f"{len(images):,} image files"
        )
    for name in data.ood_splits:
        part = parsed(data, name)
        report_bad(data, name, part, out)
        check = SplitCheck(name, f"{data.layout(name).title} {data.where(name)}", len(part.rows))
        check.images, inside = mb.image_paths(part)
        check.note = summary(part) + (f"; {inside:,} images inside the files" if inside else "")
        out.splits[name] = check


def report_bad(data: Mmk12Source, name: str, part: mb.Parsed, out: Findings) -> None:
    if part.skipped:
        more = f" and {len(part.skipped) - 1} more bad item(s)" if len(part.skipped) > 1 else ""
        out.bad_input(data.bad_images, f"{name}: {part.skipped[0].line()}{more}")


# ---------------------------------------------------------------- load (prepare)


def load(cfg: Study, folder: Path) -> dict[str, LoadedRecords]:
    data = cfg.data
    known: dict = {}
    left_out: list[tuple[str, Skip]] = []
    pool = parsed(data, POOL)
    warn_unsupported(POOL, pool, folder)
    bad_record(data, LoadedRecords([], pool.skipped))
    enough(
        data.n_coldstart + data.n_train + data.n_test,
        len(pool.rows),
        "cold-start + training + test",
        f"MMK12 {data.where(POOL)} (data.n_coldstart + n_train + n_test)",
    )
    drawn, image_skips = draw(cfg, pool, folder / "images" / POOL, known)
    left_out += [(POOL, s) for s in pool.unsupported]
    splits = {
        "coldstart": LoadedRecords(drawn["coldstart"], pool.skipped + image_skips),
        "train": LoadedRecords(drawn["train"]),
        id_split(cfg.task): LoadedRecords(drawn["test"]),
    }
    for name in data.ood_splits:
        part = parsed(data, name)
        bad_record(data, LoadedRecords([], part.skipped))
        layout = data.layout(name)
        images = mb.read_images(layout, part.rows, folder / "images" / layout.name, known)
        loaded = LoadedRecords([], list(part.skipped))
        for row in part.rows:
            path, problem = images[(row.file, row.index)]
            if problem:
                loaded.skipped.append(Skip(str(row.file), row.index, row.record["id"], problem))
            else:
                loaded.records.append({**row.record, "image": path})
        bad_record(data, loaded)
        splits[name] = loaded
        left_out += [(name, s) for s in part.unsupported]
        warn_unsupported(name, part, folder)
    write_jsonl(
        folder / UNSUPPORTED_FILE,
        [
            {"split": name, "file": s.file, "index": s.index, "id": s.record_id, "reason": s.reason}
            for name, s in left_out
        ],
    )
    return splits


def draw(cfg: Study, pool: mb.Parsed, cache: Path, known: dict) -> tuple[dict[str, list[dict]], list[Skip]]:
    """Cold start, training set and test split: MMK12's usable rows in a seeded order, each taken by
    the first of the three not yet full; a row whose image another of the three already holds is
    passed over, one whose image does not decode skipped. Images are read in chunks, only for the
    rows the draw reaches."""
    data = cfg.data
    wanted = {"coldstart": data.n_coldstart, "train": data.n_train, "test": data.n_test}
    taken: dict[str, list[tuple[int, dict]]] = {role: [] for role in wanted}
    owner: dict[str, str] = {}  # image path -> the role holding it
    skips: list[Skip] = []
    order = list(range(len(pool.rows)))
    random.Random(f"{data.seed}:mmk12").shuffle(order)
    position = 0
    while (short := sum(wanted[r] - len(taken[r]) for r in wanted)) and position < len(order):
        chunk = order[position : position + short + short // 20 + 16]
        position += len(chunk)
        layout = data.layout(POOL)
        images = mb.read_images(layout, [pool.rows[i] for i in chunk], cache, known)
        for i in chunk:
            row = pool.rows[i]
            role = next((r for r in wanted if len(taken[r]) < wanted[r]), None)
            if role is None:
                break
            path, problem = images[(row.file, row.index)]
            if problem:
                skips.append(Skip(str(row.file), row.index, row.record["id"], problem))
                bad_record(data, LoadedRecords([], skips))
                continue
            if owner.setdefault(path, role) != role:
                continue
            taken[role].append((i, {**row.record, "image": path}))
    for role, n in wanted.items():
        enough(
            n,
            len(taken[role]),
            {"coldstart": "cold-start", "train": "training", "test": "test"}[role],
            f"MMK12 {data.where(POOL)} (data.n_{role}, after the other splits' images and "
            f"{len(skips)} undecodable image(s))",
        )
    return {role: [record for _, record in sorted(rows)] for role, rows in taken.items()}, skips


def warn_unsupported(name: str, part: mb.Parsed, folder: Path) -> None:
    if part.unsupported:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(part.kinds.items()))
        console.warn(
            f"{name}: {len(part.unsupported):,} of {part.total:,} items left out as unsupported ({kinds}); "
            f"each listed in {folder / UNSUPPORTED_FILE}"
        )


def describe(cfg: Study, role: str) -> str:
    data = cfg.data
    name = POOL if role in ("coldstart", "train", "test") else role
    left = Counter(
        row["reason"].split(")")[0].removeprefix("unsupported (")
        for row in unsupported_rows(cfg)
        if row["split"] == name
    )
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(left.items()))
    what = "MMK12" if name == POOL else data.layout(name).title
    return (
        f"{what} parquet {data.where(name)}"
        + (f" (drawn: {data.known_size(role)})" if name == POOL else "")
        + (f"; {sum(left.values())} unsupported left out ({kinds})" if left else "")
    )


def unsupported_rows(cfg: Study) -> list[dict]:
    path = RunDir(cfg.run_dir).prepare.root / UNSUPPORTED_FILE
    return read_jsonl(path) if path.is_file() else []
