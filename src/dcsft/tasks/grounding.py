"""Visual grounding: a referring expression in, a bounding box `[x1, y1, x2, y2]` out (RefCOCO
in the paper, the embedded scene world here).

Boxes are in absolute pixels of the image as the model sees it (after Qwen2.5-VL's resize;
see dcsft.data.resize). The verifier parses the first well-formed box of the response: four
finite numbers (integers or decimals, any spacing) in square brackets with x1 < x2 and
y1 < y2. It is clipped to the image when the image size is known, and the answer is correct
when its IoU with the ground truth is at least 0.5 (the paper's rule). A response without a
well-formed box scores 0 and counts as unparsable.
"""

from __future__ import annotations

import math
import re

PROMPT = "Please provide the bounding box of the region this sentence describes: {expression}."
IOU_THRESHOLD = 0.5
METRIC = f"IoU >= {IOU_THRESHOLD}"  # how a report names what counts as correct
_NUMBER = r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*"
_BOX = re.compile(r"\[" + ",".join([_NUMBER] * 4) + r"\]")

Box = tuple[float, float, float, float]


def prompt(expression: str) -> str:
    return PROMPT.format(expression=expression)


def format_box(box) -> str:
    """The answer text: integer pixel coordinates, as Qwen2.5-VL writes them."""
    return "[" + ", ".join(str(round(v)) for v in box) + "]"


def box_problem(box: object, image_size: tuple[int, int] | None = None) -> str | None:
    """Why a data box is unusable (None if it is fine): four finite numbers, x1 < x2, y1 < y2,
    inside the image when its (width, height) is given."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return f"box must be 4 numbers [x1, y1, x2, y2], got {box!r}"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        return f"box has a value that is not a finite number: {box!r}"
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        return f"box has zero or negative area (need x1 < x2 and y1 < y2): {list(box)}"
    if image_size is not None:
        width, height = image_size
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            return f"box {list(box)} lies outside the {width}x{height} image"
    return None


def record_problem(record: dict) -> str | None:
    """Why a grounding record cannot be used: its solution must be a box inside its image."""
    match = _BOX.fullmatch(record["solution"].strip())
    if not match:
        return f"solution {record['solution']!r} is not a box [x1, y1, x2, y2]"
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    return box_problem([float(v) for v in match.groups()], meta.get("size"))


def parse_box(text: object) -> Box | None:
    """The first well-formed box in a response, or None."""
    if not isinstance(text, str):
        return None
    for match in _BOX.finditer(text):
        x1, y1, x2, y2 = (float(v) for v in match.groups())
        if all(map(math.isfinite, (x1, y1, x2, y2))) and x1 < x2 and y1 < y2:
            return x1, y1, x2, y2
    return None


def clip_box(box: Box, image_size: tuple[int, int]) -> Box:
    width, height = image_size
    x1, y1, x2, y2 = box
    return min(max(x1, 0), width), min(max(y1, 0), height), min(max(x2, 0), width), min(max(y2, 0), height)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two xyxy boxes (0 when either has no area)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def scale_box(box, factors: tuple[float, float]) -> Box:
    """A box multiplied by (x, y) factors: original frame -> model frame with the resize factors,
    and back with their inverses."""
    sx, sy = factors
    return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy


def box_iou_of(response: object, solution: str, image_size: tuple[int, int] | None = None) -> float | None:
    """IoU of the response's box with the solution's, None when the response has no box."""
    predicted = parse_box(response)
    if predicted is None:
        return None
    if image_size is not None:
        predicted = clip_box(predicted, image_size)
    truth = parse_box(solution)
    if truth is None:
        raise ValueError(f"solution {solution!r} is not a box [x1, y1, x2, y2]")
    return iou(predicted, truth)


def score(response: object, solution: str, image_size: tuple[int, int] | None = None) -> float:
    overlap = box_iou_of(response, solution, image_size)
    return float(overlap is not None and overlap >= IOU_THRESHOLD)


def unparsable(response: object) -> bool:
    return parse_box(response) is None


def score_record(response: object, record: dict, frame: str = "model") -> float:
    """Score in the frame the model sees, or (`frame="original"`) with the predicted box mapped
    back to the original image by the inverse resize factors, against the original box."""
    meta = record.get("meta", {})
    if frame == "model":
        return score(response, record["solution"], record_size(record))
    predicted = parse_box(response)
    if predicted is None:
        return 0.0
    sx, sy = meta["scale"]
    original = clip_box(scale_box(predicted, (1 / sx, 1 / sy)), tuple(meta["orig_size"]))
    return float(iou(original, tuple(meta["orig_box"])) >= IOU_THRESHOLD)


def record_size(record: dict) -> tuple[int, int] | None:
    size = record.get("meta", {}).get("size")
    return tuple(size) if size else None


def reward(completions: list, solution: list[str], size: list | None = None, **_: object) -> list[float]:
    """TRL-style reward callable; `size` is the dataset's (width, height) column, for clipping."""
    texts = [c[-1]["content"] if isinstance(c, list) and c else c for c in completions]
    sizes = size if size is not None else [None] * len(texts)
    return [
        score(text, answer, tuple(s) if s else None)
        for text, answer, s in zip(texts, solution, sizes, strict=True)
    ]
