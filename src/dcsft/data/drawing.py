"""Drawing primitives shared by the shape world (dcsft.data.world) and the scene world (dcsft.data.scenes).

What is here: the named COLOURS and colour picking, the silhouettes of every class of both worlds
(posed and placed without overlap as PlacedObject), rasterising polygons and strokes into
anti-aliased coverage masks, textured backgrounds, shaded object fills and occluders.  Images are
channel-first float32 arrays (3, H, W) with values in 0..255; masks are (H, W) coverage in [0, 1].

Shapes are drawn at SUPERSAMPLING x resolution with PIL and downsampled with LANCZOS so that edges
are anti-aliased.  Silhouettes are chosen to stay distinct at 84 px (the diamond is an elongated
rhombus, so a tilted square is never a diamond) and rotation is limited to +-MAX_ROTATION (30 degrees).

Which module to change: a primitive here changes the images of both worlds, including those the
embedded base was pretrained on, so change it here only when both should change.  A look that
belongs to one world's style (sketch strokes, pattern fills, clutter, the photo and rendition
recipes) lives in dcsft.data.world; the scenes' layout, renderers and expressions in
dcsft.data.scenes.  Every function draws its randomness from the generator it is given, in a fixed
order, which is what makes each image regenerable from its seed: reordering the calls changes
every image.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

# The twelve named colours objects are drawn in; captions and expressions use the names.
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
# The colours that read as a colour on any light or pastel background (no white, black or gray).
SATURATED_COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "cyan", "brown")

SUPERSAMPLING = 4  # PIL draws at this multiple of the output resolution
MAX_ROTATION = np.deg2rad(30.0)  # more rotation makes the world much slower to learn
_MARGIN = 1.5  # px kept free between an object and the image border


# ---------------------------------------------------------------- geometry


def _normalise(pts) -> np.ndarray:
    """Centre on the bounding box and scale to circumradius 1, so 'radius' means the same for all classes."""
    pts = np.asarray(pts, dtype=np.float64)
    pts = pts - (pts.min(0) + pts.max(0)) / 2
    return pts / np.linalg.norm(pts, axis=1).max()


def ring_polygon(n: int, radii, start: float = np.pi / 2) -> np.ndarray:
    """`n` points evenly spaced in angle from `start`, at `radii` (cycled), around the origin."""
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
    return np.concatenate(
        [
            np.stack([np.cos(outer), np.sin(outer)], 1),
            np.stack([d + big_r * np.cos(inner), big_r * np.sin(inner)], 1),
        ]
    )


def _drop() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    return np.stack([np.sin(t) * np.sin(t / 2) ** 1.2, np.cos(t)], 1)  # a point at the top, round below


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    return np.stack(
        [16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)], 1
    )


# Unit shapes in y-up coordinates.
_SHAPES: dict[str, np.ndarray] = {
    name: _normalise(pts)
    for name, pts in {
        "circle": ring_polygon(48, 1.0),
        "square": ring_polygon(4, 1.0, np.pi / 4),
        "triangle": ring_polygon(3, 1.0),
        "star": ring_polygon(10, (1.0, 0.42)),
        "cross": [
            (-0.3, 1),
            (0.3, 1),
            (0.3, 0.3),
            (1, 0.3),
            (1, -0.3),
            (0.3, -0.3),
            (0.3, -1),
            (-0.3, -1),
            (-0.3, -0.3),
            (-1, -0.3),
            (-1, 0.3),
            (-0.3, 0.3),
        ],
        "heart": _heart(),
        "diamond": [(0, 1), (0.6, 0), (0, -1), (-0.6, 0)],
        "arrow": [(-1, 0.17), (0.15, 0.17), (0.15, 0.5), (1, 0), (0.15, -0.5), (0.15, -0.17), (-1, -0.17)],
        "moon": _moon(),
        "house": [(-0.7, -0.8), (0.7, -0.8), (0.7, 0.1), (0, 0.85), (-0.7, 0.1)],
        "bolt": [
            (-0.15, 1),
            (0.55, 1),
            (0.12, 0.15),
            (0.5, 0.15),
            (-0.35, -1),
            (-0.05, -0.05),
            (-0.45, -0.05),
        ],
        "drop": _drop(),
        "tree": [(0, 1), (0.7, -0.35), (0.16, -0.35), (0.16, -1), (-0.16, -1), (-0.16, -0.35), (-0.7, -0.35)],
        "hourglass": [(-0.65, 1), (0.65, 1), (0.12, 0), (0.65, -1), (-0.65, -1), (-0.12, 0)],
    }.items()
}


class PlacedObject(NamedTuple):
    """A shape posed and placed on the canvas."""

    cls: str
    pts: np.ndarray  # polygon in output pixel coordinates (pixel i spans [i, i+1))
    centre: np.ndarray
    radius: float  # px


@lru_cache(maxsize=8)
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every pixel centre of a size x size image."""
    c = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(c, c)


def posed_shape(cls: str, radius: float, angle: float) -> np.ndarray:
    """The class's silhouette at circumradius `radius` px, rotated by `angle`, centred on the origin."""
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


def place_objects(rng, classes: list[str], radii: list[float], size: int) -> list[PlacedObject]:
    """Non-overlapping placement of shapes with radii given as fractions of the side; retries from
    scratch and then shrinks all radii alike, so equal sizes stay equal."""
    angles = rng.uniform(-MAX_ROTATION, MAX_ROTATION, len(classes))
    scale = 1.0
    for attempt in range(40):
        if attempt and attempt % 8 == 0:
            scale *= 0.9
        objs, boxes = [], []
        for cls, r, a in zip(classes, radii, angles):
            rel = posed_shape(cls, r * scale * size, a)
            centre = _free_spot(rng, rel, boxes, size, gap=0.04 * size)
            if centre is None:
                break
            pts = rel + centre
            boxes.append(np.concatenate([pts.min(0), pts.max(0)]))
            objs.append(PlacedObject(cls, pts, centre, r * scale * size))
        if len(objs) == len(classes):
            return objs
    raise RuntimeError("cannot place objects")  # unreachable for the radii used here


# ---------------------------------------------------------------- rasterising


def rasterise(size: int, shapes: list[np.ndarray], paint, pad: float) -> np.ndarray:
    """Coverage mask in [0, 1] of what `paint(draw, to_big)` draws at SUPERSAMPLING x resolution,
    where `to_big` maps output-pixel points to canvas points.

    Only the shapes' bounding box (plus `pad` px for strokes and the filter's reach) is drawn and
    downsampled: LANCZOS is the dominant cost, and objects rarely fill the frame."""
    pts = np.concatenate(shapes)
    x0, y0 = np.maximum(np.floor(pts.min(0) - pad - 3).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(pts.max(0) + pad + 3).astype(int), size)
    out = np.zeros((size, size), dtype=np.float32)
    if x1 <= x0 or y1 <= y0:
        return out
    big = Image.new("L", ((x1 - x0) * SUPERSAMPLING, (y1 - y0) * SUPERSAMPLING), 0)
    paint(ImageDraw.Draw(big), lambda p: (p - (x0, y0)) * SUPERSAMPLING)
    # reducing_gap=2: a 2x box reduction first, then LANCZOS over the last 2x; half the cost, same look.
    small = big.resize((x1 - x0, y1 - y0), Image.LANCZOS, reducing_gap=2.0)
    out[y0:y1, x0:x1] = np.asarray(small, dtype=np.float32) * (1 / 255)
    return out


def pil_coords(pts: np.ndarray) -> list[float]:
    """Points as the flat coordinate list PIL's drawing calls take."""
    return pts.ravel().tolist()


def fill_mask(objs: list[PlacedObject], size: int) -> np.ndarray:
    """Coverage of the objects' filled silhouettes."""

    def paint(d, to_big):
        for o in objs:
            d.polygon(pil_coords(to_big(o.pts)), fill=255)

    return rasterise(size, [o.pts for o in objs], paint, 0)


def draw_stroke(d: ImageDraw.ImageDraw, pts: np.ndarray, width: int, fill: int, closed: bool) -> None:
    """Thick polyline with round joins only where it turns sharply.

    Pillow's joint="curve" runs a Python loop per vertex, which dominated the cost of dense paths."""
    path = np.concatenate([pts, pts[:1]]) if closed else pts
    d.line(pil_coords(path), fill=fill, width=width)
    seg = np.diff(path, axis=0)
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    before = heading[-1] if closed else heading[0]
    turn = np.abs((np.diff(heading, prepend=before) + np.pi) % (2 * np.pi) - np.pi)
    r = width / 2
    for x, y in path[:-1][turn > 0.25]:
        d.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def outline_mask(objs: list[PlacedObject], size: int, widths: list[float]) -> np.ndarray:
    """Coverage of the objects' outlines, each stroked `widths[i]` px wide."""

    def paint(d, to_big):
        for o, w in zip(objs, widths):
            draw_stroke(d, to_big(o.pts), max(1, round(w * SUPERSAMPLING)), 255, closed=True)

    return rasterise(size, [o.pts for o in objs], paint, max(widths))


@lru_cache(maxsize=32)
def _upsampler(size: int, cells: int) -> np.ndarray:
    """(size, cells) matrix of normalised gaussian bumps: A @ N @ A.T turns a cells x cells grid of
    random values into smooth noise, much cheaper than an image resize."""
    centres = (np.arange(cells) + 0.5) / cells
    x = (np.arange(size) + 0.5) / size
    w = np.exp(-0.5 * ((x[:, None] - centres[None, :]) * cells / 0.8) ** 2)
    return (w / np.sqrt((w * w).sum(1, keepdims=True))).astype(np.float32)


def smooth_noise(rng, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise with roughly unit spread; `cells` sets the blotch count across the image."""
    a = _upsampler(size, cells)
    return a @ rng.standard_normal((cells, cells), dtype=np.float32) @ a.T


def _ramp(rng, size: int) -> np.ndarray:
    """Linear 0..1 ramp across the image in a random direction."""
    x, y = pixel_grid(size)
    a = rng.uniform(0, 2 * np.pi)
    p = (x - size / 2) * np.float32(np.cos(a)) + (y - size / 2) * np.float32(np.sin(a))
    return np.clip(0.5 + p * np.float32(1 / (size * 1.2)), 0, 1)


def blend(img: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """`img` with `colour` painted over it where `mask` covers it."""
    return img * (1 - mask) + colour_vector(colour) * mask


def colour_vector(*values) -> np.ndarray:
    """A colour as a (3, 1, 1) float32 array.

    Images are channel-first (3, H, W) internally: numpy broadcasts over a trailing axis of 3 about
    ten times slower than over whole planes."""
    return np.asarray(values if len(values) > 1 else values[0], dtype=np.float32).reshape(3, 1, 1)


def flat_image(size: int, rgb) -> np.ndarray:
    """A size x size image of one colour."""
    return np.broadcast_to(colour_vector(rgb), (3, size, size)).copy()


# ---------------------------------------------------------------- colours


def colour_distance(a, b) -> float:
    """Euclidean distance between two RGB colours."""
    return float(np.linalg.norm(np.subtract(np.ravel(a), np.ravel(b), dtype=np.float64)))


def pick_colour(rng, names=tuple(COLOURS), far_from=(), min_dist: float = 0.0) -> str:
    """A colour name among `names` at least `min_dist` from every colour of `far_from` (any of
    `names` when none is)."""
    ok = [n for n in names if all(colour_distance(COLOURS[n], c) >= min_dist for c in far_from)]
    pool = ok or list(names)
    return pool[rng.integers(len(pool))]


def muted_colour(rng, n: int | None = None) -> np.ndarray:
    """Random, mostly muted colour(s): fully random RGB backgrounds look neon, unlike photos."""
    shape = (1,) if n is None else (n, 1)
    grey = rng.uniform(30, 225, shape)
    vivid = rng.uniform(0, 255, shape[:-1] + (3,))
    return np.clip(grey + (vivid - grey) * rng.uniform(0.3, 1.0, shape), 0, 255)


def background_pair(rng, avoid: list, min_dist: float) -> tuple[np.ndarray, np.ndarray]:
    """Two gradient anchor colours, both far from every object colour, so the object never melts away."""
    for _ in range(40):
        c0 = muted_colour(rng)
        c1 = np.clip(c0 + rng.normal(0, 35, 3), 0, 255)
        if all(min(colour_distance(c0, a), colour_distance(c1, a)) >= min_dist for a in avoid):
            return colour_vector(c0), colour_vector(c1)
    far = colour_vector(np.where(np.asarray(avoid[0]) > 127, 35.0, 220.0))
    return far, far


def light_colour(rng) -> np.ndarray:
    """A plain light background: white, light grey or a light tint."""
    tint = rng.uniform(0, 255, 3)
    return colour_vector(np.clip(250 - rng.uniform(0, 30) + (tint - 250) * rng.uniform(0, 0.25), 0, 255))


def jittered_colour(rng, name: str, sd: float = 8.0) -> np.ndarray:
    """The named colour with gaussian noise of `sd` per channel, as a colour_vector."""
    return colour_vector(np.clip(np.asarray(COLOURS[name]) + rng.normal(0, sd, 3), 0, 255))


# ---------------------------------------------------------------- backgrounds and shading


def textured_background(rng, size: int, c0, c1, kind: str, amp: float) -> np.ndarray:
    """Gradient between c0 and c1, plus `blotches`, soft `stripes`, both (`busy`) or nothing (`plain`)."""
    bg = c0 + (c1 - c0) * _ramp(rng, size)
    if kind in ("blotches", "busy"):
        cells = int(rng.integers(3, 7)) * (2 if kind == "busy" else 1)
        tint = colour_vector(rng.normal(0, 0.6, 3))
        bg += amp * (smooth_noise(rng, size, cells) + smooth_noise(rng, size, cells) * tint)
    if kind in ("stripes", "busy"):
        x, y = pixel_grid(size)
        a = rng.uniform(0, np.pi)
        period = rng.uniform(0.12, 0.3) * size
        phase = (x * np.float32(np.cos(a)) + y * np.float32(np.sin(a))) * np.float32(2 * np.pi / period)
        bg += (
            amp
            * np.sin(phase + np.float32(rng.uniform(0, 2 * np.pi)))
            * colour_vector(0.7 + 0.3 * rng.normal(0, 1, 3))
        )
    return bg


def _shaded(rng, size: int, obj: PlacedObject, rgb, strength: float) -> np.ndarray:
    """Object fill lit from a random side: darker away from the light, a little lighter towards it."""
    x, y = pixel_grid(size)
    a = rng.uniform(0, 2 * np.pi)
    dx, dy = np.float32(np.cos(a) / obj.radius), np.float32(np.sin(a) / obj.radius)
    t = np.clip((x - np.float32(obj.centre[0])) * dx + (y - np.float32(obj.centre[1])) * dy, -1, 1)
    t = t * np.float32(strength) + 5 / 255 * smooth_noise(rng, size, 5)
    return rgb * (1 + t) + 40 * t


def paint_shaded_objects(
    rng,
    size: int,
    img: np.ndarray,
    objs: list[PlacedObject],
    names: list[str],
    strength: float,
    jitter: float = 8.0,
) -> np.ndarray:
    """`img` with each object filled in its named colour (jittered by `jitter`), lit with shading
    of `strength`, as objects in a photo."""
    for obj, name in zip(objs, names):
        m = fill_mask([obj], size)
        img = img * (1 - m) + _shaded(rng, size, obj, jittered_colour(rng, name, jitter), strength) * m
    return img


# ---------------------------------------------------------------- occluders


def _occluder_mask(
    rng, size: int, obj: PlacedObject, mask: np.ndarray, coverage: float
) -> tuple[np.ndarray, float]:
    """Occluder mask hiding `coverage` of the object's area: a wall edge, a big blob or a pole across it.

    The pole is the most common because it leaves both ends of the object in view; the blob is large
    and wobbly so that it never reads as a 'circle'.  The free parameter (edge offset or pole
    half-width) is found by bisection on the object's crop, because the hidden fraction depends on the
    silhouette."""
    x, y = pixel_grid(size)
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


def apply_occluder(
    rng, size: int, img: np.ndarray, obj: PlacedObject, colour: str, coverage: float, photo: bool
) -> tuple[np.ndarray, float]:
    """`img` with an occluder over `coverage` of `obj`, in a colour far from the object's (`colour`,
    a name): textured when `photo`, flat otherwise.  Also returns the fraction actually hidden,
    rounded to 3 places."""
    occ, hidden = _occluder_mask(rng, size, obj, fill_mask([obj], size), coverage)
    name = pick_colour(rng, far_from=[COLOURS[colour]], min_dist=110)
    if photo:
        c0 = jittered_colour(rng, name, 25)
        c1 = jittered_colour(rng, name, 25)
        look = textured_background(rng, size, c0, c1, "blotches", 12)
    else:
        look = flat_image(size, COLOURS[name])
    return img * (1 - occ) + look * occ, round(hidden, 3)
