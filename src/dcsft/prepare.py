"""prepare: draw the embedded world's images, or load a real dataset, and write every split's records.

Reads: nothing for the embedded worlds (drawn from the config's seed); for real sources the
dataset under `data.root` (dcsft.data.splits says which folder or file each split comes from).
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

import random
from pathlib import Path

from PIL import Image

from dcsft import console
from dcsft.config import StudyConfig
from dcsft.console import progress
from dcsft.data import imagenet, paper, refcoco, scenes, world
from dcsft.data.formats import import_records
from dcsft.data.records import LoadedRecords, Skip, image_problem
from dcsft.errors import DataError
from dcsft.data.resize import fit_image, fitted_size
from dcsft.data.splits import (PAPER_FOLDER, PAPER_SPLIT, SplitSpec, check_data, check_image_folder, check_per_class,
                               data_path, id_split, image_folder, is_real, manifest_file, names_file, ood_classes,
                               records_file, refcoco_inputs, roles, split_specs, training_classes)
from dcsft.rundir import RunDir, atomic_path, fingerprint, unit_finished, write_json, write_jsonl
from dcsft.prepared import warn_skipped
from dcsft.stage import run_stage
from dcsft.tasks import classification, grounding

# The data keys the embedded worlds read (the fingerprint of an embedded run is what it was
# before real sources existed); real sources ignore the world's own keys.
EMBEDDED_KEYS = {"source", "seed", "image_size", "n_coldstart", "n_train", "n_test", "label_noise", "ambiguous",
                 "small", "context", "novel_classes", "occluded", "twin", "ood_splits"}
WORLD_ONLY = {"image_size", "n_test", "label_noise", "ambiguous", "small", "context", "novel_classes", "occluded",
              "twin"}


def stage_fingerprint(cfg: StudyConfig) -> str:
    data = (cfg.data.model_dump(include=EMBEDDED_KEYS) if not is_real(cfg)
            else cfg.data.model_dump(exclude=WORLD_ONLY))
    return fingerprint("prepare", cfg.task, data, cfg.model.min_pixels, cfg.model.max_pixels)


def classification_item(cfg: StudyConfig, spec: SplitSpec, index: int):
    """(image as the model sees it, meta, problem, solution) of one shape-world image."""
    data = cfg.data
    image, meta = world.draw_pool_item(data.seed, f"study-{spec.name}", index, spec.style, size=data.image_size,
                                       label_noise=data.label_noise if spec.noisy else 0.0,
                                       ambiguous=data.ambiguous if spec.noisy else 0.0, small=data.small,
                                       context=data.context, classes=world.study_classes(data.novel_classes))
    image, _ = fit_image(image, cfg.model.min_pixels, cfg.model.max_pixels)
    return image, meta, classification.PROMPT, meta["label"]


def grounding_item(cfg: StudyConfig, spec: SplitSpec, index: int):
    """(image as the model sees it, meta, problem, solution) of one scene; the box follows the resize."""
    data = cfg.data
    image, meta = scenes.draw_scene_item(data.seed, f"study-{spec.name}", index, spec.style, spec.grammar,
                                         size=data.image_size, label_noise=data.label_noise if spec.noisy else 0.0,
                                         ambiguous=data.ambiguous if spec.noisy else 0.0,
                                         hardness=scenes.hardness_mix(data.small, data.occluded, data.twin))
    fitted, factors = fit_image(image, cfg.model.min_pixels, cfg.model.max_pixels)
    box = [round(v, 2) for v in grounding.scale_box(meta["box"], factors)]
    meta.update(orig_box=meta["box"], orig_size=meta["size"], box=box, size=list(fitted.size),
                scale=[round(f, 6) for f in factors])
    return fitted, meta, grounding.prompt(meta["expression"]), grounding.format_box(box)


DRAW_ITEM = {"classification": classification_item, "grounding": grounding_item}


def draw_split(cfg: StudyConfig, spec: SplitSpec, folder: Path, advance) -> list[dict]:
    """Draw one split; an image already on disk (from an interrupted run) is reused."""
    images = folder / "images" / spec.name
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(spec.size):
        path = images / f"{index:05d}.png"
        image, meta, problem, solution = DRAW_ITEM[cfg.task](cfg, spec, index)
        if not path.exists():
            with atomic_path(path) as tmp:
                # PNG is lossless at every level: the fastest compression (3x faster to write than
                # the default level 6, files about a third larger) gives the same pixels
                image.save(tmp, format="PNG", compress_level=1)
            unit_finished("prepare", str(path))
        records.append({"id": f"{spec.name}-{index:05d}", "problem": problem, "solution": solution,
                        "image": str(path.resolve()), "meta": meta})
        advance(1)
    return records


# ---------------------------------------------------------------- real sources


def bad_record(cfg: StudyConfig, loaded: LoadedRecords) -> None:
    """`data.bad_images: error`: the first unusable record ends prepare in one line."""
    if cfg.data.bad_images == "error" and loaded.skipped:
        first = loaded.skipped[0]
        raise DataError(f"{first.line()} ({len(loaded.skipped)} unusable record(s); "
                        f"data.bad_images: skip leaves them out and counts them)")


def subsample(cfg: StudyConfig, records: list[dict], n: int | None, what: str) -> list[dict]:
    """At most n records, drawn with the seed, in their order."""
    if n is None or len(records) <= n:
        return records
    keep = sorted(random.Random(f"{cfg.data.seed}:{what}").sample(range(len(records)), n))
    return [records[i] for i in keep]


def draw(cfg: StudyConfig, pool: list[dict], n: int, what: str, where: str) -> list[dict]:
    if len(pool) < n:
        raise DataError(f"{where}: {n} {what} records requested, only {len(pool)} usable")
    return subsample(cfg, pool, n, what)


def decoded(cfg: StudyConfig, loaded: LoadedRecords, file: str, advance) -> LoadedRecords:
    """The records whose image decodes; the others become Skips (or the error)."""
    kept = LoadedRecords([], list(loaded.skipped))
    for index, record in enumerate(loaded.records):
        problem = image_problem(Path(record["image"]))
        if problem:
            kept.skipped.append(Skip(file, index, record.get("id"), problem))
        else:
            kept.records.append(record)
        advance(1)
    bad_record(cfg, kept)
    return kept


def imagenet_splits(cfg: StudyConfig, folder: Path) -> dict[str, LoadedRecords]:
    data = cfg.data
    names_path = names_file(cfg)
    names = imagenet.read_name_map(names_path)
    train_dir = image_folder(cfg, "train")
    by_class = imagenet.scan(train_dir)
    chosen = training_classes(cfg, by_class, names, names_path, train_dir)
    check_per_class(cfg, by_class, chosen, train_dir)
    common = dict(names=names_path, seed=data.seed, bad_images=data.bad_images)
    cold = imagenet.load_split(train_dir, "coldstart", classes=chosen, per_class=data.per_class["coldstart"], **common)
    train = imagenet.load_split(train_dir, "train", classes=chosen, per_class=data.per_class.get("train"),
                                exclude=[Path(r["image"]) for r in cold.records], **common)
    test_dir, labels = check_image_folder(cfg, "test", id_split(cfg.task))
    test = imagenet.load_split(test_dir, "val", classes=chosen, per_class=data.per_class.get("test"), labels=labels,
                               **common)
    splits = {"coldstart": cold, "train": train, id_split(cfg.task): test}
    for name in data.ood_splits:
        where, labels = check_image_folder(cfg, name, name)
        classes = ood_classes(cfg, imagenet.scan(where, labels), names, chosen, names_path, where)
        splits[name] = imagenet.load_split(where, name, classes=classes, labels=labels, **common)
    return splits


def paper_splits(cfg: StudyConfig, folder: Path) -> dict[str, LoadedRecords]:
    data = cfg.data
    manifest = manifest_file(cfg)
    roots = {PAPER_FOLDER[role]: data_path(cfg, value) for role, value in data.folders.items()}
    wanted = {name: PAPER_SPLIT[role] for name, role in roles(cfg)}
    found = paper.import_paper_splits(manifest, data_path(cfg, data.root), roots=roots,
                                      splits=tuple(wanted.values()), missing=data.bad_images)
    total = sum(len(found[split].records) for split in wanted.values())
    with progress("checking images", total) as advance:
        return {name: decoded(cfg, found[split], str(manifest), advance) for name, split in wanted.items()}


def file_splits(cfg: StudyConfig, names: list[tuple[str, str]]) -> dict[str, LoadedRecords]:
    """Splits read from record files (records source; refcoco's OOD splits)."""
    files = {name: import_records(records_file(cfg, role)) for name, role in names}
    with progress("checking images", sum(len(f.records) for f in files.values())) as advance:
        return {name: decoded(cfg, files[name], str(records_file(cfg, role)), advance) for name, role in names}


def refcoco_splits(cfg: StudyConfig, folder: Path) -> dict[str, LoadedRecords]:
    data = cfg.data
    inputs = refcoco_inputs(cfg)
    pools: dict[str, LoadedRecords] = {}

    def pool(role: str) -> LoadedRecords:
        split = data.refcoco_splits[role]
        if split not in pools:
            if data.refcoco_layout == "classic":
                loaded = refcoco.load_refcoco_classic(inputs["refs"], inputs["instances"], inputs["images"], split,
                                                      data.one_sentence_per_ref)
            else:
                loaded = refcoco.load_refcoco_parquet(inputs["parquet"], folder / "images" / "refcoco", split,
                                                      data.one_sentence_per_ref, inputs["images"])
            bad_record(cfg, loaded)
            if not loaded.records:
                where = inputs.get("refs") or ", ".join(map(str, inputs["parquet"]))
                raise DataError(f"{where}: no usable records of RefCOCO split {split!r} "
                                f"({len(loaded.skipped)} skipped)")
            pools[split] = loaded
            return loaded
        return LoadedRecords(pools[split].records)  # its skips are counted once, with the first role

    where = inputs.get("refs") or inputs["parquet"][0]
    cold_pool = pool("coldstart")
    cold = draw(cfg, cold_pool.records, data.n_coldstart, "coldstart", f"{where} ({data.refcoco_splits['coldstart']})")
    cold_images = {r["image"] for r in cold}
    train_pool = pool("train")
    usable = [r for r in train_pool.records if r["image"] not in cold_images]
    train = draw(cfg, usable, data.n_train, "train",
                 f"{where} ({data.refcoco_splits['train']}, without the cold start's {len(cold_images)} images)")
    splits = {"coldstart": LoadedRecords(cold, cold_pool.skipped), "train": LoadedRecords(train, train_pool.skipped),
              id_split(cfg.task): pool("test")}
    splits.update(file_splits(cfg, [(name, name) for name in data.ood_splits]))
    return splits


def records_splits(cfg: StudyConfig, folder: Path) -> dict[str, LoadedRecords]:
    return file_splits(cfg, roles(cfg))


LOADERS = {"imagenet": imagenet_splits, "paper": paper_splits, "refcoco": refcoco_splits, "records": records_splits}


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
    """The record with its box in the frame the model sees (the keys grounding_item writes)."""
    box, size, problem = original_box(record)
    if problem is None:
        problem = grounding.box_problem(box, tuple(size) if isinstance(size, (list, tuple)) and len(size) == 2 else None)
    if problem is None and not (isinstance(size, (list, tuple)) and len(size) == 2 and min(size) > 0):
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
        return None, f"box {list(box)} has zero width or height in whole pixels of the model's {new_w}x{new_h} frame"
    meta = dict(record.get("meta") or {})
    meta.update(orig_box=list(box), orig_size=[width, height], box=scaled, size=[new_w, new_h],
                scale=[round(f, 6) for f in factors])
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
    bad_record(cfg, done)
    if not done.records:
        raise DataError(f"split {name}: no usable records ({len(done.skipped)} skipped; see 01_prepare/skipped.jsonl "
                        f"or rerun with data.bad_images: error for the first reason)")
    if name not in ("coldstart", "train"):
        done.records = subsample(cfg, done.records, cfg.data.max_test, f"max_test:{name}")
    return done


def check_disjoint(cfg: StudyConfig, splits: dict[str, list[dict]]) -> dict[str, int]:
    """No image in both cold start and training set, nor in training and the ID test split (a
    DataError). An OOD set may share images with training (Ref-L4 reuses COCO images, with other
    expressions): counted per split and warned about. Returns {OOD split: shared images}."""
    images = {name: {r["image"] for r in records} for name, records in splits.items()}
    trained = images["coldstart"] | images["train"]
    for a, b in [("coldstart", "train"), ("coldstart", id_split(cfg.task)), ("train", id_split(cfg.task))]:
        shared = images[a] & images[b]
        if shared:
            raise DataError(f"{len(shared)} image(s) are in both {a} and {b} (first: {sorted(shared)[0]}); "
                            f"the splits must be disjoint")
    overlap = {name: len(trained & images[name]) for name in cfg.data.ood_splits}
    for name, shared in overlap.items():
        if shared:
            console.warn(f"{name}: {shared} of its {len(images[name])} images are also training images")
    return overlap


def describe(cfg: StudyConfig) -> dict[str, str]:
    """What each split is, for stats.json (the ID split keeps the task's name in the run directory)."""
    data, out = cfg.data, {}
    for name, role in roles(cfg):
        if data.source == "imagenet":
            per = data.per_class.get(role)
            out[name] = f"imagenet folder {image_folder(cfg, role)}" + (f", {per} per class" if per else "")
        elif data.source == "paper":
            out[name] = f"the paper's {PAPER_SPLIT[role]} split, images under {image_folder(cfg, role)}"
        elif data.source == "refcoco" and role in data.refcoco_splits:
            out[name] = f"RefCOCO {data.refcoco_splits[role]} ({data.refcoco_layout} layout)"
        else:
            out[name] = f"records file {records_file(cfg, role)}"
    return out


def load_real(cfg: StudyConfig, folder: Path) -> tuple[dict[str, list[dict]], list[tuple[str, Skip]]]:
    """split -> records, and every skip with its split."""
    loaded = LOADERS[cfg.data.source](cfg, folder)
    splits, skipped = {}, []
    for name, _ in roles(cfg):
        done = finish_split(cfg, name, loaded[name])
        splits[name] = done.records
        skipped += [(name, s) for s in done.skipped]
    return splits, skipped


def run_real(cfg: StudyConfig, rundir: RunDir, folder: Path) -> tuple[str, dict]:
    if cfg.data.root and not Path(cfg.data.root).expanduser().is_dir():
        raise DataError(f"data.root {Path(cfg.data.root).expanduser().absolute()}: folder does not exist")
    splits, skipped = load_real(cfg, folder)
    overlap = check_disjoint(cfg, splits)
    for name, records in splits.items():
        write_json(rundir.records(name), records)
    write_jsonl(folder / "skipped.jsonl", [{"split": name, "file": s.file, "index": s.index, "id": s.record_id,
                                            "reason": s.reason} for name, s in skipped])
    warn_skipped([f"{name}: {s.line()}" for name, s in skipped], f"({folder / 'skipped.jsonl'})")
    counts = {name: len(records) for name, records in splits.items()}
    stats = {"task": cfg.task, "source": cfg.data.source, "records": counts, "noise": {},
             "skipped": {name: sum(split == name for split, _ in skipped) for name in splits},
             "splits": describe(cfg), "ood_images_in_training": overlap}
    if cfg.task == "classification":
        stats["classes"] = sorted({r["solution"] for records in splits.values() for r in records})
    what = (f"loaded {cfg.data.source}: " + ", ".join(f"{n} {name}" for name, n in counts.items())
            + f" records ({len(skipped)} skipped)")
    return what, stats


def run(cfg: StudyConfig) -> dict:
    check_data(cfg)
    rundir = RunDir(cfg.run_dir)
    if is_real(cfg):
        return run_stage(rundir.prepare, stage_fingerprint(cfg),
                         lambda folder: run_real(cfg, rundir, folder))
    specs = split_specs(cfg)

    def body(folder: Path):
        counts, noise = {}, {}
        with progress("drawing images", sum(s.size for s in specs)) as advance:
            for spec in specs:
                records = draw_split(cfg, spec, folder, advance)
                write_json(rundir.records(spec.name), records)
                counts[spec.name] = len(records)
                if spec.noisy:
                    noise[spec.name] = {kind: sum(r["meta"]["noise"] == kind for r in records)
                                        for kind in ("mislabeled", "ambiguous")}
        what = "drew " + ", ".join(f"{n} {name}" for name, n in counts.items()) + " images"
        classes = {"classes": list(world.study_classes(cfg.data.novel_classes))} if cfg.task == "classification" else {}
        return what, {"task": cfg.task, "records": counts, "noise": noise, **classes}

    return run_stage(rundir.prepare, stage_fingerprint(cfg), body)
