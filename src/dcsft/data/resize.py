"""Qwen2.5-VL's resize rule: keep the aspect ratio, sides multiples of 28, pixels within
bounds (at extreme aspect ratios the short side stays at 28 px, as in Qwen's own rule)."""

from __future__ import annotations

from PIL import Image
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

FACTOR = 28  # patch 14 x spatial merge 2


def fitted_size(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) the Qwen2-VL image processor will feed the model."""
    h, w = smart_resize(height, width, factor=FACTOR, min_pixels=min_pixels, max_pixels=max_pixels)
    return w, h


def fit_image(
    image: Image.Image, min_pixels: int, max_pixels: int
) -> tuple[Image.Image, tuple[float, float]]:
    """Resize to the model's input size; returns the image and the (x, y) scale factors applied,
    so that coordinates labelled on the original can be put in the frame the model sees."""
    width, height = image.size
    new_w, new_h = fitted_size(width, height, min_pixels, max_pixels)
    if (new_w, new_h) == (width, height):
        return image, (1.0, 1.0)
    return image.resize((new_w, new_h), Image.Resampling.BICUBIC), (new_w / width, new_h / height)
