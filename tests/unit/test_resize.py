"""Qwen2.5-VL's resize rule: `fitted_size` must be the size the real image processor feeds the model."""

import random

import pytest
from PIL import Image
from transformers import Qwen2VLImageProcessor

from dcsft.data.resize import FACTOR, fit_image, fitted_size

PATCH = 14
PAPER_BOUNDS = (3136, 802_816)  # the paper: max 896 x 896
SMALL_BOUNDS = (3136, 7056)  # the embedded study: 84 x 84 -> 9 visual tokens

FIXED_SIZES = [
    (3000, 2000),
    (2000, 3000),
    (30, 50),
    (28, 28),
    (29, 29),
    (1000, 60),
    (60, 1000),
    (5000, 40),
    (84, 84),
    (896, 896),
    (897, 897),
    (1200, 1600),
    (640, 480),
    (100, 3),
    (56, 56),
]


def _sizes() -> list[tuple[int, int]]:
    rng = random.Random(0)
    sizes = list(FIXED_SIZES)
    while len(sizes) < 30:
        w, h = rng.randint(20, 1300), rng.randint(20, 1300)
        sizes.append((w, h))
    return sizes


SIZES = _sizes()


@pytest.fixture(scope="module")
def processors():
    return {
        bounds: Qwen2VLImageProcessor(
            size={"shortest_edge": bounds[0], "longest_edge": bounds[1]}, patch_size=PATCH, merge_size=2
        )
        for bounds in (PAPER_BOUNDS, SMALL_BOUNDS)
    }


@pytest.fixture(scope="module")
def images():
    return {size: Image.new("RGB", size, (120, 30, 200)) for size in SIZES}


def _processor_size(processor, image: Image.Image) -> tuple[int, int]:
    # Rescaling and normalizing do not change the size; skipped to keep the test fast.
    out = processor(images=[image], do_rescale=False, do_normalize=False, return_tensors="pt")
    t, h, w = (int(x) for x in out["image_grid_thw"][0])
    assert t == 1
    return w * PATCH, h * PATCH


@pytest.mark.parametrize("bounds", [PAPER_BOUNDS, SMALL_BOUNDS], ids=["paper", "small"])
def test_fitted_size_matches_the_image_processor(processors, images, bounds):
    processor = processors[bounds]
    mismatches = []
    for width, height in SIZES:
        ours = fitted_size(width, height, *bounds)
        theirs = _processor_size(processor, images[width, height])
        if ours != theirs:
            mismatches.append(((width, height), ours, theirs))
    assert not mismatches


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("bounds", [PAPER_BOUNDS, SMALL_BOUNDS], ids=["paper", "small"])
def test_fitted_size_properties(width, height, bounds):
    w, h = fitted_size(width, height, *bounds)
    assert w % FACTOR == 0 and h % FACTOR == 0
    assert w >= FACTOR and h >= FACTOR
    assert w * h >= bounds[0]
    # Within the pixel budget, except where the short side is already at the 28-px floor
    # (extreme aspect ratios), exactly as Qwen's smart_resize does.
    if min(w, h) > FACTOR:
        assert w * h <= bounds[1]
    # The orientation is kept.
    if width > height:
        assert w >= h
    elif height > width:
        assert h >= w


def test_known_value():
    assert fitted_size(1200, 1600, *PAPER_BOUNDS) == (756, 1008)  # (width, height)
    assert fitted_size(84, 84, *SMALL_BOUNDS) == (84, 84)
    assert fitted_size(896, 896, *PAPER_BOUNDS) == (896, 896)


def test_fit_image_resizes_with_scale_factors():
    image = Image.new("RGB", (1200, 1600), (10, 200, 30))
    fitted, (sx, sy) = fit_image(image, *PAPER_BOUNDS)
    assert fitted.size == (756, 1008)
    assert sx == pytest.approx(756 / 1200) and sy == pytest.approx(1008 / 1600)
    assert image.size == (1200, 1600)  # the original is left alone
    # A point maps into the model's frame with the factors.
    assert (600 * sx, 800 * sy) == pytest.approx((378, 504))


def test_fit_image_upscales_small_images():
    image = Image.new("RGB", (30, 50))
    fitted, (sx, sy) = fit_image(image, *SMALL_BOUNDS)
    assert fitted.size == fitted_size(30, 50, *SMALL_BOUNDS)
    assert sx > 1 and sy > 1
    assert sx == pytest.approx(fitted.size[0] / 30) and sy == pytest.approx(fitted.size[1] / 50)


@pytest.mark.parametrize("size", [(84, 84), (756, 1008), (28 * 10, 28 * 4)])
def test_fit_image_keeps_a_fitted_image(size):
    image = Image.new("RGB", size, (1, 2, 3))
    fitted, scale = fit_image(image, *PAPER_BOUNDS)
    assert fitted is image
    assert scale == (1.0, 1.0)


def test_extreme_aspect_ratio_is_an_error():
    with pytest.raises(ValueError):
        fitted_size(10_000, 20, *PAPER_BOUNDS)
