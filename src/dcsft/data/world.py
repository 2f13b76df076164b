"""An embedded classification world: seeded, procedurally drawn images of one-word object classes.

The world stands in for ImageNet and its out-of-distribution variants in a tiny vision-language-model
study: every image shows one labelled object (a circle, square, triangle, star, cross, heart, diamond,
arrow, moon or house) in one of twelve named colours, drawn at 4x resolution with PIL and downsampled
with LANCZOS so that edges are anti-aliased.  Silhouettes are chosen to stay distinct at 84 px (the
diamond is an elongated rhombus, so a tilted square is never a diamond) and rotation is limited to
+-30 degrees in every style.

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
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

# The classes the embedded base is pretrained on.
CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross", "heart", "diamond", "arrow", "moon", "house",
)
# Classes only the study draws (`data.novel_classes` of them): the base never saw them or their
# names, as a released VLM knows only part of a fine-grained label set.
NOVEL_CLASSES: tuple[str, ...] = ("bolt", "drop", "tree", "hourglass")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 160, 50),
    "blue": (30, 70, 210),
    "yellow": (240, 220, 30),
    "orange": (245, 140, 20),
    "purple": (130, 50, 170),
    "pink": (245, 130, 180),
    "cyan": (40, 200, 220),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "brown": (130, 80, 40),
    "gray": (128, 128, 128),
}
STYLES: tuple[str, ...] = ("photo", "rendition", "adversarial")
SUBSTYLES: dict[str, tuple[str, ...]] = {
    "photo": ("blotches", "stripes"),
    "rendition": ("outline", "sketch", "cartoon", "pattern"),
    "adversarial": ("clutter", "occluded", "small", "distractor", "lowcontrast"),
}

_SS = 4  # supersampling factor for PIL drawing
_MAX_ROT = np.deg2rad(30.0)  # more rotation makes the world much slower to learn
_MARGIN = 1.5  # px kept free between an object and the image border
_SATURATED = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "cyan", "brown")


# ---------------------------------------------------------------- geometry


def _normalise(pts) -> np.ndarray:
    """Centre on the bounding box and scale to circumradius 1, so 'radius' means the same for all classes."""
    pts = np.asarray(pts, dtype=np.float64)
    pts = pts - (pts.min(0) + pts.max(0)) / 2
    return pts / np.linalg.norm(pts, axis=1).max()


def _ring(n: int, radii, start: float = np.pi / 2) -> np.ndarray:
    a = start + np.arange(n) * 2 * np.pi / n
    r = np.resize(np.asarray(radii, dtype=np.float64), n)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _moon() -> np.ndarray:
    # Crescent = unit disc minus a disc of radius R centred at (d, 0); opens to the right like a 'C'.
    d, big_r = 0.45, 0.85
    x = (1 + d * d - big_r * big_r) / (2 * d)
    y = np.sqrt(1 - x * x)
    t0, p0 = np.arctan2(y, x), np.arctan2(y, x - d)
    outer = np.linspace(t0, 2 * np.pi - t0, 40)
    inner = np.linspace(2 * np.pi - p0, p0, 28)[1:-1]
    return np.concatenate([
        np.stack([np.cos(outer), np.sin(outer)], 1),
        np.stack([d + big_r * np.cos(inner), big_r * np.sin(inner)], 1),
    ])


def _drop() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    return np.stack([np.sin(t) * np.sin(t / 2) ** 1.2, np.cos(t)], 1)  # a point at the top, round below


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    return np.stack([16 * np.sin(t) ** 3,
                     13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)], 1)


# Unit shapes in y-up coordinates.
_SHAPES: dict[str, np.ndarray] = {name: _normalise(pts) for name, pts in {
    "circle": _ring(48, 1.0),
    "square": _ring(4, 1.0, np.pi / 4),
    "triangle": _ring(3, 1.0),
    "star": _ring(10, (1.0, 0.42)),
    "cross": [(-0.3, 1), (0.3, 1), (0.3, 0.3), (1, 0.3), (1, -0.3), (0.3, -0.3), (0.3, -1),
              (-0.3, -1), (-0.3, -0.3), (-1, -0.3), (-1, 0.3), (-0.3, 0.3)],
    "heart": _heart(),
    "diamond": [(0, 1), (0.6, 0), (0, -1), (-0.6, 0)],
    "arrow": [(-1, 0.17), (0.15, 0.17), (0.15, 0.5), (1, 0), (0.15, -0.5), (0.15, -0.17), (-1, -0.17)],
    "moon": _moon(),
    "house": [(-0.7, -0.8), (0.7, -0.8), (0.7, 0.1), (0, 0.85), (-0.7, 0.1)],
    "bolt": [(-0.15, 1), (0.55, 1), (0.12, 0.15), (0.5, 0.15), (-0.35, -1), (-0.05, -0.05), (-0.45, -0.05)],
    "drop": _drop(),
    "tree": [(0, 1), (0.7, -0.35), (0.16, -0.35), (0.16, -1), (-0.16, -1), (-0.16, -0.35), (-0.7, -0.35)],
    "hourglass": [(-0.65, 1), (0.65, 1), (0.12, 0), (0.65, -1), (-0.65, -1), (-0.12, 0)],
}.items()}
# Each study class's usual background ("habitat"), muted and spread over the hue circle: with
# `data.context` the photos show it, as ImageNet's classes come with their typical scenes.
HABITATS: dict[str, np.ndarray] = {
    name: np.array(colorsys.hsv_to_rgb(i / 14, 0.5, 0.75 if i % 2 else 0.5)) * 255
    for i, name in enumerate(CLASSES + NOVEL_CLASSES)}


class _Obj(NamedTuple):
    cls: str
    pts: np.ndarray  # polygon in output pixel coordinates (pixel i spans [i, i+1))
    centre: np.ndarray
    radius: float  # px


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(c, c)


def _posed(cls: str, radius: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    pts = _SHAPES[cls] * (1.0, -1.0)  # y-up to image rows
    return pts @ np.array([[c, s], [-s, c]]) * radius


def _free_spot(rng, rel: np.ndarray, boxes: list, size: int, gap: float):
    """A uniformly chosen centre (on the integer grid, jittered) where the shape fits and no box is hit."""
    lo, hi = rel.min(0), rel.max(0)
    xs = np.arange(np.ceil(_MARGIN - lo[0] + 0.5), np.floor(size - _MARGIN - hi[0] - 0.5) + 1)
    ys = np.arange(np.ceil(_MARGIN - lo[1] + 0.5), np.floor(size - _MARGIN - hi[1] - 0.5) + 1)
    ok = np.ones((len(ys), len(xs)), dtype=bool)
    for b in boxes:
        xo = (xs + lo[0] < b[2] + gap) & (xs + hi[0] > b[0] - gap)
        yo = (ys + lo[1] < b[3] + gap) & (ys + hi[1] > b[1] - gap)
        ok &= ~(yo[:, None] & xo[None, :])
    free = np.flatnonzero(ok)
    if free.size == 0:
        return None
    k = free[rng.integers(free.size)]
    return np.array([xs[k % len(xs)], ys[k // len(xs)]]) + rng.uniform(-0.5, 0.5, 2)


def _place(rng, classes: list[str], radii: list[float], size: int) -> list[_Obj]:
    """Non-overlapping placement; retries from scratch and then shrinks all radii alike, so equal sizes stay equal."""
    angles = rng.uniform(-_MAX_ROT, _MAX_ROT, len(classes))
    scale = 1.0
    for attempt in range(40):
        if attempt and attempt % 8 == 0:
            scale *= 0.9
        objs, boxes = [], []
        for cls, r, a in zip(classes, radii, angles):
            rel = _posed(cls, r * scale * size, a)
            centre = _free_spot(rng, rel, boxes, size, gap=0.04 * size)
            if centre is None:
                break
            pts = rel + centre
            boxes.append(np.concatenate([pts.min(0), pts.max(0)]))
            objs.append(_Obj(cls, pts, centre, r * scale * size))
        if len(objs) == len(classes):
            return objs
    raise RuntimeError("cannot place objects")  # unreachable for the radii used here


# ---------------------------------------------------------------- rasterising


def _raster(size: int, shapes: list[np.ndarray], paint, pad: float) -> np.ndarray:
    """Coverage mask in [0, 1] of what `paint(draw, to_big)` draws at _SS x resolution, where `to_big`
    maps output-pixel points to canvas points.

    Only the shapes' bounding box (plus `pad` px for strokes and the filter's reach) is drawn and
    downsampled: LANCZOS is the dominant cost, and objects rarely fill the frame."""
    pts = np.concatenate(shapes)
    x0, y0 = np.maximum(np.floor(pts.min(0) - pad - 3).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(pts.max(0) + pad + 3).astype(int), size)
    out = np.zeros((size, size), dtype=np.float32)
    if x1 <= x0 or y1 <= y0:
        return out
    big = Image.new("L", ((x1 - x0) * _SS, (y1 - y0) * _SS), 0)
    paint(ImageDraw.Draw(big), lambda p: (p - (x0, y0)) * _SS)
    # reducing_gap=2: a 2x box reduction first, then LANCZOS over the last 2x; half the cost, same look.
    small = big.resize((x1 - x0, y1 - y0), Image.LANCZOS, reducing_gap=2.0)
    out[y0:y1, x0:x1] = np.asarray(small, dtype=np.float32) * (1 / 255)
    return out


def _xy(pts: np.ndarray) -> list[float]:
    return pts.ravel().tolist()


def _fill_mask(objs: list[_Obj], size: int) -> np.ndarray:
    def paint(d, to_big):
        for o in objs:
            d.polygon(_xy(to_big(o.pts)), fill=255)
    return _raster(size, [o.pts for o in objs], paint, 0)


def _stroke(d: ImageDraw.ImageDraw, pts: np.ndarray, width: int, fill: int, closed: bool) -> None:
    """Thick polyline with round joins only where it turns sharply.

    Pillow's joint="curve" runs a Python loop per vertex, which dominated the cost of dense paths."""
    path = np.concatenate([pts, pts[:1]]) if closed else pts
    d.line(_xy(path), fill=fill, width=width)
    seg = np.diff(path, axis=0)
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    turn = np.abs((np.diff(heading, prepend=heading[-1] if closed else heading[0]) + np.pi) % (2 * np.pi) - np.pi)
    r = width / 2
    for x, y in path[:-1][turn > 0.25]:
        d.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _outline_mask(objs: list[_Obj], size: int, widths: list[float]) -> np.ndarray:
    def paint(d, to_big):
        for o, w in zip(objs, widths):
            _stroke(d, to_big(o.pts), max(1, round(w * _SS)), 255, closed=True)
    return _raster(size, [o.pts for o in objs], paint, max(widths))


@lru_cache(maxsize=32)
def _upsampler(size: int, cells: int) -> np.ndarray:
    """(size, cells) matrix of normalised gaussian bumps: A @ N @ A.T turns a cells x cells grid of
    random values into smooth noise, much cheaper than an image resize."""
    centres = (np.arange(cells) + 0.5) / cells
    x = (np.arange(size) + 0.5) / size
    w = np.exp(-0.5 * ((x[:, None] - centres[None, :]) * cells / 0.8) ** 2)
    return (w / np.sqrt((w * w).sum(1, keepdims=True))).astype(np.float32)


def _smooth_noise(rng, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise with roughly unit spread; `cells` sets the blotch count across the image."""
    a = _upsampler(size, cells)
    return a @ rng.standard_normal((cells, cells), dtype=np.float32) @ a.T


def _ramp(rng, size: int) -> np.ndarray:
    """Linear 0..1 ramp across the image in a random direction."""
    x, y = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    p = (x - size / 2) * np.float32(np.cos(a)) + (y - size / 2) * np.float32(np.sin(a))
    return np.clip(0.5 + p * np.float32(1 / (size * 1.2)), 0, 1)


def _blend(img: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    return img * (1 - mask) + _vec(colour) * mask


def _vec(*values) -> np.ndarray:
    """A colour as a (3, 1, 1) float32 array.

    Images are channel-first (3, H, W) internally: numpy broadcasts over a trailing axis of 3 about
    ten times slower than over whole planes."""
    return np.asarray(values if len(values) > 1 else values[0], dtype=np.float32).reshape(3, 1, 1)


# ---------------------------------------------------------------- colours


def _dist(a, b) -> float:
    return float(np.linalg.norm(np.subtract(np.ravel(a), np.ravel(b), dtype=np.float64)))


def _pick_colour(rng, names=tuple(COLOURS), far_from=(), min_dist: float = 0.0) -> str:
    ok = [n for n in names if all(_dist(COLOURS[n], c) >= min_dist for c in far_from)]
    pool = ok or list(names)
    return pool[rng.integers(len(pool))]


def _scene_colour(rng, n: int | None = None) -> np.ndarray:
    """Random, mostly muted colour(s): fully random RGB backgrounds look neon, unlike photos."""
    shape = (1,) if n is None else (n, 1)
    grey = rng.uniform(30, 225, shape)
    return np.clip(grey + (rng.uniform(0, 255, shape[:-1] + (3,)) - grey) * rng.uniform(0.3, 1.0, shape), 0, 255)


def _bg_pair(rng, avoid: list, min_dist: float) -> tuple[np.ndarray, np.ndarray]:
    """Two gradient anchor colours, both far from every object colour, so the object never melts away."""
    for _ in range(40):
        c0 = _scene_colour(rng)
        c1 = np.clip(c0 + rng.normal(0, 35, 3), 0, 255)
        if all(min(_dist(c0, a), _dist(c1, a)) >= min_dist for a in avoid):
            return _vec(c0), _vec(c1)
    far = _vec(np.where(np.asarray(avoid[0]) > 127, 35.0, 220.0))
    return far, far


def _light_colour(rng) -> np.ndarray:
    """A plain light background: white, light grey or a light tint."""
    tint = rng.uniform(0, 255, 3)
    return _vec(np.clip(250 - rng.uniform(0, 30) + (tint - 250) * rng.uniform(0, 0.25), 0, 255))


def _jitter(rng, name: str, sd: float = 8.0) -> np.ndarray:
    return _vec(np.clip(np.asarray(COLOURS[name]) + rng.normal(0, sd, 3), 0, 255))


# ---------------------------------------------------------------- photo-like rendering


def _textured_bg(rng, size: int, c0, c1, kind: str, amp: float) -> np.ndarray:
    """Gradient between c0 and c1, plus `blotches`, soft `stripes`, both (`busy`) or nothing (`plain`)."""
    bg = c0 + (c1 - c0) * _ramp(rng, size)
    if kind in ("blotches", "busy"):
        cells = int(rng.integers(3, 7)) * (2 if kind == "busy" else 1)
        tint = _vec(rng.normal(0, 0.6, 3))
        bg += amp * (_smooth_noise(rng, size, cells) + _smooth_noise(rng, size, cells) * tint)
    if kind in ("stripes", "busy"):
        x, y = _grid(size)
        a = rng.uniform(0, np.pi)
        period = rng.uniform(0.12, 0.3) * size
        phase = (x * np.float32(np.cos(a)) + y * np.float32(np.sin(a))) * np.float32(2 * np.pi / period)
        bg += amp * np.sin(phase + np.float32(rng.uniform(0, 2 * np.pi))) * _vec(
            0.7 + 0.3 * rng.normal(0, 1, 3))
    return bg


def _shaded(rng, size: int, obj: _Obj, rgb, strength: float) -> np.ndarray:
    """Object fill lit from a random side: darker away from the light, a little lighter towards it."""
    x, y = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    dx, dy = np.float32(np.cos(a) / obj.radius), np.float32(np.sin(a) / obj.radius)
    t = np.clip((x - np.float32(obj.centre[0])) * dx + (y - np.float32(obj.centre[1])) * dy, -1, 1)
    t = t * np.float32(strength) + 5 / 255 * _smooth_noise(rng, size, 5)
    return rgb * (1 + t) + 40 * t


def _photo_objects(rng, size: int, img: np.ndarray, objs: list[_Obj], names: list[str],
                   strength: float, jitter: float = 8.0) -> np.ndarray:
    for obj, name in zip(objs, names):
        m = _fill_mask([obj], size)
        img = img * (1 - m) + _shaded(rng, size, obj, _jitter(rng, name, jitter), strength) * m
    return img


def _object_colours(rng, objs, meta) -> list[str]:
    return [meta["colour"]] + [_pick_colour(rng) for _ in objs[1:]]


def _backdrop_pair(rng, habitat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient anchors near a class's habitat colour."""
    c0 = np.clip(habitat + rng.normal(0, 10, 3), 0, 255)
    return _vec(c0), _vec(np.clip(c0 + rng.normal(0, 25, 3), 0, 255))


def _background(rng, names: list[str], min_dist: float, backdrop) -> tuple[np.ndarray, np.ndarray]:
    """A habitat's colours when `backdrop` is one, else colours far from every object's."""
    return _bg_pair(rng, [COLOURS[n] for n in names], min_dist) if backdrop is None else _backdrop_pair(rng, backdrop)


def _main_colour(rng, backdrop) -> str:
    return _pick_colour(rng) if backdrop is None else _pick_colour(rng, far_from=[backdrop], min_dist=110)


def _photo_scene(rng, size, objs, meta, bg_kind: str, amp: float, backdrop=None) -> np.ndarray:
    names = _object_colours(rng, objs, meta)
    c0, c1 = _background(rng, names, 110.0, backdrop)
    img = _textured_bg(rng, size, c0, c1, bg_kind, amp)
    return _photo_objects(rng, size, img, objs, names, rng.uniform(0.15, 0.3))


def _render_photo(rng, size, objs, substyle, meta, backdrop=None) -> np.ndarray:
    meta["colour"] = _main_colour(rng, backdrop)
    return _photo_scene(rng, size, objs, meta, substyle, rng.uniform(12, 28), backdrop)


def _clutter(rng, size: int, drawn: str, avoid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Premultiplied colour and alpha of junk behind the object (lines, irregular blobs, partial shapes of
    other classes) and the alpha of thin lines in front of it.

    Blobs are irregular on purpose: a round blob would read as a 'circle'.  The junk spans the whole
    frame, so it is brought down with a box filter (exact area coverage): LANCZOS on its three
    full-frame canvases would cost more than the rest of the image."""
    k = _SS
    big = (size * k, size * k)
    # Opaque colours on a black canvas are premultiplied by alpha, so the reduced canvas blends correctly.
    colour, alpha, front = Image.new("RGB", big), Image.new("L", big), Image.new("L", big)
    dc, da, df = ImageDraw.Draw(colour), ImageDraw.Draw(alpha), ImageDraw.Draw(front)

    n = int(rng.integers(6, 11))
    fills = _scene_colour(rng, n)
    # One redraw of colours close to the object's keeps the object's outline findable.
    close = np.linalg.norm(fills - np.asarray(avoid), axis=1) < 70
    fills[close] = _scene_colour(rng, n)[close]
    others = [c for c in CLASSES if c != drawn]
    for kind, fill in zip(rng.integers(3, size=n), fills.astype(int).tolist()):
        fill = tuple(fill)
        if kind == 0:
            p = _xy(rng.uniform(-0.1, 1.1, (2, 2)) * size * k)
            w = round(rng.uniform(1.5, 4) * k)
            dc.line(p, fill=fill, width=w)
            da.line(p, fill=255, width=w)
            continue
        if kind == 1:
            pts = _ring(7, rng.uniform(0.04, 0.11) * size * rng.uniform(0.6, 1.0, 7),
                        rng.uniform(0, 2 * np.pi)) + rng.uniform(0, size, 2)
        else:
            # Centred just outside an edge so that only part of the shape shows.
            r = rng.uniform(0.15, 0.28) * size
            along, out = rng.uniform(0, size), rng.uniform(0.2, 0.6) * r
            centre = [(-out, along), (size + out, along), (along, -out), (along, size + out)][rng.integers(4)]
            pts = _posed(others[rng.integers(len(others))], r, rng.uniform(-_MAX_ROT, _MAX_ROT)) + centre
        poly = _xy(pts * k)
        dc.polygon(poly, fill=fill)
        da.polygon(poly, fill=255)
    for _ in range(int(rng.integers(1, 3))):
        df.line(_xy(rng.uniform(-0.1, 1.1, (2, 2)) * size * k), fill=255,
                width=round(rng.uniform(1.0, 1.8) * k))

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
    img = _textured_bg(rng, size, c0, c1, "busy", rng.uniform(25, 40))
    colour, alpha, front = _clutter(rng, size, meta["drawn"], COLOURS[meta["colour"]])
    img = img * (1 - alpha) + colour
    img = _photo_objects(rng, size, img, objs, names, rng.uniform(0.15, 0.3))
    return _blend(img, front, _scene_colour(rng))


def _lowcontrast(rng, size, objs, meta, bg_kind) -> np.ndarray:
    """Background a small step away from the object colour: the silhouette is there, but faint."""
    rgb = np.asarray(COLOURS[meta["colour"]], dtype=np.float64)
    for _ in range(20):
        step = rng.normal(0, 1, 3)
        bg = np.clip(rgb + step / np.linalg.norm(step) * rng.uniform(30, 45), 0, 255)
        if _dist(bg, rgb) >= 28:
            break
    else:
        bg = np.clip(rgb + np.where(rgb > 127, -36.0, 36.0), 0, 255)
    img = _textured_bg(rng, size, _vec(bg), _vec(bg), bg_kind, rng.uniform(4, 7))
    return _photo_objects(rng, size, img, objs, _object_colours(rng, objs, meta), rng.uniform(0.04, 0.08),
                          jitter=3.0)


# ---------------------------------------------------------------- renditions


def _densify(pts: np.ndarray, step: float) -> np.ndarray:
    edges = np.roll(pts, -1, 0) - pts
    n = np.maximum(1, np.ceil(np.linalg.norm(edges, axis=1) / step).astype(int))
    frac = np.concatenate([np.arange(m) / m for m in n])
    return np.repeat(pts, n, 0) + np.repeat(edges, n, 0) * frac[:, None]


def _strokes(rng, obj: _Obj, n: int) -> list[np.ndarray]:
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
    x, y = _grid(size)
    p = (x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))) * np.float32(1 / period)
    p += np.float32(rng.uniform(0, 1))
    return np.clip(0.5 + (width_frac / 2 - np.abs(p - np.floor(p) - 0.5)) * np.float32(period), 0, 1)


def _dot_mask(rng, size: int, period: float, radius: float) -> np.ndarray:
    x, y = _grid(size)
    c, s = np.float32(np.cos(rng.uniform(0, np.pi / 2))), np.float32(np.sin(rng.uniform(0, np.pi / 2)))
    off_u, off_v = np.float32(rng.uniform(0, period)), np.float32(rng.uniform(0, period))
    u = (x * c + y * s + off_u) * np.float32(1 / period)
    v = (y * c - x * s + off_v) * np.float32(1 / period)
    du, dv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
    return np.clip(radius + 0.5 - np.sqrt(du * du + dv * dv) * np.float32(period), 0, 1)


def _flat(size: int, rgb) -> np.ndarray:
    return np.broadcast_to(_vec(rgb), (3, size, size)).copy()


def _outline(rng, size, objs, meta) -> np.ndarray:
    bg = _light_colour(rng)
    names = [_pick_colour(rng, far_from=[bg], min_dist=120) for _ in objs]
    meta["colour"] = names[0]
    img = _flat(size, bg)
    for o, name in zip(objs, names):
        img = _blend(img, _outline_mask([o], size, [o.radius * rng.uniform(0.12, 0.18)]), COLOURS[name])
    return img


def _sketch(rng, size, objs, meta) -> np.ndarray:
    meta["colour"] = ("black", "gray")[rng.integers(2)]
    paper = _vec(248, 244, 234) - np.float32(rng.uniform(-5, 10))
    img = _flat(size, paper) + 3 * _smooth_noise(rng, size, 4)
    lines = [(path, round(255 * rng.uniform(0.6, 1.0)), round(rng.uniform(0.9, 1.5) * _SS))
             for o in objs for path in _strokes(rng, o, int(rng.integers(2, 4)))]

    def paint(d, to_big):
        for path, ink, width in lines:
            _stroke(d, to_big(path), width, ink, closed=False)
    ink = _raster(size, [p for p, _, _ in lines], paint, 2)
    if rng.random() < 0.5:  # pencil hatching inside the shape
        hatch = _stripe_mask(rng, size, rng.uniform(3.5, 5.5), 0.25, rng.uniform(0.5, 1.1) * np.pi / 2)
        ink = np.maximum(ink, hatch * _fill_mask(objs, size) * np.float32(rng.uniform(0.25, 0.45)))
    return _blend(img, ink, _jitter(rng, meta["colour"], 6))


def _cartoon(rng, size, objs, meta) -> np.ndarray:
    bg = _vec(np.clip(rng.uniform(0, 255, 3) * 0.4 + 255 * 0.6 - rng.uniform(0, 25), 0, 255))
    names = [_pick_colour(rng, _SATURATED, [bg], 90) for _ in objs]
    meta["colour"] = names[0]
    img = _flat(size, bg)
    for o, name in zip(objs, names):
        img = _blend(img, _fill_mask([o], size), COLOURS[name])
    widths = [o.radius * rng.uniform(0.1, 0.14) for o in objs]
    return _blend(img, _outline_mask(objs, size, widths), COLOURS["black"])


def _pattern(rng, size, objs, meta) -> np.ndarray:
    meta["colour"] = _pick_colour(rng)
    meta["colour2"] = _pick_colour(rng, far_from=[COLOURS[meta["colour"]]], min_dist=130)
    meta["pattern"] = ("stripes", "dots")[rng.integers(2)]
    c0, c1 = _bg_pair(rng, [COLOURS[meta["colour"]], COLOURS[meta["colour2"]]], 90)
    img = _textured_bg(rng, size, c0, c1, "plain", 0)
    # Scaled to the object so that even a small one shows several periods.
    period = max(4.5, objs[0].radius * rng.uniform(0.25, 0.38))
    if meta["pattern"] == "stripes":
        second = _stripe_mask(rng, size, period, 0.5, rng.uniform(0, np.pi))
    else:
        second = _dot_mask(rng, size, period, period * rng.uniform(0.26, 0.34))
    fill = _fill_mask(objs, size)
    return _blend(_blend(img, fill, COLOURS[meta["colour"]]), fill * second, COLOURS[meta["colour2"]])


def _render_rendition(rng, size, objs, substyle, meta) -> np.ndarray:
    return {"outline": _outline, "sketch": _sketch, "cartoon": _cartoon, "pattern": _pattern}[substyle](
        rng, size, objs, meta)


# ---------------------------------------------------------------- occluders


def _occluder(rng, size: int, obj: _Obj, mask: np.ndarray, coverage: float) -> tuple[np.ndarray, float]:
    """Occluder mask hiding `coverage` of the object's area: a wall edge, a big blob or a pole across it.

    The pole is the most common because it leaves both ends of the object in view; the blob is large
    and wobbly so that it never reads as a 'circle'.  The free parameter (edge offset or pole
    half-width) is found by bisection on the object's crop, because the hidden fraction depends on the
    silhouette."""
    x, y = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    u0, u1 = np.float32(np.cos(a)), np.float32(np.sin(a))
    kind = rng.choice(3, p=(0.25, 0.25, 0.5))
    blob_r = np.float32(rng.uniform(2.0, 3.5) * obj.radius)
    lobes = rng.uniform(0, 2 * np.pi, 2).astype(np.float32)
    pole_c = np.float32(rng.uniform(-0.3, 0.3) * obj.radius)
    cx, cy = np.float32(obj.centre[0]), np.float32(obj.centre[1])

    def occ(px, py, t):
        p = (px - cx) * u0 + (py - cy) * u1
        if kind == 0:
            return np.clip(0.5 + p - t, 0, 1)
        if kind == 1:
            bx, by = p - t - blob_r, (py - cy) * u0 - (px - cx) * u1
            phi = np.arctan2(by, bx)
            edge = blob_r * (1 + 0.08 * np.sin(3 * phi + lobes[0]) + 0.05 * np.sin(5 * phi + lobes[1]))
            return np.clip(0.5 + edge - np.sqrt(bx * bx + by * by), 0, 1)
        return np.clip(0.5 + t - np.abs(p - pole_c), 0, 1)

    rows, cols = np.nonzero(mask > 0.01)
    crop = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    m, px, py = mask[crop], x[crop], y[crop]
    total = m.sum()
    lo, hi = (-1.8 * obj.radius, 1.8 * obj.radius) if kind < 2 else (0.0, 2.5 * obj.radius)
    for _ in range(12):  # 3.6 r / 4096: far below a pixel
        mid = np.float32((lo + hi) / 2)
        hidden = (occ(px, py, mid) * m).sum() / total
        # Edge and blob hide less as t grows; the pole hides more.
        if (hidden > coverage) == (kind < 2):
            lo = mid
        else:
            hi = mid
    t = np.float32((lo + hi) / 2)
    return occ(x, y, t), float((occ(px, py, t) * m).sum() / total)


def _apply_occluder(rng, size, img, obj, meta, coverage, photo: bool) -> np.ndarray:
    occ, hidden = _occluder(rng, size, obj, _fill_mask([obj], size), coverage)
    meta["occlusion"] = round(hidden, 3)
    name = _pick_colour(rng, far_from=[COLOURS[meta["colour"]]], min_dist=110)
    if photo:
        look = _textured_bg(rng, size, _jitter(rng, name, 25), _jitter(rng, name, 25), "blotches", 12)
    else:
        look = _flat(size, COLOURS[name])
    return img * (1 - occ) + look * occ


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


def _layout(rng, drawn: str, substyle: str, ambiguity: str | None,
            classes: tuple[str, ...]) -> tuple[list[str], list[float], str | None]:
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


def _check_dials(style: str, substyle: str | None, label: str | None, classes: tuple[str, ...], size: int,
                 shares: dict[str, float]) -> None:
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


def draw_sample(rng: np.random.Generator, style: str, size: int = 84, label: str | None = None,
                substyle: str | None = None, label_noise: float = 0.0, ambiguous: float = 0.0,
                small: float = 0.0, context: float = 0.0, classes: tuple[str, ...] = CLASSES,
                ) -> tuple[Image.Image, dict]:
    """Draw one image of the world.

    `label` picks the class to draw (random among `classes` when None); `substyle` is random within
    `style` when None. `small` is the share of photos drawn with a small or low-contrast object,
    `context` the share whose background is a class's habitat (see the module docstring).
    Returns an RGB image of size x size and metadata with keys label (the answer, possibly noisy), drawn
    (the class actually drawn), box (its polygon's [x1, y1, x2, y2] in pixels), colour (name), style, substyle,
    noise (None, "mislabeled" or "ambiguous"), backdrop (the class whose habitat is the background, or
    None) and kinds (the hard-sample kinds that apply); some substyles add keys: colour2 and pattern
    (pattern), distractor (the smaller object's class), other (the second object of an ambiguous pair),
    ambiguity ("occluder" or "pair") and occlusion (hidden fraction of the labelled object).
    """
    _check_dials(style, substyle, label, classes, size,
                 {"label_noise": label_noise, "ambiguous": ambiguous, "small": small, "context": context})
    drawn = label if label is not None else classes[rng.integers(len(classes))]
    substyle = substyle if substyle is not None else SUBSTYLES[style][rng.integers(len(SUBSTYLES[style]))]
    u = rng.random()
    noise = "mislabeled" if u < label_noise else "ambiguous" if u < label_noise + ambiguous else None
    ambiguity = ("occluder", "pair")[rng.integers(2)] if noise == "ambiguous" else None
    if style == "photo" and small > 0 and rng.random() < small:
        substyle = SMALL_KINDS[rng.integers(len(SMALL_KINDS))]
    backdrop = _backdrop_class(rng, style, substyle, drawn, context, classes)
    meta = {"label": drawn, "drawn": drawn, "colour": None, "style": style, "substyle": substyle, "noise": noise,
            "backdrop": backdrop}
    if ambiguity:
        meta["ambiguity"] = ambiguity

    layout, radii, other = _layout(rng, drawn, substyle, ambiguity, classes)
    if other is not None:
        meta["other" if ambiguity == "pair" else "distractor"] = other
    objs = _place(rng, layout, radii, size)
    meta["box"] = [round(float(v), 1) for v in (*objs[0].pts.min(0), *objs[0].pts.max(0))]
    habitat = None if backdrop is None else HABITATS[backdrop]
    if style == "rendition":
        img = _render_rendition(rng, size, objs, substyle, meta)
    elif substyle in SUBSTYLES["photo"]:
        img = _render_photo(rng, size, objs, substyle, meta, habitat)
    else:
        img = _render_adversarial(rng, size, objs, substyle, meta, habitat)
    photo = style != "rendition"

    coverage = rng.uniform(0.6, 0.8) if ambiguity == "occluder" else (
        rng.uniform(0.25, 0.45) if substyle == "occluded" else None)
    if coverage is not None:
        img = _apply_occluder(rng, size, img, objs[0], meta, coverage, photo)
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
        text = (f"{_a(d)} with {c} and {meta['colour2']} stripes" if meta["pattern"] == "stripes"
                else f"{_a(f'{c} {d}')} with {meta['colour2']} dots")
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


def draw_pool_item(seed: int, pool: str, index: int, style: str, size: int = 84, label_noise: float = 0.0,
                   ambiguous: float = 0.0, small: float = 0.0, context: float = 0.0,
                   classes: tuple[str, ...] = CLASSES) -> tuple[Image.Image, dict]:
    """The index-th item of a pool: label classes[index % len(classes)], so every run of len(classes)
    indices is balanced."""
    return draw_sample(sample_rng(seed, pool, index), style, size=size, label=classes[index % len(classes)],
                       label_noise=label_noise, ambiguous=ambiguous, small=small, context=context, classes=classes)
