"""An embedded reasoning world: multiple-choice questions (A-D) about procedurally drawn scenes,
the stand-in for MMK12 (training) and MathVista (evaluation) at the embedded scale.

Four skills, one per item in turn (``meta.skill``, also ``meta.kinds`` for the report's kinds
table):
* ``counting``: 1 to 6 objects of one class, sometimes beside 1-2 objects of another class;
  "How many stars are in the image?" Options are other counts from 1 to 6.
* ``comparing``: 2 or 3 objects of different colours and clearly different sizes; "What colour
  is the largest object?" (or smallest). Options are colours, the objects' own first.
* ``chart``: a bar chart of 3 or 4 bars in different colours; "Which colour is the tallest
  bar?" (or shortest). Options are colours, the bars' own first.
* ``arithmetic``: two groups of objects of two classes; their total, or how many more of one
  than of the other. Options are other results (2-6, 1-4).

Every item has four options; the correct one's letter is balanced exactly: within each block of
four consecutive indices of a pool every letter is correct once (a seeded permutation per block).
Distractors: numbers drawn uniformly from the skill's answers (which are uniform themselves, so
the options alone do not tell the answer), colours of the other objects or bars first, then
colours absent from the image.

Splits (dcsft.data.splits): ``photo`` (ID: the training templates, photo-like scenes: textured
backgrounds, shaded objects, noise; vertical bar charts), ``rephrased`` (OOD: new question
templates, the photo style) and ``rendered`` (OOD: the training templates, a new style and
layout: flat drawings, objects in rows, horizontal bar charts), mirroring MathVista's mix of
question sources and of figure styles. The base pretraining sees both styles and both template
sets, as a released model has seen varied data; the study trains on the photo/ID pair only.

Records (dcsft.data.sources.embedded) follow the reasoning task's contract: meta.question (the
question without options), meta.options (option texts in letter order), meta.answer (the
correct letter), meta.answer_type "choice", meta.skill and meta.kinds.

Shapes, colours, backgrounds and shading come from dcsft.data.drawing, shared with the other
worlds; every draw takes its randomness from the generator it is given, in a fixed order.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dcsft.data.drawing import (
    COLOURS,
    SATURATED_COLOURS,
    background_pair,
    blend,
    fill_mask,
    flat_image,
    jittered_colour,
    light_colour,
    outline_mask,
    paint_shaded_objects,
    place_objects,
    textured_background,
)
from dcsft.data.world import CLASSES, sample_rng

SKILLS = ("counting", "comparing", "chart", "arithmetic")
LETTERS = ("A", "B", "C", "D")
STYLES = ("photo", "rendered")
TEMPLATE_SETS = ("train", "rephrased")
# Bumped when what the world draws changes: part of the reasoning base's key and of prepare's
# fingerprint, so neither a cached base nor a prepared run directory of an older world is reused.
# 2: number distractors uniform over the skill's answers (in 1 they were near the answer, and the
# options alone named it on 66-71% of items, chance 25%).
VERSION = 2
COUNTS = range(1, 7)  # counting's answers, uniform
ARITHMETIC = {"sum": range(2, 7), "difference": range(1, 5)}  # each variant's answers, uniform
SIZE = 112  # the side items are drawn at: 16 visual tokens (README, "The reasoning world")

# Question templates per skill and variant. `train`: the ID split's (and the study's training
# data's); `rephrased`: the OOD split's, worded differently throughout (disjoint, tested).
TEMPLATES: dict[str, dict[str, dict[str, str]]] = {
    "train": {
        "counting": {"count": "How many {a}s are in the image?"},
        "comparing": {
            "largest": "What colour is the largest object?",
            "smallest": "What colour is the smallest object?",
        },
        "chart": {
            "tallest": "Which colour is the tallest bar?",
            "shortest": "Which colour is the shortest bar?",
        },
        "arithmetic": {
            "sum": "How many {a}s and {b}s are there in total?",
            "difference": "How many more {a}s than {b}s are there?",
        },
    },
    "rephrased": {
        "counting": {"count": "Count the {a}s. What number do you get?"},
        "comparing": {
            "largest": "The biggest shape in the picture has which colour?",
            "smallest": "Which colour does the tiniest shape have?",
        },
        "chart": {
            "tallest": "In the bar chart, which colour has the highest value?",
            "shortest": "In the bar chart, which colour has the lowest value?",
        },
        "arithmetic": {
            "sum": "If you add the number of {a}s to the number of {b}s, what do you get?",
            "difference": "What is the number of {a}s minus the number of {b}s?",
        },
    },
}
# A second multiple-choice phrasing the base is pretrained on, beside the reasoning task's `paper` prompt.
PROMPT = "{question}\n{options}\nAnswer with the option's letter from the given choices directly."


def plural(cls: str) -> str:
    return cls + "e" if cls.endswith("s") else cls  # "cross" + "es"; the templates add the "s"


def render_options(options: list[str]) -> str:
    """Options as the reasoning task renders them: one `A. text` line each."""
    return "\n".join(f"{letter}. {text}" for letter, text in zip(LETTERS, options))


def number_options(rng, answer: int, support: range, position: int) -> list[str]:
    """Four numbers: the answer at `position`, three others drawn uniformly from the rest of the
    skill's support. With answers uniform over that support too, the option set says nothing
    about which option is right (every member is equally likely); distractors near the answer
    leaked it (options alone named it on 66-71% of items, chance 25%)."""
    rest = [v for v in support if v != answer]
    return place([rest[i] for i in rng.choice(len(rest), 3, replace=False)], str(answer), position, str)


def colour_options(rng, answer: str, seen: list[str], position: int) -> list[str]:
    """Four colours: the answer at `position`, the image's other colours, then absent ones."""
    others = [c for c in seen if c != answer]
    absent = [c for c in SATURATED_COLOURS if c not in seen]
    others += [absent[i] for i in rng.permutation(len(absent))[: 3 - len(others)]]
    return place([others[i] for i in rng.permutation(3)], answer, position, str)


def place(others: list, answer: str, position: int, fmt) -> list[str]:
    options = [fmt(o) for o in others]
    options.insert(position, answer)
    return options


# ---------------------------------------------------------------- drawing


def _canvas(rng, style: str, size: int, names: list[str]) -> np.ndarray:
    if style == "photo":
        c0, c1 = background_pair(rng, [COLOURS[n] for n in names], 110.0)
        kind = ("blotches", "stripes")[rng.integers(2)]
        return textured_background(rng, size, c0, c1, kind, rng.uniform(10, 22))
    return flat_image(size, light_colour(rng))


def _finish(rng, style: str, img: np.ndarray, size: int) -> Image.Image:
    if style == "photo":
        img = img + rng.standard_normal((size, size), dtype=np.float32) * np.float32(rng.uniform(3, 6))
    planes = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return Image.merge("RGB", [Image.fromarray(p) for p in planes])


def _row_layout(rng, classes: list[str], radius: float, size: int):
    """The rendered style's layout: objects in one or two tidy rows (a PlacedObject each)."""
    from dcsft.data.drawing import PlacedObject, posed_shape

    n = len(classes)
    rows = 1 if n <= 4 else 2
    per_row = -(-n // rows)
    r = min(radius, 0.42 / per_row) * size
    objs = []
    order = rng.permutation(n)
    for k, i in enumerate(order):
        row, col = divmod(k, per_row)
        x = (col + 0.5) * size / per_row
        y = (row + 0.5) * size / rows
        centre = np.array([x, y]) + rng.uniform(-0.04, 0.04, 2) * size
        pts = posed_shape(classes[i], r, 0.0) + centre
        objs.append((i, PlacedObject(classes[i], pts, centre, r)))
    objs.sort(key=lambda t: t[0])
    return [o for _, o in objs]


def _draw_objects(rng, style: str, size: int, classes: list[str], radii: list[float], names: list[str]):
    if style == "photo":
        objs = place_objects(rng, classes, radii, size)
        img = _canvas(rng, style, size, names)
        return paint_shaded_objects(rng, size, img, objs, names, rng.uniform(0.15, 0.3))
    same = len(set(np.round(radii, 6))) == 1
    objs = _row_layout(rng, classes, radii[0], size) if same else place_objects(rng, classes, radii, size)
    img = _canvas(rng, style, size, names)
    outline = rng.random() < 0.5
    for obj, name in zip(objs, names):
        mask = outline_mask([obj], size, [obj.radius * 0.18]) if outline else fill_mask([obj], size)
        img = blend(img, mask, COLOURS[name])
    if not outline:
        img = blend(img, outline_mask(objs, size, [o.radius * 0.12 for o in objs]), COLOURS["black"])
    return img


def _bars(rng, style: str, size: int, heights: list[float], names: list[str]) -> np.ndarray:
    """A bar chart: vertical bars on a textured background (photo) or horizontal bars on a plain
    one (rendered), with an axis line."""
    img = _canvas(rng, style, size, names)
    n = len(heights)
    lo, hi = int(0.12 * size), int(0.9 * size)  # the value axis: from the baseline to the top
    slot = (hi - lo) / n
    width = slot * rng.uniform(0.55, 0.75)
    for i, (h, name) in enumerate(zip(heights, names)):
        a = int(round(lo + i * slot + (slot - width) / 2))
        b = int(round(lo + i * slot + (slot + width) / 2))
        length = int(round(h * (hi - lo)))
        mask = np.zeros((size, size), np.float32)
        if style == "photo":
            mask[hi - length : hi, a:b] = 1.0
        else:
            mask[a:b, lo : lo + length] = 1.0
        colour = jittered_colour(rng, name, 6.0) if style == "photo" else COLOURS[name]
        img = blend(img, mask, colour)
    axis = np.zeros((size, size), np.float32)
    if style == "photo":
        axis[hi : hi + 2, lo - 4 : size - lo // 2] = 1.0
    else:
        axis[lo // 2 : size - lo // 2, lo - 2 : lo] = 1.0
    return blend(img, axis, COLOURS["black"])


def _distinct_colours(rng, n: int) -> list[str]:
    return [SATURATED_COLOURS[i] for i in rng.permutation(len(SATURATED_COLOURS))[:n]]


def _two_classes(rng) -> tuple[str, str]:
    i, j = rng.choice(len(CLASSES), 2, replace=False)
    return CLASSES[i], CLASSES[j]


# ---------------------------------------------------------------- skills


def _counting(rng, style: str, size: int, position: int):
    a, b = _two_classes(rng)
    count = int(rng.choice(COUNTS))
    extra = int(rng.choice([0, 1, 2], p=[0.5, 0.3, 0.2]))
    classes = [a] * count + [b] * extra
    radius = rng.uniform(0.07, 0.1)
    colour = _distinct_colours(rng, 1)[0]
    names = [colour] * count + [_distinct_colours(rng, 1)[0] for _ in range(extra)]
    img = _draw_objects(rng, style, size, classes, [radius] * len(classes), names)
    options = number_options(rng, count, COUNTS, position)
    return img, {
        "variant": "count",
        "fields": {"a": plural(a)},
        "answer_text": str(count),
        "options": options,
        "counts": [count, extra],
    }


def _comparing(rng, style: str, size: int, position: int):
    n = int(rng.choice([2, 3]))
    classes = [CLASSES[i] for i in rng.choice(len(CLASSES), n, replace=False)]
    # clearly different sizes: each radius at least 1.3x the next
    radii = sorted(rng.uniform(0.07, 0.09) * 1.35 ** np.arange(n) * rng.uniform(1.0, 1.1, n))
    radii = list(rng.permutation(radii))
    names = _distinct_colours(rng, n)
    variant = ("largest", "smallest")[rng.integers(2)]
    target = int(np.argmax(radii) if variant == "largest" else np.argmin(radii))
    img = _draw_objects(rng, style, size, classes, [float(r) for r in radii], names)
    options = colour_options(rng, names[target], names, position)
    return img, {"variant": variant, "fields": {}, "answer_text": names[target], "options": options}


def _chart(rng, style: str, size: int, position: int):
    n = int(rng.choice([3, 4]))
    names = _distinct_colours(rng, n)
    while True:  # the extreme bar stands out by at least 8% of the axis
        heights = rng.uniform(0.15, 1.0, n)
        ordered = np.sort(heights)
        if ordered[-1] - ordered[-2] >= 0.08 and ordered[1] - ordered[0] >= 0.08:
            break
    variant = ("tallest", "shortest")[rng.integers(2)]
    target = int(np.argmax(heights) if variant == "tallest" else np.argmin(heights))
    img = _bars(rng, style, size, [float(h) for h in heights], names)
    options = colour_options(rng, names[target], names, position)
    return img, {
        "variant": variant,
        "fields": {},
        "answer_text": names[target],
        "options": options,
        "values": [round(float(h), 3) for h in heights],
    }


def _arithmetic(rng, style: str, size: int, position: int):
    a, b = _two_classes(rng)
    variant = ("sum", "difference")[rng.integers(2)]
    answer = int(rng.choice(ARITHMETIC[variant]))  # uniform, then a split of it that can be drawn
    if variant == "sum":
        na = int(rng.integers(max(1, answer - 3), min(3, answer - 1) + 1))
        nb = answer - na
    else:
        na = int(rng.integers(answer + 1, 6))
        nb = na - answer
    classes = [a] * na + [b] * nb
    ca, cb = _distinct_colours(rng, 2)
    img = _draw_objects(
        rng, style, size, classes, [rng.uniform(0.07, 0.09)] * len(classes), [ca] * na + [cb] * nb
    )
    options = number_options(rng, answer, ARITHMETIC[variant], position)
    return img, {
        "variant": variant,
        "fields": {"a": plural(a), "b": plural(b)},
        "answer_text": str(answer),
        "options": options,
        "counts": [na, nb],
    }


DRAW_SKILL = {"counting": _counting, "comparing": _comparing, "chart": _chart, "arithmetic": _arithmetic}


def letter_position(seed: int, pool: str, index: int) -> int:
    """The correct option's position: a seeded permutation per block of four indices, so every
    letter is correct exactly once in each block."""
    block = sample_rng(seed, pool + "/letters", index // len(LETTERS)).permutation(len(LETTERS))
    return int(block[index % len(LETTERS)])


def draw_item(
    seed: int,
    pool: str,
    index: int,
    style: str,
    templates: str,
    size: int = SIZE,
    skills: tuple[str, ...] = SKILLS,
) -> tuple[Image.Image, dict]:
    """The index-th item of a pool: skill skills[index % len(skills)], its own random stream.

    Meta: question, options, answer (letter), answer_text, answer_type "choice", skill, kinds,
    noise (always None), variant, style, templates, source "embedded", and the drawn facts
    (counts, bar values)."""
    if style not in STYLES:
        raise ValueError(f"unknown reasoning style {style!r}; allowed: {', '.join(STYLES)}")
    if templates not in TEMPLATE_SETS:
        raise ValueError(f"unknown template set {templates!r}; allowed: {', '.join(TEMPLATE_SETS)}")
    rng = sample_rng(seed, pool, index)
    skill = skills[index % len(skills)]
    position = letter_position(seed, pool, index)
    img, drawn = DRAW_SKILL[skill](rng, style, size, position)
    question = TEMPLATES[templates][skill][drawn["variant"]].format(**drawn["fields"])
    meta = {
        "question": question,
        "options": drawn["options"],
        "answer": LETTERS[position],
        "answer_text": drawn["answer_text"],
        "answer_type": "choice",
        "source": "embedded",
        "skill": skill,
        "kinds": [skill],
        "noise": None,  # verified answers: no item is mislabeled or ambiguous
        "variant": drawn["variant"],
        "style": style,
        "templates": templates,
        **{k: drawn[k] for k in ("counts", "values") if k in drawn},
    }
    return _finish(rng, style, img, size), meta


def problem_text(meta: dict, template: str = PROMPT) -> str:
    return template.format(question=meta["question"], options=render_options(meta["options"]))
