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

from dcsft import console
from dcsft.config import StudyConfig
from dcsft.conventions import Wording, wording
from dcsft.data import rollouts
from dcsft.data.records import LoadedRecords, Skip
from dcsft.data.sources import common, embedded, source_module
from dcsft.data.splits import check_data, id_split, is_real, roles, split_specs
from dcsft.errors import DataError
from dcsft.prepared import warn_skipped
from dcsft.rundir import RunDir, fingerprint, write_json, write_jsonl
from dcsft.stage import run_stage
from dcsft.tasks import get_task
from dcsft.tasks.base import PrepareContext


def stage_fingerprint(cfg: StudyConfig) -> str:
    """The data config, the resize bounds and the wording (only where it is not the paper's, so
    that a run prepared before wording was a setting keeps its records). Training records that
    `dcsft import-rollouts` built from rollout files: their content's, so a study keeps them (as
    it keeps an imported profile) instead of preparing the configured data over them."""
    built = rollouts.built_fingerprint(RunDir(cfg.run_dir))
    if built is not None:
        return built
    return fingerprint(
        "prepare",
        cfg.task,
        cfg.data.model_dump(),
        cfg.model.min_pixels,
        cfg.model.max_pixels,
        *wording(cfg).fingerprint_part(),
        *([] if is_real(cfg) else embedded.world_version(cfg)),
    )


def finish_split(cfg: StudyConfig, name: str, loaded: LoadedRecords, words: Wording) -> LoadedRecords:
    """Unique ids; the wording in force; grounding boxes into the model's frame; evaluation splits
    capped at max_test."""
    done, seen = LoadedRecords([], list(loaded.skipped)), set()
    task = get_task(cfg.task)
    context = PrepareContext(words, cfg.model.min_pixels, cfg.model.max_pixels)
    for index, record in enumerate(loaded.records):
        if record["id"] in seen:
            done.skipped.append(Skip(name, index, record["id"], "duplicate id in the split"))
            continue
        seen.add(record["id"])
        record, problem = task.prepare_record(words.reworded(record), context)
        if problem:
            done.skipped.append(Skip(name, index, loaded.records[index]["id"], problem))
            continue
        done.records.append({**record, "problem": task.prompt(record), "solution": task.answer(record)})
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
    stats.update(get_task(cfg.task).split_stats([r for records in splits.values() for r in records]))
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
    stats.update(embedded.split_facts(cfg))
    return what, stats


def own_prompts(splits: dict[str, list[dict]], words: Wording) -> int:
    """Records that keep their record file's own wording (dcsft could not word them)."""
    return sum(not words.worded(r) for records in splits.values() for r in records)


def warn_contradiction(cfg: StudyConfig) -> None:
    """One line before any work when model.box_format is set against the base's family."""
    box = wording(cfg).box  # only a task whose answers hold coordinates has one
    contradiction = box.contradiction() if box else None
    if contradiction:
        console.warn(contradiction)


def run(cfg: StudyConfig) -> dict:
    check_data(cfg)
    warn_contradiction(cfg)
    rundir = RunDir(cfg.run_dir)
    body = load_real if is_real(cfg) else draw_embedded
    return run_stage(rundir.prepare, stage_fingerprint(cfg), lambda folder: body(cfg, rundir, folder))
