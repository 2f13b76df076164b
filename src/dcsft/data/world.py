"""An embedded classification world: seeded, procedurally drawn images of one-word object classes.

The world stands in for ImageNet and its out-of-distribution variants in a tiny vision-language-model
study: every image shows one labelled object (a circle, square, triangle, star, cross, heart, diamond,
arrow, moon or house) in one of twelve named colours, drawn anti-aliased with the primitives of
dcsft.data.drawing, rotated by at most 30 degrees in every style.

Which module to change: this one holds the classification world -- its classes, styles and their
recipes (how a photo, rendition or adversarial image is composed, and the style-only looks: sketch
strokes, pattern fills, clutter), the hard-sample and noise dials, captions and pools.  Objects,
colours, backgrounds, shading and occluders are shared with the scene world (dcsft.data.scenes) and
live in dcsft.data.drawing; change them there only when both worlds should change.

Styles and what each mirrors:

* ``photo`` -- ImageNet itself (in distribution): a shaded object on a textured background (a smooth
  gradient with low-frequency ``blotches``, or soft ``stripes``) with mild sensor noise.
* ``rendition`` -- ImageNet-R (same classes, other renderings): ``outline`` (thick coloured outline on a
  plain light background), ``sketch`` (jittered multi-stroke pencil lines on paper), ``cartoon`` (flat
  saturated fill with a thick black outline on a pastel background) and ``pattern`` (a fill of stripes
  or dots in two colours).
* ``adversarial`` -- ImageNet-A (natural hard cases, photo-like otherwise): ``clutter`` (lines, blobs and
  partial shapes over a busy background), ``occluded`` (25-45% of the object hidden), ``small`` (radius
  0.13-0.2 of the side instead of 0.25-0.42), ``distractor`` (a smaller object of another class; the
  larger one is labelled) and ``lowcontrast`` (object colour close to the background).

Classes: the base is pretrained on the ten above; a study adds the first ``novel`` of
NOVEL_CLASSES (bolt, drop, tree, hourglass), which the base saw only rarely (:func:`study_classes`).

Hard-sample kinds (every image's ``meta["kinds"]`` lists those that apply): ``mislabeled`` and
``ambiguous`` (below); ``small`` and ``lowcontrast`` (with probability ``small`` a photo is drawn
with the adversarial style's small or low-contrast object); ``context`` (with probability
``context`` a photo's background is the drawn class's habitat colour, HABITATS, the shortcut that
ImageNet's backgrounds offer; in ``adversarial`` images it is another class's habitat,
``context-swap``, so the shortcut misleads); ``novel`` (a class of NOVEL_CLASSES). With every
share at 0 and the base's classes, the images are exactly those the base was pretrained on.

Noise model (ImageNet has a few percent label errors): with probability ``label_noise`` the returned
label is a uniformly chosen wrong class (``noise="mislabeled"``; the image is exactly the clean one, so
only the label changes); with probability ``ambiguous`` the image itself is made ambiguous, either by an
occluder over 60-80% of the object or by a second, equally sized object of another class
(``noise="ambiguous"``).  The two events are exclusive, so their probabilities must sum to at most 1.

Every pool item is regenerable alone: :func:`sample_rng` derives an independent stream per
(seed, pool, index) and :func:`draw_pool_item` balances classes by index.
"""

from __future__ import annotations

import colorsys
import hashlib

import numpy as np
from PIL import Image, ImageDraw

from dcsft.data.drawing import (
    COLOURS,
    MAX_ROTATION,
    SATURATED_COLOURS,
    SUPERSAMPLING,
    PlacedObject,
    apply_occluder,
    background_pair,
    blend,
    colour_distance,
    colour_vector,
    draw_stroke,
    fill_mask,
    flat_image,
    jittered_colour,
    light_colour,
    muted_colour,
    outline_mask,
    paint_shaded_objects,
    pick_colour,
    pil_coords,
    pixel_grid,
    place_objects,
    posed_shape,
    rasterise,
    ring_polygon,
    smooth_noise,
    textured_background,
)

# The classes the embedded base is pretrained on.
CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "heart",
    "diamond",
    "arrow",
    "moon",
    "house",
)
# Classes only the study draws (`data.novel_classes` of them): the base never saw them or their
# names, as a released VLM knows only part of a fine-grained label set.
NOVEL_CLASSES: tuple[str, ...] = ("bolt", "drop", "tree", "hourglass")
STYLES: tuple[str, ...] = ("photo", "rendition", "adversarial")
SUBSTYLES: dict[str, tuple[str, ...]] = {
    "photo": ("blotches", "stripes"),
    "rendition": ("outline", "sketch", "cartoon", "pattern"),
    "adversarial": ("clutter", "occluded", "small", "distractor", "lowcontrast"),
}

# Each study class's usual background ("habitat"), muted and spread over the hue circle: with
# `data.context` the photos show it, as ImageNet's classes come with their typical scenes.
HABITATS: dict[str, np.ndarray] = {
    name: np.array(colorsys.hsv_to_rgb(i / 14, 0.5, 0.75 if i % 2 else 0.5)) * 255
    for i, name in enumerate(CLASSES + NOVEL_CLASSES)
}


# ---------------------------------------------------------------- photo-like rendering


def _object_colours(rng, objs, meta) -> list[str]:
    return [meta["colour"]] + [pick_colour(rng) for _ in objs[1:]]


def _backdrop_pair(rng, habitat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient anchors near a class's habitat colour."""
    c0 = np.clip(habitat + rng.normal(0, 10, 3), 0, 255)
    return colour_vector(c0), colour_vector(np.clip(c0 + rng.normal(0, 25, 3), 0, 255))


def _background(rng, names: list[str], min_dist: float, backdrop) -> tuple[np.ndarray, np.ndarray]:
    """A habitat's colours when `backdrop` is one, else colours far from every object's."""
    if backdrop is None:
        return background_pair(rng, [COLOURS[n] for n in names], min_dist)
    return _backdrop_pair(rng, backdrop)


def _main_colour(rng, backdrop) -> str:
    return pick_colour(rng) if backdrop is None else pick_colour(rng, far_from=[backdrop], min_dist=110)


def _photo_scene(rng, size, objs, meta, bg_kind: str, amp: float, backdrop=None) -> np.ndarray:
    names = _object_colours(rng, objs, meta)
    c0, c1 = _background(rng, names, 110.0, backdrop)
    img = textured_background(rng, size, c0, c1, bg_kind, amp)
    return paint_shaded_objects(rng, size, img, objs, names, rng.uniform(0.15, 0.3))


def _render_photo(rng, size, objs, substyle, meta, backdrop=None) -> np.ndarray:
    meta["colour"] = _main_colour(rng, backdrop)
    return _photo_scene(rng, size, objs, meta, substyle, rng.uniform(12, 28), backdrop)


def _clutter(rng, size: int, drawn: str, avoid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Premultiplied colour and alpha of junk behind the object (lines, irregular blobs, partial shapes of
    other classes) and the alpha of thin lines in front of it.

    Blobs are irregular on purpose: a round blob would read as a 'circle'.  The junk spans the whole
    frame, so it is brought down with a box filter (exact area coverage): LANCZOS on its three
    full-frame canvases would cost more than the rest of the image."""
    k = SUPERSAMPLING
    big = (size * k, size * k)
    # Opaque colours on a black canvas are premultiplied by alpha, so the reduced canvas blends correctly.
    colour, alpha, front = Image.new("RGB", big), Image.new("L", big), Image.new("L", big)
    dc, da, df = ImageDraw.Draw(colour), ImageDraw.Draw(alpha), ImageDraw.Draw(front)

    n = int(rng.integers(6, 11))
    fills = muted_colour(rng, n)
    # One redraw of colours close to the object's keeps the object's outline findable.
    close = np.linalg.norm(fills - np.asarray(avoid), axis=1) < 70
    fills[close] = muted_colour(rng, n)[close]
    others = [c for c in CLASSES if c != drawn]
    for kind, fill in zip(rng.integers(3, size=n), fills.astype(int).tolist()):
        fill = tuple(fill)
        if kind == 0:
            p = pil_coords(rng.uniform(-0.1, 1.1, (2, 2)) * size * k)
            w = round(rng.uniform(1.5, 4) * k)
            dc.line(p, fill=fill, width=w)
            da.line(p, fill=255, width=w)
            continue
        if kind == 1:
            pts = ring_polygon(
                7, rng.uniform(0.04, 0.11) * size * rng.uniform(0.6, 1.0, 7), rng.uniform(0, 2 * np.pi)
            ) + rng.uniform(0, size, 2)
        else:
            # Centred just outside an edge so that only part of the shape shows.
            r = rng.uniform(0.15, 0.28) * size
            along, out = rng.uniform(0, size), rng.uniform(0.2, 0.6) * r
            centre = [(-out, along), (size + out, along), (along, -out), (along, size + out)][rng.integers(4)]
            shape = others[rng.integers(len(others))]
            pts = posed_shape(shape, r, rng.uniform(-MAX_ROTATION, MAX_ROTATION)) + centre
        poly = pil_coords(pts * k)
        dc.polygon(poly, fill=fill)
        da.polygon(poly, fill=255)
    for _ in range(int(rng.integers(1, 3))):
        df.line(
            pil_coords(rng.uniform(-0.1, 1.1, (2, 2)) * size * k),
            fill=255,
            width=round(rng.uniform(1.0, 1.8) * k),
        )

    def down(im):
        return np.asarray(im.reduce(k), dtype=np.float32)

    return down(colour).transpose(2, 0, 1), down(alpha) * (1 / 255), down(front) * (1 / 255)


def _render_adversarial(rng, size, objs, substyle, meta, backdrop=None) -> np.ndarray:
    """`backdrop` (a habitat colour) is ignored by `lowcontrast`, whose background is the object's colour."""
    meta["colour"] = _main_colour(rng, backdrop)
    bg_kind = ("blotches", "stripes")[rng.integers(2)]
    if substyle == "lowcontrast":
        return _lowcontrast(rng, size, objs, meta, bg_kind)
    if substyle != "clutter":
        return _photo_scene(rng, size, objs, meta, bg_kind, rng.uniform(12, 28), backdrop)
    names = _object_colours(rng, objs, meta)
    c0, c1 = _background(rng, names, 100.0, backdrop)
    img = textured_background(rng, size, c0, c1, "busy", rng.uniform(25, 40))
    colour, alpha, front = _clutter(rng, size, meta["drawn"], COLOURS[meta["colour"]])
    img = img * (1 - alpha) + colour
    img = paint_shaded_objects(rng, size, img, objs, names, rng.uniform(0.15, 0.3))
    return blend(img, front, muted_colour(rng))


def _lowcontrast(rng, size, objs, meta, bg_kind) -> np.ndarray:
    """Background a small step away from the object colour: the silhouette is there, but faint."""
    rgb = np.asarray(COLOURS[meta["colour"]], dtype=np.float64)
    for _ in range(20):
        step = rng.normal(0, 1, 3)
        bg = np.clip(rgb + step / np.linalg.norm(step) * rng.uniform(30, 45), 0, 255)
        if colour_distance(bg, rgb) >= 28:
            break
    else:
        bg = np.clip(rgb + np.where(rgb > 127, -36.0, 36.0), 0, 255)
    img = textured_background(rng, size, colour_vector(bg), colour_vector(bg), bg_kind, rng.uniform(4, 7))
    return paint_shaded_objects(
        rng, size, img, objs, _object_colours(rng, objs, meta), rng.uniform(0.04, 0.08), jitter=3.0
    )


# ---------------------------------------------------------------- renditions


def _densify(pts: np.ndarray, step: float) -> np.ndarray:
    edges = np.roll(pts, -1, 0) - pts
    n = np.maximum(1, np.ceil(np.linalg.norm(edges, axis=1) / step).astype(int))
    frac = np.concatenate([np.arange(m) / m for m in n])
    return np.repeat(pts, n, 0) + np.repeat(edges, n, 0) * frac[:, None]


def _strokes(rng, obj: PlacedObject, n: int) -> list[np.ndarray]:
    """Hand-drawn passes over the outline: smooth wobble, random start, slight overshoot or gap at the end."""
    dense = _densify(obj.pts, 2.5)
    out = []
    for _ in range(n):
        path = np.roll(dense, -int(rng.integers(len(dense))), 0)
        extra = int(len(path) * rng.uniform(-0.04, 0.1))
        path = np.concatenate([path, path[: extra + 1]]) if extra >= 0 else path[:extra]
        s = np.linspace(0, 2 * np.pi, len(path))[:, None]
        wobble = rng.uniform(0.4, 1.1) * np.sin(rng.uniform(1.5, 4.5, 2) * s + rng.uniform(0, 2 * np.pi, 2))
        wobble += 0.35 * np.sin(rng.uniform(6, 11, 2) * s + rng.uniform(0, 2 * np.pi, 2))
        scale = rng.uniform(0.97, 1.03)
        out.append((path - obj.centre) * scale + obj.centre + wobble + rng.normal(0, 0.6, 2))
    return out


def _stripe_mask(rng, size: int, period: float, width_frac: float, angle: float) -> np.ndarray:
    """Anti-aliased parallel bands: coverage from the signed distance to the band edge."""
    x, y = pixel_grid(size)
    p = (x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))) * np.float32(1 / period)
    p += np.float32(rng.uniform(0, 1))
    return np.clip(0.5 + (width_frac / 2 - np.abs(p - np.floor(p) - 0.5)) * np.float32(period), 0, 1)


def _dot_mask(rng, size: int, period: float, radius: float) -> np.ndarray:
    x, y = pixel_grid(size)
    c, s = np.float32(np.cos(rng.uniform(0, np.pi / 2))), np.float32(np.sin(rng.uniform(0, np.pi / 2)))
    off_u, off_v = np.float32(rng.uniform(0, period)), np.float32(rng.uniform(0, period))
    u = (x * c + y * s + off_u) * np.float32(1 / period)
    v = (y * c - x * s + off_v) * np.float32(1 / period)
    du, dv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
    return np.clip(radius + 0.5 - np.sqrt(du * du + dv * dv) * np.float32(period), 0, 1)


def _outline(rng, size, objs, meta) -> np.ndarray:
    bg = light_colour(rng)
    names = [pick_colour(rng, far_from=[bg], min_dist=120) for _ in objs]
    meta["colour"] = names[0]
    img = flat_image(size, bg)
    for o, name in zip(objs, names):
        img = blend(img, outline_mask([o], size, [o.radius * rng.uniform(0.12, 0.18)]), COLOURS[name])
    return img


def _sketch(rng, size, objs, meta) -> np.ndarray:
    meta["colour"] = ("black", "gray")[rng.integers(2)]
    paper = colour_vector(248, 244, 234) - np.float32(rng.uniform(-5, 10))
    img = flat_image(size, paper) + 3 * smooth_noise(rng, size, 4)
    lines = [
        (path, round(255 * rng.uniform(0.6, 1.0)), round(rng.uniform(0.9, 1.5) * SUPERSAMPLING))
        for o in objs
        for path in _strokes(rng, o, int(rng.integers(2, 4)))
    ]

    def paint(d, to_big):
        for path, ink, width in lines:
            draw_stroke(d, to_big(path), width, ink, closed=False)

    ink = rasterise(size, [p for p, _, _ in lines], paint, 2)
    if rng.random() < 0.5:  # pencil hatching inside the shape
        hatch = _stripe_mask(rng, size, rng.uniform(3.5, 5.5), 0.25, rng.uniform(0.5, 1.1) * np.pi / 2)
        ink = np.maximum(ink, hatch * fill_mask(objs, size) * np.float32(rng.uniform(0.25, 0.45)))
    return blend(img, ink, jittered_colour(rng, meta["colour"], 6))


def _cartoon(rng, size, objs, meta) -> np.ndarray:
    bg = colour_vector(np.clip(rng.uniform(0, 255, 3) * 0.4 + 255 * 0.6 - rng.uniform(0, 25), 0, 255))
    names = [pick_colour(rng, SATURATED_COLOURS, [bg], 90) for _ in objs]
    meta["colour"] = names[0]
    img = flat_image(size, bg)
    for o, name in zip(objs, names):
        img = blend(img, fill_mask([o], size), COLOURS[name])
    widths = [o.radius * rng.uniform(0.1, 0.14) for o in objs]
    return blend(img, outline_mask(objs, size, widths), COLOURS["black"])


def _pattern(rng, size, objs, meta) -> np.ndarray:
    meta["colour"] = pick_colour(rng)
    meta["colour2"] = pick_colour(rng, far_from=[COLOURS[meta["colour"]]], min_dist=130)
    meta["pattern"] = ("stripes", "dots")[rng.integers(2)]
    c0, c1 = background_pair(rng, [COLOURS[meta["colour"]], COLOURS[meta["colour2"]]], 90)
    img = textured_background(rng, size, c0, c1, "plain", 0)
    # Scaled to the object so that even a small one shows several periods.
    period = max(4.5, objs[0].radius * rng.uniform(0.25, 0.38))
    if meta["pattern"] == "stripes":
        second = _stripe_mask(rng, size, period, 0.5, rng.uniform(0, np.pi))
    else:
        second = _dot_mask(rng, size, period, period * rng.uniform(0.26, 0.34))
    fill = fill_mask(objs, size)
    return blend(blend(img, fill, COLOURS[meta["colour"]]), fill * second, COLOURS[meta["colour2"]])


def _render_rendition(rng, size, objs, substyle, meta) -> np.ndarray:
    return {"outline": _outline, "sketch": _sketch, "cartoon": _cartoon, "pattern": _pattern}[substyle](
        rng, size, objs, meta
    )


# ---------------------------------------------------------------- public API


SMALL_KINDS = ("small", "lowcontrast")  # photo substyles a `small` share borrows from `adversarial`


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def study_classes(novel: int) -> tuple[str, ...]:
    """The base's classes and the first `novel` of NOVEL_CLASSES."""
    if not 0 <= novel <= len(NOVEL_CLASSES):
        raise ValueError(f"novel classes must be in [0, {len(NOVEL_CLASSES)}], got {novel!r}")
    return CLASSES + NOVEL_CLASSES[:novel]


def _other_class(rng, cls: str, classes: tuple[str, ...]) -> str:
    """A uniformly chosen class of `classes` other than `cls`."""
    return classes[(classes.index(cls) + 1 + rng.integers(len(classes) - 1)) % len(classes)]


def _layout(
    rng, drawn: str, substyle: str, ambiguity: str | None, classes: tuple[str, ...]
) -> tuple[list[str], list[float], str | None]:
    """Classes and radii (fractions of the side) of the objects; the first is the labelled one."""
    other = _other_class(rng, drawn, classes)
    if ambiguity == "pair":
        r = rng.uniform(0.13, 0.2) if substyle == "small" else rng.uniform(0.18, 0.24)
        return [drawn, other], [r, r], other
    if substyle == "small":
        return [drawn], [rng.uniform(0.13, 0.2)], None
    if substyle == "distractor":
        r = rng.uniform(0.22, 0.3)
        return [drawn, other], [r, r * rng.uniform(0.5, 0.65)], other
    return [drawn], [rng.uniform(0.25, 0.42)], None


def _check_dials(
    style: str,
    substyle: str | None,
    label: str | None,
    classes: tuple[str, ...],
    size: int,
    shares: dict[str, float],
) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; allowed: {', '.join(STYLES)}")
    if substyle is not None and substyle not in SUBSTYLES[style]:
        raise ValueError(f"unknown substyle {substyle!r} for {style}; allowed: {', '.join(SUBSTYLES[style])}")
    if label is not None and label not in classes:
        raise ValueError(f"unknown label {label!r}; allowed: {', '.join(classes)}")
    for name, value in shares.items():
        _check_unit(name, value)
    if shares["label_noise"] + shares["ambiguous"] > 1.0:
        raise ValueError("label_noise + ambiguous must be at most 1 (the two events are exclusive)")
    if size < 16:
        raise ValueError(f"size must be at least 16, got {size}")


def _backdrop_class(rng, style: str, substyle: str, drawn: str, context: float, classes) -> str | None:
    """Whose habitat the background shows: the drawn class's in photos (the shortcut training data
    has), another class's in adversarial images (the shortcut broken); none in renditions, in
    low-contrast images, or when `context` (drawn only when positive) does not fire."""
    if context <= 0 or style == "rendition" or substyle == "lowcontrast" or rng.random() >= context:
        return None
    return drawn if style == "photo" else _other_class(rng, drawn, classes)


def _kinds(meta: dict, backdrop: str | None) -> list[str]:
    """The hard-sample kinds that apply to an image (see the module docstring)."""
    kinds = ["novel"] if meta["drawn"] in NOVEL_CLASSES else []
    if meta["noise"]:
        kinds.append(meta["noise"])
    if meta["style"] == "photo" and meta["substyle"] in SMALL_KINDS:
        kinds.append(meta["substyle"])
    if backdrop is not None:
        kinds.append("context" if backdrop == meta["drawn"] else "context-swap")
    return kinds


def draw_sample(
    rng: np.random.Generator,
    style: str,
    size: int = 84,
    label: str | None = None,
    substyle: str | None = None,
    label_noise: float = 0.0,
    ambiguous: float = 0.0,
    small: float = 0.0,
    context: float = 0.0,
    classes: tuple[str, ...] = CLASSES,
) -> tuple[Image.Image, dict]:
    """Draw one image of the world.

    `label` picks the class to draw (random among `classes` when None); `substyle` is random within
    `style` when None. `small` is the share of photos drawn with a small or low-contrast object,
    `context` the share whose background is a class's habitat (see the module docstring).
    Returns an RGB image of size x size and metadata with keys label (the answer, possibly noisy), drawn
    (the class actually drawn), box (its polygon's [x1, y1, x2, y2] in pixels), colour (name), style,
    substyle, noise (None, "mislabeled" or "ambiguous"), backdrop (the class whose habitat is the
    background, or None) and kinds (the hard-sample kinds that apply); some substyles add keys:
    colour2 and pattern (pattern), distractor (the smaller object's class), other (the second object
    of an ambiguous pair), ambiguity ("occluder" or "pair") and occlusion (hidden fraction of the
    labelled object).
    """
    _check_dials(
        style,
        substyle,
        label,
        classes,
        size,
        {"label_noise": label_noise, "ambiguous": ambiguous, "small": small, "context": context},
    )
    drawn = label if label is not None else classes[rng.integers(len(classes))]
    substyle = substyle if substyle is not None else SUBSTYLES[style][rng.integers(len(SUBSTYLES[style]))]
    u = rng.random()
    noise = "mislabeled" if u < label_noise else "ambiguous" if u < label_noise + ambiguous else None
    ambiguity = ("occluder", "pair")[rng.integers(2)] if noise == "ambiguous" else None
    if style == "photo" and small > 0 and rng.random() < small:
        substyle = SMALL_KINDS[rng.integers(len(SMALL_KINDS))]
    backdrop = _backdrop_class(rng, style, substyle, drawn, context, classes)
    meta = {
        "label": drawn,
        "drawn": drawn,
        "colour": None,
        "style": style,
        "substyle": substyle,
        "noise": noise,
        "backdrop": backdrop,
    }
    if ambiguity:
        meta["ambiguity"] = ambiguity

    layout, radii, other = _layout(rng, drawn, substyle, ambiguity, classes)
    if other is not None:
        meta["other" if ambiguity == "pair" else "distractor"] = other
    objs = place_objects(rng, layout, radii, size)
    meta["box"] = [round(float(v), 1) for v in (*objs[0].pts.min(0), *objs[0].pts.max(0))]
    habitat = None if backdrop is None else HABITATS[backdrop]
    if style == "rendition":
        img = _render_rendition(rng, size, objs, substyle, meta)
    elif substyle in SUBSTYLES["photo"]:
        img = _render_photo(rng, size, objs, substyle, meta, habitat)
    else:
        img = _render_adversarial(rng, size, objs, substyle, meta, habitat)
    photo = style != "rendition"

    coverage = (
        rng.uniform(0.6, 0.8)
        if ambiguity == "occluder"
        else (rng.uniform(0.25, 0.45) if substyle == "occluded" else None)
    )
    if coverage is not None:
        img, meta["occlusion"] = apply_occluder(rng, size, img, objs[0], meta["colour"], coverage, photo)
    if photo:  # sensor noise, luminance only: chroma noise would cost twice as much for little realism
        img = img + rng.standard_normal((size, size), dtype=np.float32) * np.float32(rng.uniform(3, 7))
    if noise == "mislabeled":
        meta["label"] = _other_class(rng, drawn, classes)
    meta["kinds"] = _kinds(meta, backdrop)
    planes = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return Image.merge("RGB", [Image.fromarray(p) for p in planes]), meta


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def caption(meta: dict) -> str:
    """Short caption naming the drawn object, its colour (where the style shows one) and the style."""
    d, c, sub = meta["drawn"], meta["colour"], meta["substyle"]
    if meta["style"] == "photo":
        text = f"{_a(f'{c} {d}')} in a photo"
    elif sub == "outline":
        text = f"{_a(f'{c} {d}')} drawn as an outline"
    elif sub == "sketch":
        text = f"a sketch of {_a(d)}"
    elif sub == "cartoon":
        text = f"a cartoon of {_a(f'{c} {d}')}"
    elif sub == "pattern":
        text = (
            f"{_a(d)} with {c} and {meta['colour2']} stripes"
            if meta["pattern"] == "stripes"
            else f"{_a(f'{c} {d}')} with {meta['colour2']} dots"
        )
    elif sub == "clutter":
        text = f"{_a(f'{c} {d}')} in clutter"
    elif sub == "occluded":
        text = f"a partly hidden {c} {d}"
    elif sub == "small":
        text = f"a small {c} {d} in a photo"
    elif sub == "distractor":
        # An ambiguous pair replaces the smaller distractor.
        text = _a(f"{c} {d}") + (f" next to a smaller {meta['distractor']}" if "distractor" in meta else "")
    else:
        text = f"{_a(f'{c} {d}')} with low contrast"
    if "other" in meta:
        text += f" beside {_a(meta['other'])}"
    return text


def sample_rng(seed: int, pool: str, index: int) -> np.random.Generator:
    """Independent, deterministic generator per (seed, pool, index); the pool name is hashed stably."""
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be non-negative")
    pool_key = int.from_bytes(hashlib.sha256(pool.encode("utf-8")).digest()[:8], "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, pool_key, index])))


def draw_pool_item(
    seed: int,
    pool: str,
    index: int,
    style: str,
    size: int = 84,
    label_noise: float = 0.0,
    ambiguous: float = 0.0,
    small: float = 0.0,
    context: float = 0.0,
    classes: tuple[str, ...] = CLASSES,
) -> tuple[Image.Image, dict]:
    """The index-th item of a pool: label classes[index % len(classes)], so every run of len(classes)
    indices is balanced."""
    return draw_sample(
        sample_rng(seed, pool, index),
        style,
        size=size,
        label=classes[index % len(classes)],
        label_noise=label_noise,
        ambiguous=ambiguous,
        small=small,
        context=context,
        classes=classes,
    )
