"""prepare: draw the embedded world's images, or load a real dataset, and write every split's records.

Reads: nothing for the embedded worlds (drawn from the config's seed); for real sources the
dataset under `data.root` (each source's module in dcsft.data.sources draws or loads its splits).
Writes: 01_prepare/records/<split>.json (`problem/solution/image` records, with `id` and
`meta`), 01_prepare/images/<split>/<n>.png (embedded only), skipped.jsonl (real sources: every
record left out, with its file and reason), stats.json, DONE.

Embedded: splits each from their own seed stream, so pools are disjoint: `coldstart` and
`train` (the training set carries the configured fractions of mislabeled and ambiguous items),
the ID test split and the OOD test splits. Classification draws the shape world
(dcsft.data.world), grounding the scene world (dcsft.data.scenes). Images are stored in the
frame the model sees (Qwen2.5-VL's resize rule).

Real sources (imagenet, paper, refcoco, records): records point at the images where they lie
(nothing is copied; RefCOCO parquet image bytes are written once to images/refcoco/); the
processor resizes them by the same rule. Cold start and training set are disjoint, and no
image of either is in an evaluation split (a DataError otherwise). An image that does not
decode, or a box that is unusable, is a counted skip (`data.bad_images: skip`) or a one-line
error (`error`).

Grounding, every source: `meta.box` is in the frame the model sees (the image's size after
dcsft.data.resize.fitted_size, `meta.size`), `meta.orig_box` and `meta.orig_size` in the image's
own pixels, `meta.scale` holds the (x, y) factors, so `evaluate.frame: original` can map
predictions back. Boxes of real records are read in the pixels of the image file (RefCOCO's,
or a record file's `solution` / `meta.box`).

Wording (dcsft.conventions): every record's `problem` is the task's prompt template in force
(`prompts.*`; a record file's own wording is kept, see Wording.reworded), and a grounding
`solution` is the box in the convention in force (`model.box_format`, resolved once here) and
the answer format (`prompts.answer_format`); a relative1000 record says so in
`meta.box_format`, which the verifier follows. stats.json records the wording.

Example: dcsft prepare --set data.n_train=1200
         dcsft prepare configs/paper/imagenet_3b.yaml --set data.root=/data/imagenet
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from dcsft import console
from dcsft.config import StudyConfig
from dcsft.conventions import Wording, wording
from dcsft.data import world
from dcsft.data.records import LoadedRecords, Skip
from dcsft.data.resize import fitted_size
from dcsft.data.sources import common, embedded, source_module
from dcsft.data.splits import check_data, id_split, is_real, roles, split_specs
from dcsft.errors import DataError
from dcsft.prepared import warn_skipped
from dcsft.rundir import RunDir, fingerprint, write_json, write_jsonl
from dcsft.stage import run_stage
from dcsft.tasks import grounding


def stage_fingerprint(cfg: StudyConfig) -> str:
    """The data config, the resize bounds and the wording (only where it is not the paper's, so
    that a run prepared before wording was a setting keeps its records)."""
    return fingerprint(
        "prepare",
        cfg.task,
        cfg.data.model_dump(),
        cfg.model.min_pixels,
        cfg.model.max_pixels,
        *wording(cfg).fingerprint_part(),
    )


def original_box(record: dict) -> tuple[list | None, list | None, str | None]:
    """(box, (width, height), problem) of a grounding record in its image file's pixels: from
    meta.orig_box/orig_size (a file dcsft wrote), meta.box/size (the RefCOCO loaders), else the
    solution's box and the image's size."""
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    for box_key, size_key in (("orig_box", "orig_size"), ("box", "size")):
        if box_key in meta and size_key in meta:
            return meta[box_key], meta[size_key], None
    box = grounding.parse_box(record["solution"])
    if box is None:
        return None, None, f"solution {record['solution']!r} holds no box (four numbers, x1 < x2 and y1 < y2)"
    try:
        with Image.open(record["image"]) as im:
            size = list(im.size)
    except OSError as err:
        return None, None, f"image cannot be read: {record['image']} ({type(err).__name__})"
    return list(box), size, None


def to_model_frame(cfg: StudyConfig, record: dict, words: Wording) -> tuple[dict | None, str | None]:
    """The record with its box in the frame the model sees (the keys the embedded scenes write)
    and its solution in the wording's convention and format."""
    box, size, problem = original_box(record)
    pair = isinstance(size, (list, tuple)) and len(size) == 2
    if problem is None:
        problem = grounding.box_problem(box, tuple(size) if pair else None)
    if problem is None and not (pair and min(size) > 0):
        problem = f"image size {size!r} is not (width, height)"
    if problem:
        return None, problem
    width, height = size
    try:
        new_w, new_h = fitted_size(width, height, cfg.model.min_pixels, cfg.model.max_pixels)
    except ValueError as err:  # smart_resize refuses aspect ratios beyond 200
        return None, f"image {width}x{height} cannot be resized: {err}"
    factors = (new_w / width, new_h / height)
    scaled = [round(v, 2) for v in grounding.clip_box(grounding.scale_box(box, factors), (new_w, new_h))]
    meta = dict(record.get("meta") or {})
    meta.update(
        orig_box=list(box),
        orig_size=[width, height],
        box=scaled,
        size=[new_w, new_h],
        scale=[round(f, 6) for f in factors],
        **words.box_meta(),
    )
    answer = words.solution(meta)
    if grounding.parse_box(answer) is None:
        unit = "units of the 0-1000 grid" if words.box_format == "relative1000" else "pixels of the model's"
        frame = "" if words.box_format == "relative1000" else f" {new_w}x{new_h} frame"
        return None, f"box {list(box)} has zero width or height in whole {unit}{frame}"
    return {**record, "solution": answer, "meta": meta}, None


def finish_split(cfg: StudyConfig, name: str, loaded: LoadedRecords, words: Wording) -> LoadedRecords:
    """Unique ids; the wording in force; grounding boxes into the model's frame; evaluation splits
    capped at max_test."""
    done, seen = LoadedRecords([], list(loaded.skipped)), set()
    for index, record in enumerate(loaded.records):
        if record["id"] in seen:
            done.skipped.append(Skip(name, index, record["id"], "duplicate id in the split"))
            continue
        seen.add(record["id"])
        record = words.reworded(record)
        if cfg.task == "grounding":
            record, problem = to_model_frame(cfg, record, words)
            if problem:
                done.skipped.append(Skip(name, index, loaded.records[index]["id"], problem))
                continue
        done.records.append(record)
    common.bad_record(cfg.data, done)
    if not done.records:
        raise DataError(
            f"split {name}: no usable records ({len(done.skipped)} skipped; see "
            f"01_prepare/skipped.jsonl or rerun with data.bad_images: error for the first reason)"
        )
    if name not in ("coldstart", "train"):
        done.records = common.subsample(cfg.data.seed, done.records, cfg.data.max_test, f"max_test:{name}")
    return done


def load_real(cfg: StudyConfig, rundir: RunDir, folder: Path) -> tuple[str, dict]:
    """Load a real source's splits, finish them, check them disjoint and write them."""
    common.check_root(cfg.data)
    words = wording(cfg)
    source = source_module(cfg)
    loaded = source.load(cfg, folder)
    splits, skipped = {}, []
    for name, _ in roles(cfg):
        done = finish_split(cfg, name, loaded[name], words)
        splits[name] = done.records
        skipped += [(name, s) for s in done.skipped]
    images = {name: {r["image"] for r in records} for name, records in splits.items()}
    common.check_disjoint(images, id_split(cfg.task))
    overlap = common.ood_overlap(images, cfg.data.ood_splits)
    for name, records in splits.items():
        write_json(rundir.records(name), records)
    write_jsonl(
        folder / "skipped.jsonl",
        [
            {"split": name, "file": s.file, "index": s.index, "id": s.record_id, "reason": s.reason}
            for name, s in skipped
        ],
    )
    warn_skipped([f"{name}: {s.line()}" for name, s in skipped], f"({folder / 'skipped.jsonl'})")
    counts = {name: len(records) for name, records in splits.items()}
    stats = {
        "task": cfg.task,
        "source": cfg.data.source,
        "records": counts,
        "noise": {},
        "skipped": {name: sum(split == name for split, _ in skipped) for name in splits},
        "splits": {name: source.describe(cfg, role) for name, role in roles(cfg)},
        "ood_images_in_training": overlap,
        "wording": {**words.settings(), "own_prompt": own_prompts(splits, words)},
    }
    if cfg.task == "classification":
        stats["classes"] = sorted({r["solution"] for records in splits.values() for r in records})
    what = (
        f"loaded {cfg.data.source}: "
        + ", ".join(f"{n} {name}" for name, n in counts.items())
        + f" records ({len(skipped)} skipped)"
    )
    return what, stats


def draw_embedded(cfg: StudyConfig, rundir: RunDir, folder: Path) -> tuple[str, dict]:
    """Draw the embedded world's splits and write them, with the noise the training split carries."""
    words = wording(cfg)
    splits = embedded.load(cfg, folder, words)
    counts, noise = {}, {}
    for spec in split_specs(cfg):
        records = splits[spec.name]
        write_json(rundir.records(spec.name), records)
        counts[spec.name] = len(records)
        if spec.noisy:
            noise[spec.name] = {
                kind: sum(r["meta"]["noise"] == kind for r in records) for kind in ("mislabeled", "ambiguous")
            }
    what = "drew " + ", ".join(f"{n} {name}" for name, n in counts.items()) + " images"
    stats = {"task": cfg.task, "records": counts, "noise": noise, "wording": words.settings()}
    if cfg.task == "classification":
        stats["classes"] = list(world.study_classes(cfg.data.novel_classes))
    return what, stats


def own_prompts(splits: dict[str, list[dict]], words: Wording) -> int:
    """Records that keep their record file's own wording (dcsft could not word them)."""
    return sum(not words.worded(r) for records in splits.values() for r in records)


def warn_contradiction(cfg: StudyConfig) -> None:
    """One line before any work when model.box_format is set against the base's family."""
    if cfg.task == "grounding":
        contradiction = wording(cfg).box.contradiction()
        if contradiction:
            console.warn(contradiction)


def run(cfg: StudyConfig) -> dict:
    check_data(cfg)
    warn_contradiction(cfg)
    rundir = RunDir(cfg.run_dir)
    body = load_real if is_real(cfg) else draw_embedded
    return run_stage(rundir.prepare, stage_fingerprint(cfg), lambda folder: body(cfg, rundir, folder))
