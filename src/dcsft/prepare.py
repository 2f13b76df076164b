"""prepare: draw (or later, load) every split's images and write its records.

Reads: nothing (the embedded world is drawn from the config's seed).
Writes: 01_prepare/records/<split>.json (`problem/solution/image` records, with `id` and
`meta`), 01_prepare/images/<split>/<n>.png, stats.json, DONE.

Splits of the embedded classification world, each from its own seed stream, so pools are
disjoint: `coldstart` and `train` (photo style; the training set carries the configured
fractions of mislabeled and ambiguous images), the ID test split `photo`, and the OOD test
splits (`rendition`, `adversarial`). Images are stored in the frame the model sees
(Qwen2.5-VL's resize rule), so labels in pixel coordinates stay valid.

Example: dcsft prepare --set data.n_train=1200
"""

from __future__ import annotations

from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.console import progress
from dcsft.data import world
from dcsft.data.resize import fit_image
from dcsft.data.splits import SplitSpec, split_specs
from dcsft.rundir import RunDir, atomic_path, fingerprint, unit_finished, write_json
from dcsft.stage import run_stage
from dcsft.tasks.classification import PROMPT

def stage_fingerprint(cfg: StudyConfig) -> str:
    return fingerprint("prepare", cfg.data.model_dump(), cfg.model.min_pixels, cfg.model.max_pixels)


def draw_split(cfg: StudyConfig, spec: SplitSpec, folder: Path, advance) -> list[dict]:
    """Draw one split; an image already on disk (from an interrupted run) is reused."""
    data = cfg.data
    images = folder / "images" / spec.name
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(spec.size):
        path = images / f"{index:05d}.png"
        image, meta = world.draw_pool_item(data.seed, f"study-{spec.name}", index, spec.style, size=data.image_size,
                                           label_noise=data.label_noise if spec.noisy else 0.0,
                                           ambiguous=data.ambiguous if spec.noisy else 0.0)
        if not path.exists():
            image, _ = fit_image(image, cfg.model.min_pixels, cfg.model.max_pixels)
            with atomic_path(path) as tmp:
                image.save(tmp, format="PNG")
            unit_finished("prepare", str(path))
        records.append({"id": f"{spec.name}-{index:05d}", "problem": PROMPT, "solution": meta["label"],
                        "image": str(path.resolve()), "meta": meta})
        advance(1)
    return records


def run(cfg: StudyConfig) -> dict:
    rundir = RunDir(cfg.run_dir)
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
        return what, {"records": counts, "noise": noise, "classes": list(world.CLASSES)}

    return run_stage("prepare", rundir.prepare, stage_fingerprint(cfg), body)
