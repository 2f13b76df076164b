"""Visual grounding: a referring expression in, a bounding box `[x1, y1, x2, y2]` out (RefCOCO
in the paper, the embedded scene world here).

Box conventions (`model.box_format`, resolved in dcsft.conventions): `absolute` pixels of the
image as the model sees it (after Qwen2.5-VL's resize; see dcsft.data.resize), as Qwen2.5-VL
writes them, or `relative1000`: each coordinate as a share of the image's width or height on a
0-1000 grid, as Qwen2-VL and Qwen3-VL write them. prepare records the convention of a record's
`solution` in `meta.box_format` (absent: absolute, as every record written before conventions
existed), and the verifier scores in that frame.

Answer formats (`prompts.answer_format`): `plain` `[x1, y1, x2, y2]` (the paper's), `bbox_2d`
`[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]` (Qwen2.5-VL's and Qwen3-VL's JSON), `box_tokens`
`<|object_ref_start|>...<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>` (Qwen2-VL's).

The verifier parses the first well-formed box of the response in any of the three formats: four
finite numbers (integers or decimals, any spacing) in square brackets (a plain list, or the list
inside bbox_2d JSON), or two points `(x1,y1),(x2,y2)` (Qwen2-VL's box, with or without its
special tokens, which decoding drops), with x1 < x2 and y1 < y2. It is clipped to the frame
(the image, or the 1000 x 1000 grid), and the answer is correct when its IoU with the ground
truth is at least 0.5 (the paper's rule). A response without a well-formed box scores 0 and
counts as unparsable.
"""

from __future__ import annotations

import json
import math
import re

from PIL import Image

from dcsft.tasks.base import PrepareContext, Task

PROMPT = "Please provide the bounding box of the region this sentence describes: {expression}."
# The official Qwen grounding prompt, the Qwen2.5-VL cookbook's (QwenLM/Qwen2.5-VL,
# cookbooks/spatial_understanding.ipynb: "Locate the top right brown cake, output its bbox
# coordinates using JSON format."), with the referring expression as the object.
QWEN_PROMPT = "Locate {expression}, output its bbox coordinates using JSON format."
IOU_THRESHOLD = 0.5
METRIC = f"IoU >= {IOU_THRESHOLD}"  # how a report names what counts as correct
BOX_FORMATS = ("absolute", "relative1000")
ANSWER_FORMATS = ("plain", "bbox_2d", "box_tokens")
GRID = 1000  # the side of relative1000's grid
_NUMBER = r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*"
_LIST = re.compile(r"\[" + ",".join([_NUMBER] * 4) + r"\]")
_POINTS = re.compile(r"\(" + _NUMBER + "," + _NUMBER + r"\)\s*,\s*\(" + _NUMBER + "," + _NUMBER + r"\)")

Box = tuple[float, float, float, float]


def prompt(expression: str, template: str = PROMPT) -> str:
    return template.format(expression=expression)


def format_box(box, answer_format: str = "plain", label: str | None = None) -> str:
    """The answer text of a box, in integer coordinates as the Qwen models write them; `label`
    (the referring expression) names the object in the bbox_2d and box_tokens formats."""
    x1, y1, x2, y2 = (round(v) for v in box)
    if answer_format == "bbox_2d":
        return json.dumps([{"bbox_2d": [x1, y1, x2, y2], **({"label": label} if label else {})}])
    if answer_format == "box_tokens":
        named = f"<|object_ref_start|>{label}<|object_ref_end|>" if label else ""
        return f"{named}<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>"
    return f"[{x1}, {y1}, {x2}, {y2}]"


def to_relative(box, size) -> Box:
    """A box in pixels of an image of (width, height) -> on the 0-1000 grid."""
    width, height = size
    return box[0] * GRID / width, box[1] * GRID / height, box[2] * GRID / width, box[3] * GRID / height


def from_relative(box, size) -> Box:
    width, height = size
    return box[0] * width / GRID, box[1] * height / GRID, box[2] * width / GRID, box[3] * height / GRID


def frame_box(meta: dict, box_format: str) -> Box:
    """A prepared record's box in a convention: absolute pixels of the model's frame (meta.box),
    or relative1000 computed from the original box and size: the resize maps the whole image onto
    the whole frame, so both give the same shares, the original without the frame's rounding."""
    if box_format == "relative1000":
        return to_relative(meta["orig_box"], meta["orig_size"])
    return tuple(meta["box"])


def answer_text(meta: dict, box_format: str = "absolute", answer_format: str = "plain") -> str:
    """The `solution` of a prepared record (meta.box, size, orig_box, orig_size and expression)."""
    return format_box(frame_box(meta, box_format), answer_format, meta.get("expression"))


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


def record_box_format(record: dict) -> str:
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    return meta.get("box_format", "absolute")


def record_problem(record: dict) -> str | None:
    """Why a grounding record cannot be used: its solution must be a box inside its frame."""
    found = candidates(record["solution"])
    if not found:
        return (
            f"solution {record['solution']!r} is not a box [x1, y1, x2, y2] (a list, bbox_2d JSON "
            f"or Qwen2-VL's box tokens)"
        )
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    return box_problem(list(found[0]), extent(record_box_format(record), meta.get("size")))


def candidates(text: str) -> list[tuple[float, ...]]:
    """Every box-shaped group of four numbers, in the order they appear: lists and point pairs."""
    matches = sorted([*_LIST.finditer(text), *_POINTS.finditer(text)], key=lambda m: m.start())
    return [tuple(float(v) for v in match.groups()) for match in matches]


def parse_box(text: object) -> Box | None:
    """The first well-formed box in a response, or None."""
    if not isinstance(text, str):
        return None
    for x1, y1, x2, y2 in candidates(text):
        if all(map(math.isfinite, (x1, y1, x2, y2))) and x1 < x2 and y1 < y2:
            return x1, y1, x2, y2
    return None


def extent(box_format: str, image_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The (width, height) a box of the convention lies in: the image, or the 1000 x 1000 grid."""
    return (GRID, GRID) if box_format == "relative1000" else image_size


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


def box_iou_of(
    response: object, solution: str, image_size: tuple[int, int] | None = None, box_format: str = "absolute"
) -> float | None:
    """IoU of the response's box with the solution's, None when the response has no box. Both are
    in `box_format`; the IoU is the same in pixels and on the grid (both axes scale alike)."""
    predicted = parse_box(response)
    if predicted is None:
        return None
    bounds = extent(box_format, image_size)
    if bounds is not None:
        predicted = clip_box(predicted, bounds)
    truth = parse_box(solution)
    if truth is None:
        raise ValueError(f"solution {solution!r} is not a box [x1, y1, x2, y2]")
    return iou(predicted, truth)


def score(
    response: object, solution: str, image_size: tuple[int, int] | None = None, box_format: str = "absolute"
) -> float:
    overlap = box_iou_of(response, solution, image_size, box_format)
    return float(overlap is not None and overlap >= IOU_THRESHOLD)


def score_record(response: object, record: dict, frame: str = "model") -> float:
    """Score in the frame the model sees (the record's convention), or (`frame="original"`) with
    the predicted box mapped back to the original image, against the original box."""
    box_format = record_box_format(record)
    if frame == "model":
        return score(response, record["solution"], record_size(record), box_format)
    predicted = parse_box(response)
    if predicted is None:
        return 0.0
    meta = record["meta"]
    return float(iou(to_original(predicted, meta, box_format), tuple(meta["orig_box"])) >= IOU_THRESHOLD)


def to_original(box: Box, meta: dict, box_format: str) -> Box:
    """A predicted box in the original image's pixels, clipped to it: from the grid by the
    original size, from the model's frame by the inverse resize factors."""
    size = tuple(meta["orig_size"])
    if box_format == "relative1000":
        return clip_box(from_relative(box, size), size)
    sx, sy = meta["scale"]
    return clip_box(scale_box(box, (1 / sx, 1 / sy)), size)


def record_size(record: dict) -> tuple[int, int] | None:
    size = record.get("meta", {}).get("size")
    return tuple(size) if size else None


def original_box(record: dict) -> tuple[list | None, list | None, str | None]:
    """(box, (width, height), problem) of a grounding record in its image file's pixels: from
    meta.orig_box/orig_size (a file dcsft wrote), meta.box/size (the RefCOCO loaders), else the
    solution's box and the image's size."""
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    for box_key, size_key in (("orig_box", "orig_size"), ("box", "size")):
        if box_key in meta and size_key in meta:
            return meta[box_key], meta[size_key], None
    box = parse_box(record["solution"])
    if box is None:
        return None, None, f"solution {record['solution']!r} holds no box (four numbers, x1 < x2 and y1 < y2)"
    try:
        with Image.open(record["image"]) as im:
            size = list(im.size)
    except OSError as err:
        return None, None, f"image cannot be read: {record['image']} ({type(err).__name__})"
    return list(box), size, None


def to_model_frame(record: dict, context: PrepareContext) -> tuple[dict | None, str | None]:
    """The record with its box in the frame the model sees (the keys the embedded scenes write)
    and its solution in the wording's convention and format."""
    from dcsft.data.resize import fitted_size  # imports transformers: only prepare needs it

    words = context.wording
    box, size, problem = original_box(record)
    pair = isinstance(size, (list, tuple)) and len(size) == 2
    if problem is None:
        problem = box_problem(box, tuple(size) if pair else None)
    if problem is None and not (pair and min(size) > 0):
        problem = f"image size {size!r} is not (width, height)"
    if problem:
        return None, problem
    width, height = size
    try:
        new_w, new_h = fitted_size(width, height, context.min_pixels, context.max_pixels)
    except ValueError as err:  # smart_resize refuses aspect ratios beyond 200
        return None, f"image {width}x{height} cannot be resized: {err}"
    factors = (new_w / width, new_h / height)
    scaled = [round(v, 2) for v in clip_box(scale_box(box, factors), (new_w, new_h))]
    meta = dict(record.get("meta") or {})
    meta.update(
        orig_box=list(box),
        orig_size=[width, height],
        box=scaled,
        size=[new_w, new_h],
        scale=[round(f, 6) for f in factors],
        **words.box_meta(),
    )
    answer = words.solution(meta)
    if parse_box(answer) is None:
        unit = "units of the 0-1000 grid" if words.box_format == "relative1000" else "pixels of the model's"
        frame = "" if words.box_format == "relative1000" else f" {new_w}x{new_h} frame"
        return None, f"box {list(box)} has zero width or height in whole {unit}{frame}"
    return {**record, "solution": answer, "meta": meta}, None


class Grounding(Task):
    """A box for a referring expression, correct at IoU >= 0.5 in the record's frame and convention."""

    name = "grounding"
    metric = METRIC
    coordinates = True
    prompt_presets = {"paper": PROMPT, "qwen": QWEN_PROMPT}
    placeholders = frozenset({"expression"})

    def verify(self, response: str, record: dict) -> float:
        """Scored in the frame of `settings.frame`: the model's (profiling, GRPO, evaluation by
        default) or the original image's (`evaluate.frame: original`)."""
        return score_record(response, record, self.settings.frame)

    def parse(self, response: str) -> Box | None:
        return parse_box(response)

    def record_problem(self, record: dict) -> str | None:
        return record_problem(record)

    def prepare_record(self, record: dict, context: PrepareContext) -> tuple[dict | None, str | None]:
        return to_model_frame(record, context)
