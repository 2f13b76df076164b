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

Grounding, every source: `solution` and `meta.box` are in the frame the model sees (the
image's size after dcsft.data.resize.fitted_size, `meta.size`), `meta.orig_box` and
`meta.orig_size` in the image's own pixels, `meta.scale` holds the (x, y) factors, so
`evaluate.frame: original` can map predictions back. Boxes of real records are read in the
pixels of the image file (RefCOCO's, or a record file's `solution` / `meta.box`).

Example: dcsft prepare --set data.n_train=1200
         dcsft prepare configs/paper/imagenet_3b.yaml --set data.root=/data/imagenet
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from dcsft.config import StudyConfig
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
    return fingerprint("prepare", cfg.task, cfg.data.model_dump(), cfg.model.min_pixels, cfg.model.max_pixels)


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


def to_model_frame(cfg: StudyConfig, record: dict) -> tuple[dict | None, str | None]:
    """The record with its box in the frame the model sees (the keys the embedded scenes write)."""
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
    answer = grounding.format_box(scaled)
    if grounding.parse_box(answer) is None:
        return None, (
            f"box {list(box)} has zero width or height in whole pixels of the model's {new_w}x{new_h} frame"
        )
    meta = dict(record.get("meta") or {})
    meta.update(
        orig_box=list(box),
        orig_size=[width, height],
        box=scaled,
        size=[new_w, new_h],
        scale=[round(f, 6) for f in factors],
    )
    return {**record, "solution": answer, "meta": meta}, None


def finish_split(cfg: StudyConfig, name: str, loaded: LoadedRecords) -> LoadedRecords:
    """Unique ids; grounding boxes into the model's frame; evaluation splits capped at max_test."""
    done, seen = LoadedRecords([], list(loaded.skipped)), set()
    for index, record in enumerate(loaded.records):
        if record["id"] in seen:
            done.skipped.append(Skip(name, index, record["id"], "duplicate id in the split"))
            continue
        seen.add(record["id"])
        if cfg.task == "grounding":
            record, problem = to_model_frame(cfg, record)
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
    source = source_module(cfg)
    loaded = source.load(cfg, folder)
    splits, skipped = {}, []
    for name, _ in roles(cfg):
        done = finish_split(cfg, name, loaded[name])
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
    splits = embedded.load(cfg, folder)
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
    stats = {"task": cfg.task, "records": counts, "noise": noise}
    if cfg.task == "classification":
        stats["classes"] = list(world.study_classes(cfg.data.novel_classes))
    return what, stats


def run(cfg: StudyConfig) -> dict:
    check_data(cfg)
    rundir = RunDir(cfg.run_dir)
    body = load_real if is_real(cfg) else draw_embedded
    return run_stage(rundir.prepare, stage_fingerprint(cfg), lambda folder: body(cfg, rundir, folder))
