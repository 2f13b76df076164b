"""An embedded grounding world: seeded scenes of several objects and referring expressions that
pick one of them, the stand-in for RefCOCO (ID) and for Ref-L4 / LISA-Grounding (OOD).

Scenes are drawn on a square canvas of `size` px: 2 to 4 objects of the shape world's ten
classes (dcsft.data.world.CLASSES) in the twelve colours. The answer box is the object's full
(amodal) polygon box in canvas pixels; `prepare` resizes the image to the model's frame and
rescales the box with it.

Which module to change: this one holds the scenes' layout, their two styles' recipes, the
hardness and noise dials and the referring-expression grammars.  Objects, colours,
backgrounds, shading and occluders come from dcsft.data.drawing, shared with the shape world
(dcsft.data.world): change them there only when both worlds should change.

Grammars (what the expression looks like):
* ``short`` (RefCOCO, ID): the fewest words that single the target out, tried in the order
  class ("the star"), colour + class ("the red star"), size ("the small red star"), position
  ("the red star on the left"); the colour is added when not needed in 40% of expressions,
  as annotators do.
* ``relational`` (Ref-L4: longer, compositional): the target related to another object,
  "the red star left of the blue circle", with the target described only as far as the
  relation leaves it ambiguous.
* ``indirect`` (LISA-Grounding: reasoning): the target named by a property to work out, not
  by its class: "the largest object", "the object with the same colour as the circle", "the
  leftmost object".

Styles: ``photo`` (textured background, shaded objects; ID) and ``drawing`` (cartoon or
outline renderings on plain backgrounds, the new scene style of the OOD `indirect` split).

Hardness, drawn per scene with the shares of `hardness` (the study's `data.small`, `data.occluded`
and `data.twin`; HARDNESS for the pretraining pool): a ``tiny`` target (radius 0.07-0.09 of the
side instead of 0.13-0.22), an ``occluded`` target (25-45% hidden behind a pole, wall or blob) or
a ``twin`` (a near-duplicate distractor: same class and colour, told apart by size or position only).

Noise in training splits (RefCOCO has both): with probability `label_noise` the box is
another object's (``noise="mislabeled"``); with probability `ambiguous` the expression is
shortened so that it fits the target and a twin (``noise="ambiguous"``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dcsft.data.drawing import (
    COLOURS,
    SATURATED_COLOURS,
    apply_occluder,
    background_pair,
    blend,
    fill_mask,
    flat_image,
    light_colour,
    outline_mask,
    paint_shaded_objects,
    pick_colour,
    place_objects,
    textured_background,
)
from dcsft.data.world import CLASSES, sample_rng

STYLES: dict[str, tuple[str, ...]] = {"photo": ("blotches", "stripes"), "drawing": ("cartoon", "outline")}
GRAMMARS = ("short", "relational", "indirect")
HARDNESS = {None: 0.55, "tiny": 0.15, "occluded": 0.15, "twin": 0.15}  # the pretraining pool's mix


def hardness_mix(tiny: float, occluded: float, twin: float) -> dict[str | None, float]:
    """Per-scene hardness shares, the rest plain; the three are exclusive, so they sum to at most 1."""
    shares = {"tiny": tiny, "occluded": occluded, "twin": twin}
    if any(not 0 <= v <= 1 for v in shares.values()) or sum(shares.values()) > 1 + 1e-9:
        raise ValueError(f"hardness shares must each be in [0, 1] and sum to at most 1, got {shares}")
    return {None: max(0.0, 1 - sum(shares.values())), **shares}


RELATIONS = {"left of": (-1, 0), "right of": (1, 0), "above": (0, -1), "below": (0, 1)}
POSITIONS = {"on the left": (0, -1), "on the right": (0, 1), "at the top": (1, -1), "at the bottom": (1, 1)}
_CLEAR = 0.08  # a spatial relation holds when the centres differ by this fraction of the side


def _box(obj) -> list[float]:
    lo, hi = obj.pts.min(0), obj.pts.max(0)
    return [round(float(v), 1) for v in (*lo, *hi)]


def _objects(rng, size: int, hardness: str | None) -> tuple[list[str], list[float]]:
    """Classes and radii (px); the first object is the target."""
    n = int(rng.choice([2, 3, 4], p=[0.4, 0.4, 0.2]))
    classes = [CLASSES[i] for i in rng.integers(len(CLASSES), size=n)]
    radii = list(rng.uniform(0.13, 0.22, n) * size)
    if hardness == "tiny":
        radii[0] = rng.uniform(0.07, 0.09) * size
    if hardness == "twin":
        classes[1] = classes[0]
        radii[1] = radii[0] * (rng.uniform(0.55, 0.7) if rng.random() < 0.5 else 1.0)
    elif n > 2 and rng.random() < 0.5:  # a same-class object makes colour or more necessary
        classes[1] = classes[0]
    return classes, radii


def _colours(rng, classes: list[str], hardness: str | None) -> list[str]:
    names = [pick_colour(rng, SATURATED_COLOURS) for _ in classes]
    if hardness == "twin":
        names[1] = names[0]
    return names


def _render(rng, style: str, substyle: str, size: int, objs, names: list[str]) -> np.ndarray:
    if style == "photo":
        c0, c1 = background_pair(rng, [COLOURS[n] for n in names], 110.0)
        img = textured_background(rng, size, c0, c1, substyle, rng.uniform(12, 28))
        return paint_shaded_objects(rng, size, img, objs, names, rng.uniform(0.15, 0.3))
    img = flat_image(size, light_colour(rng))
    for obj, name in zip(objs, names):
        mask = (
            fill_mask([obj], size)
            if substyle == "cartoon"
            else outline_mask([obj], size, [obj.radius * rng.uniform(0.14, 0.2)])
        )
        img = blend(img, mask, COLOURS[name])
    if substyle == "cartoon":
        img = blend(img, outline_mask(objs, size, [o.radius * 0.12 for o in objs]), COLOURS["black"])
    return img


# ---------------------------------------------------------------- expressions


def _matches(objs, names, cls: str | None, colour: str | None) -> list[int]:
    return [
        i
        for i, (o, n) in enumerate(zip(objs, names))
        if (cls is None or o.cls == cls) and (colour is None or n == colour)
    ]


def _extreme(objs, idx: list[int], key, sign: int, margin: float) -> bool:
    """Whether object 0 has the extreme value of `key` among `idx` by at least `margin`."""
    others = [key(objs[i]) for i in idx if i != 0]
    return all(sign * (key(objs[0]) - v) > margin for v in others)


def _noun(cls: str | None, colour: str | None, size_word: str = "") -> str:
    words = [w for w in (size_word, colour, cls or "object") if w]
    return "the " + " ".join(words)


def short_expression(rng, objs, names, size: int, vague: bool = False) -> str | None:
    """The fewest words that single out object 0 (None if nothing does); `vague` stops one step
    early, so that the expression fits the target and another object."""
    cls, colour = objs[0].cls, names[0]
    steps = []
    for with_colour in (False, True):
        idx = _matches(objs, names, cls, colour if with_colour else None)
        steps.append((_noun(cls, colour if with_colour else None), idx))
    idx = _matches(objs, names, cls, colour)
    for word, sign in (("small", -1), ("large", 1)):
        if _extreme(objs, idx, lambda o: o.radius, sign, 0.2 * objs[0].radius):
            steps.append((_noun(cls, colour, word), [0]))
    for phrase, (axis, sign) in POSITIONS.items():
        if _extreme(objs, idx, lambda o, axis=axis: o.centre[axis], sign, _CLEAR * size):
            steps.append((_noun(cls, colour) + " " + phrase, [0]))
    if vague:
        return next((steps[i][0] for i in (1, 0) if len(steps[i][1]) == 2), None)
    unique = [i for i, (_, hit) in enumerate(steps) if hit == [0]]
    if not unique:
        return None
    first = unique[0]
    text = steps[first][0]
    if first == 0 and rng.random() < 0.4:
        text = _noun(cls, colour)
    return text


def _relation(a, b, size: int) -> str | None:
    """How a stands to b, if one direction clearly dominates."""
    d = a.centre - b.centre
    axis = int(abs(d[1]) > abs(d[0]))
    if abs(d[axis]) < _CLEAR * size or abs(d[1 - axis]) > 0.8 * abs(d[axis]):
        return None
    side = int(np.sign(d[axis]))
    return {(0, -1): "left of", (0, 1): "right of", (1, -1): "above", (1, 1): "below"}[(axis, side)]


def relational_expression(rng, objs, names, size: int) -> str | None:
    """Object 0 described by its relation to another object, with as few of its own words as work."""
    for ref in rng.permutation(range(1, len(objs))):
        relation = _relation(objs[0], objs[ref], size)
        ref_text = short_expression(
            rng,
            [objs[ref]] + [o for i, o in enumerate(objs) if i != ref],
            [names[ref]] + [n for i, n in enumerate(names) if i != ref],
            size,
        )
        if relation is None or ref_text is None:
            continue
        for cls, colour in ((objs[0].cls, None), (objs[0].cls, names[0])):
            fits = [
                i
                for i in _matches(objs, names, cls, colour)
                if i != ref and _relation(objs[i], objs[ref], size) == relation
            ]
            if fits == [0]:
                return f"{_noun(cls, colour)} {relation} {ref_text}"
    return None


def indirect_expression(rng, objs, names, size: int) -> str | None:
    """Object 0 named by a property to work out rather than by its class."""
    all_idx = list(range(len(objs)))
    options = []
    for word, sign in (("smallest", -1), ("largest", 1)):
        if _extreme(objs, all_idx, lambda o: o.radius, sign, 0.25 * objs[0].radius):
            options.append(f"the {word} object")
    for word, (axis, sign) in (
        ("leftmost", (0, -1)),
        ("rightmost", (0, 1)),
        ("topmost", (1, -1)),
        ("lowest", (1, 1)),
    ):
        if _extreme(objs, all_idx, lambda o, axis=axis: o.centre[axis], sign, _CLEAR * size):
            options.append(f"the {word} object")
    same = [i for i in all_idx[1:] if names[i] == names[0]]
    if (
        len(same) == 1
        and len(_matches(objs, names, None, names[0])) == 2
        and len(_matches(objs, names, objs[same[0]].cls, None)) == 1
    ):
        options.append(f"the object with the same colour as the {objs[same[0]].cls}")
    return options[rng.integers(len(options))] if options else None


EXPRESSIONS = {
    "short": short_expression,
    "relational": relational_expression,
    "indirect": indirect_expression,
}


# ---------------------------------------------------------------- scenes


def draw_scene(
    rng: np.random.Generator,
    style: str,
    grammar: str,
    size: int = 126,
    label_noise: float = 0.0,
    ambiguous: float = 0.0,
    hardness: dict[str | None, float] = HARDNESS,
) -> tuple[Image.Image, dict]:
    """One scene and its referring expression. Redraws (from the same stream) until the grammar
    can describe the target, so every returned expression is satisfiable.

    Meta: expression, box (xyxy, canvas px), size [w, h], objects [{class, colour, box}] (the
    target first), style, substyle, grammar, hardness, noise, kinds (hardness and noise, the
    hard-sample kinds that apply), and occlusion for occluded targets.
    """
    if style not in STYLES:
        raise ValueError(f"unknown scene style {style!r}; allowed: {', '.join(STYLES)}")
    if grammar not in GRAMMARS:
        raise ValueError(f"unknown grammar {grammar!r}; allowed: {', '.join(GRAMMARS)}")
    u = rng.random()
    noise = "mislabeled" if u < label_noise else "ambiguous" if u < label_noise + ambiguous else None
    substyle = STYLES[style][rng.integers(len(STYLES[style]))]
    kinds = list(hardness)
    hardness = "twin" if noise == "ambiguous" else kinds[rng.choice(len(kinds), p=list(hardness.values()))]
    while True:
        classes, radii = _objects(rng, size, hardness)
        objs = place_objects(rng, classes, [r / size for r in radii], size)
        names = _colours(rng, classes, hardness)
        if noise == "ambiguous":
            expression = short_expression(rng, objs, names, size, vague=True)
        else:
            expression = EXPRESSIONS[grammar](rng, objs, names, size)
        if expression is not None:
            break
    meta = {
        "expression": expression,
        "style": style,
        "substyle": substyle,
        "grammar": grammar,
        "hardness": hardness,
        "noise": noise,
        "kinds": [kind for kind in (hardness, noise) if kind],
        "size": [size, size],
        "objects": [{"class": o.cls, "colour": n, "box": _box(o)} for o, n in zip(objs, names)],
    }
    img = _render(rng, style, substyle, size, objs, names)
    if hardness == "occluded":
        img, meta["occlusion"] = apply_occluder(
            rng, size, img, objs[0], names[0], rng.uniform(0.25, 0.45), style == "photo"
        )
    if style == "photo":
        img = img + rng.standard_normal((size, size), dtype=np.float32) * np.float32(rng.uniform(3, 7))
    meta["box"] = meta["objects"][int(rng.integers(1, len(objs))) if noise == "mislabeled" else 0]["box"]
    planes = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return Image.merge("RGB", [Image.fromarray(p) for p in planes]), meta


def draw_scene_item(
    seed: int,
    pool: str,
    index: int,
    style: str,
    grammar: str,
    size: int = 126,
    label_noise: float = 0.0,
    ambiguous: float = 0.0,
    hardness: dict[str | None, float] = HARDNESS,
) -> tuple[Image.Image, dict]:
    """The index-th scene of a pool, regenerable alone (its own random stream)."""
    return draw_scene(sample_rng(seed, pool, index), style, grammar, size, label_noise, ambiguous, hardness)
