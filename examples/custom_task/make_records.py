"""Draw the counting task's records: N coloured shapes on a small canvas, in dcsft's records format.

Each split is a record file `<split>.json`, a JSON list of
`{"id", "image", "problem", "solution", "meta"}` (dcsft.data.formats), and its PNGs in
`images/`; image paths are relative to the record file's folder, as the records source reads them.

Splits (sizes are options):
- `coldstart`, `train`, `test`: filled shapes (circle, square, triangle) on light backgrounds,
  1 to MAX_COUNT of them; `test` is the in-distribution evaluation split.
- `outline`, the out-of-distribution split: the same counts and shapes drawn as outlines on dark
  backgrounds, as the shape world's `rendition` split redraws its classes.

Every image is drawn from its own seeded stream (split, index), so a split's records do not change
when another split's size does, and the splits hold disjoint images (each its own file).

Usage, from the repository root (the committed records are these defaults):

    .venv/bin/python examples/custom_task/make_records.py
    .venv/bin/python examples/custom_task/make_records.py --out /tmp/counting --train 64 --test 20
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from counting import PROMPT  # beside this file, on the path of a script run from anywhere
from PIL import Image, ImageDraw

SIDE = 84  # the embedded model's frame: model.max_pixels 7056 = 84 x 84, so prepare keeps the size
CELL = 28  # a 3 x 3 grid of cells, one per merged visual token (2 x 2 patches of 14 px)
MAX_COUNT = 5  # 1..5 shapes; at most 9 fit, one per cell
SHAPES = ("circle", "square", "triangle")
FILLS = [(220, 40, 40), (40, 90, 220), (30, 160, 60), (240, 140, 20), (150, 60, 190), (20, 170, 190)]
LIGHT = [(245, 245, 240), (235, 238, 245), (245, 238, 225), (228, 240, 228)]
DARK = [(25, 25, 35), (40, 30, 30), (20, 40, 45)]
STYLES = {"filled": LIGHT, "outline": DARK}
SPLITS = {"coldstart": "filled", "train": "filled", "test": "filled", "outline": "outline"}
DEFAULT_SIZES = {"coldstart": 100, "train": 300, "test": 100, "outline": 100}


def shape_points(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """A polygon's corners: a square or a triangle of circumradius r, turned by `angle` radians."""
    corners = 4 if shape == "square" else 3
    start = angle + (math.pi / 4 if shape == "square" else -math.pi / 2)
    return [
        (
            cx + r * math.cos(start + 2 * math.pi * i / corners),
            cy + r * math.sin(start + 2 * math.pi * i / corners),
        )
        for i in range(corners)
    ]


def draw_image(rng: random.Random, count: int, style: str) -> tuple[Image.Image, list[str]]:
    """One image of `count` shapes, each in its own grid cell (so none overlap or touch and the
    count is unambiguous), jittered inside it; returns the image and the shapes drawn."""
    background = rng.choice(STYLES[style])
    image = Image.new("RGB", (SIDE, SIDE), background)
    draw = ImageDraw.Draw(image)
    shapes = []
    for cell in rng.sample(range(9), count):
        shape, colour = rng.choice(SHAPES), rng.choice(FILLS)
        r = rng.uniform(7, 10)
        # the centre moves at most 13 - r px from the cell's centre, so the shape stays inside it
        cx = (cell % 3) * CELL + CELL / 2 + rng.uniform(-1, 1) * (13 - r)
        cy = (cell // 3) * CELL + CELL / 2 + rng.uniform(-1, 1) * (13 - r)
        outline = dict(outline=colour, width=2) if style == "outline" else dict(fill=colour)
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], **outline)
        else:
            draw.polygon(shape_points(shape, cx, cy, r, rng.uniform(0, math.pi / 6)), **outline)
        shapes.append(shape)
    return image, shapes


def draw_split(out: Path, split: str, size: int, seed: int) -> list[dict]:
    """A split's records, its images written to out/images. Counts cycle 1..MAX_COUNT over the
    indices, so every split holds each count equally often (to within one)."""
    style = SPLITS[split]
    records = []
    for index in range(size):
        rng = random.Random(f"{seed}:{split}:{index}")  # str seeds hash the same on every Python
        count = 1 + index % MAX_COUNT
        image, shapes = draw_image(rng, count, style)
        name = f"images/{split}-{index:04d}.png"
        # a palette PNG: the image holds a few flat colours, which it keeps exactly, in about
        # 60% of an RGB PNG's bytes (the model's processor converts it to RGB)
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(out / name, optimize=True)
        records.append(
            {
                "id": f"counting-{split}-{index:04d}",
                "image": name,
                "problem": PROMPT,
                "solution": str(count),
                "meta": {"count": count, "shapes": shapes, "style": style},
            }
        )
    return records


def write_records(out: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, Path]:
    """Every split's record file and images under `out`; returns split -> record file.

    Args:
        out (`Path`):
            The folder to write `<split>.json` and `images/` into (created if absent; images of
            an earlier, larger draw are removed, so the folder holds exactly these records).
        sizes (`dict[str, int]`):
            Records per split, for the splits of SPLITS.
        seed (`int`):
            The draw's seed; the same seed and sizes give the same records and pixels.
    """
    (out / "images").mkdir(parents=True, exist_ok=True)
    for old in (out / "images").glob("*.png"):
        old.unlink()
    files = {}
    for split, size in sizes.items():
        records = draw_split(out, split, size, seed)
        files[split] = out / f"{split}.json"
        # one record per line: a readable diff, a third smaller than an indented list
        files[split].write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "records")
    parser.add_argument("--seed", type=int, default=0)
    for split, size in DEFAULT_SIZES.items():
        parser.add_argument(f"--{split}", type=int, default=size, help=f"records in {split} (default {size})")
    args = parser.parse_args(argv)
    files = write_records(args.out, {split: getattr(args, split) for split in SPLITS}, args.seed)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    sizes = ", ".join(f"{len(json.loads(path.read_text()))} {split}" for split, path in files.items())
    print(f"wrote {sizes} records to {args.out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
