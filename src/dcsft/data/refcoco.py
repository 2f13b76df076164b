"""RefCOCO on disk -> dcsft grounding records, from the two layouts people have (the parquet
layout's reading is in dcsft.data.refcoco_parquet; what both share, and the classic layout, here).

Reads
  * the classic layout of the `refer` toolkit: `refs(unc).p` (a pickled list of refs: ref_id,
    ann_id, image_id, split, sentences [{"sent", "raw"}], file_name, category_id), the COCO
    `instances.json` it comes with (images with id/file_name/width/height, annotations with
    id/bbox [x, y, w, h]/image_id/category_id) and the COCO train2014 image folder
    (`load_refcoco_classic`);
  * Hugging Face parquet exports (lmms-lab/RefCOCO, jxu124/refcoco and the like): one row per
    ref with an `image` column (struct with `bytes` and/or `path`, plain bytes or a path) or an
    `image_path` column, `bbox` ([x, y, w, h]), the expressions in `sentences` (list of str or
    of {"sent", "raw"}), `answer` or `captions`, and optionally split, ref_id / question_id,
    ann_id, image_id, category_id, file_name (`load_refcoco_parquet`).

Writes nothing but, for parquet rows that carry image bytes, the decoded-and-checked image
into `image_cache`, named by the SHA-256 of its bytes (so the many rows that share an image
share one file, and a second load reuses it): written once through a temporary file and
`os.replace`, so a crash never leaves a half-written image under the final name.

One record per (ref, sentence), in the original image frame (a later step rescales to the
model's frame):
  {"id": "refcoco-<split>-<ref_id>-<sent_index>", "problem": grounding.prompt(expression),
   "solution": grounding.format_box(box), "image": absolute path,
   "meta": {"expression", "box": [x1, y1, x2, y2], "size": [width, height], "ref_id",
            "ann_id", "image_id", "category_id", "split"}}
(ids the source does not have are None). Both layouts give equal records for the same data,
except the image path.

Decisions
  * Boxes: COCO [x, y, w, h] -> [x, y, x + w, y + h], rounded to 0.01 px (COCO's precision; it
    also makes float32 parquet columns and float64 JSON give the same numbers). A box needs 4
    finite numbers and w > 0, h > 0. A box that sticks out of the image by at most 1 px
    (COCO's float rounding does that: x + w = 640.01) is clipped to the image; one further out
    is skipped, since its label does not match the picture. A box whose rounded integer answer
    (format_box) would have zero width or height is skipped: the verifier cannot parse it.
  * Size: the decoded image's (width, height). In the classic layout a size in instances.json
    that disagrees with the file skips the ref (the box frame is unknown).
  * A ref-level problem (bad box, missing or undecodable image, annotation not in
    instances.json, no sentences) is one Skip for the whole ref; an empty expression is one
    Skip for that sentence only. Refs of other splits are left out, not skipped.
  * Expression: a sentence's "sent" (the refer toolkit's cleaned text), else its "raw", with
    runs of white space made one space.
  * Classic image file: instances.json's file_name for the ref's image_id, else the ref's own
    file_name without its `_<ann id>` suffix; an ann_id missing from instances.json is skipped.
  * Parquet split: the `split` column, else the file name's Hugging Face shard prefix
    (`val-00000-of-00004.parquet` -> "val", "validation" -> "val"); asking for a split from a
    file that says neither is a DataError, as is a file that lacks a bbox, an expression or an
    image column. Without ref_id or question_id the ref id is "<file stem>-<row>".
  * The refs pickle is read with an unpickler that refuses every class reference: the real
    files hold only lists, dicts, strings and numbers, and a pickle that names a class could
    run code on load.
Every unusable record becomes a `Skip` naming the file, the record index and ref, and what is
wrong; a file that cannot be read at all is a one-line `DataError`.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from dcsft.data.records import LoadedRecords, Skip, image_problem, read_json
from dcsft.errors import DataError
from dcsft.tasks import grounding

CLIP_TOLERANCE_PX = 1.0
BOX_DECIMALS = 2
_COCO_NAME = re.compile(r"^(.*_\d{12})_\d+(\.\w+)$")  # COCO_train2014_<image id>_<ann id>.jpg


class BadRef(Exception):
    """A record that cannot be used; the message is the Skip's reason."""


@dataclass
class Ref:
    """One referred object, whichever layout it came from: the common input of `ref_records`."""

    split: str
    ref_id: object
    ann_id: object
    image_id: object
    category_id: object
    sentences: list
    image: str
    size: tuple[int, int]
    box: list[float]


# ---------------------------------------------------------------- shared: boxes, sentences, records


def coco_box(xywh: object, size: tuple[int, int]) -> list[float]:
    """The checked xyxy box of a COCO [x, y, w, h] box in an image of `size`, or BadRef."""
    if hasattr(xywh, "tolist"):
        xywh = xywh.tolist()
    if not isinstance(xywh, (list, tuple)) or len(xywh) != 4:
        raise BadRef(f"bbox must be 4 numbers [x, y, w, h], got {xywh!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in xywh):
        raise BadRef(f"bbox has a value that is not a finite number: {list(xywh)}")
    x, y, w, h = (float(v) for v in xywh)
    if w <= 0 or h <= 0:
        raise BadRef(f"bbox {list(xywh)} has zero or negative width or height")
    box = [round(v, BOX_DECIMALS) for v in (x, y, x + w, y + h)]
    width, height = size
    if (
        box[0] < -CLIP_TOLERANCE_PX
        or box[1] < -CLIP_TOLERANCE_PX
        or box[2] > width + CLIP_TOLERANCE_PX
        or box[3] > height + CLIP_TOLERANCE_PX
    ):
        raise BadRef(f"box {box} lies more than {CLIP_TOLERANCE_PX:g} px outside the {width}x{height} image")
    box = [float(v) for v in grounding.clip_box(tuple(box), size)]
    problem = grounding.box_problem(box, size)
    if problem:
        raise BadRef(problem)
    if grounding.parse_box(grounding.format_box(box)) is None:
        raise BadRef(f"box {box} has zero width or height in whole pixels ({grounding.format_box(box)})")
    return box


def _expression(entry: object) -> str:
    """The text of one sentence entry: a string, or a dict with "sent" (else "raw")."""
    if isinstance(entry, dict):
        text = entry.get("sent") or entry.get("raw")
    else:
        text = entry
    if not isinstance(text, str) or not text.strip():
        raise BadRef(f"empty or missing expression: {entry!r}")
    return " ".join(text.split())


def sentence_list(value: object) -> list:
    """The sentences of a ref as a list (a JSON-encoded list, as in old jxu124 exports, or a
    single string are accepted too)."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return [value]
        return decoded if isinstance(decoded, list) else [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise BadRef(f"sentences must be a list, got {type(value).__name__}")


def ref_records(ref: Ref, one_sentence: bool, file: str, index: int) -> tuple[list[dict], list[Skip]]:
    records, skips = [], []
    sentences = sentence_list(ref.sentences)
    if not sentences:
        raise BadRef("ref has no sentences")
    for sent_index, entry in enumerate(sentences):
        rid = f"refcoco-{ref.split}-{ref.ref_id}-{sent_index}"
        try:
            expression = _expression(entry)
        except BadRef as bad:
            skips.append(Skip(file, index, rid, str(bad)))
            continue
        records.append(
            {
                "id": rid,
                "problem": grounding.prompt(expression),
                "solution": grounding.format_box(ref.box),
                "image": ref.image,
                "meta": {
                    "expression": expression,
                    "box": list(ref.box),
                    "size": list(ref.size),
                    "ref_id": ref.ref_id,
                    "ann_id": ref.ann_id,
                    "image_id": ref.image_id,
                    "category_id": ref.category_id,
                    "split": ref.split,
                },
            }
        )
        if one_sentence:
            break
    return records, skips


def collect_records(
    loaded: LoadedRecords, seen: set[str], records: list[dict], skips: list[Skip], file: str, index: int
) -> None:
    """Adds a ref's records, skipping ids already taken (two rows for one ref)."""
    loaded.skipped.extend(skips)
    for record in records:
        if record["id"] in seen:
            loaded.skipped.append(Skip(file, index, record["id"], "duplicate id (the ref appears twice)"))
            continue
        seen.add(record["id"])
        loaded.records.append(record)


class ImageChecker:
    """Decodes each image file once per load (many refs share one) and gives its size."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[int, int] | str] = {}

    def size(self, path: Path) -> tuple[int, int]:
        if path not in self._seen:
            try:
                problem = image_problem(path)
                if problem is None:
                    with Image.open(path) as im:
                        self._seen[path] = im.size
                else:
                    self._seen[path] = problem
            except Image.DecompressionBombError as err:  # not caught by image_problem
                self._seen[path] = f"image refused: {path} ({err})"
        result = self._seen[path]
        if isinstance(result, str):
            raise BadRef(result)
        return result


# ---------------------------------------------------------------- classic layout


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it refers to {module}.{name}; only plain data is accepted")


def read_refs(path: Path) -> list:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    # Python 2 pickles (the published files) store text as bytes: UTF-8 first, Latin-1 if not.
    for encoding in ("utf-8", "latin1"):
        try:
            refs = _DataOnlyUnpickler(io.BytesIO(raw), encoding=encoding).load()
            break
        except UnicodeDecodeError:
            continue
        except Exception as err:  # a pickle can fail in many ways (EOFError, KeyError, ...)
            raise DataError(f"{path}: not a readable refs pickle ({type(err).__name__}: {err})") from None
    if not isinstance(refs, list):
        raise DataError(f"{path}: expected a pickled list of refs, found {type(refs).__name__}")
    return refs


def read_instances(path: Path) -> tuple[dict, dict]:
    """Annotations and images of a COCO instances.json, each by id."""
    data = read_json(path)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("annotations"), list)
        or not isinstance(data.get("images"), list)
    ):
        raise DataError(f"{path}: expected a COCO instances object with 'images' and 'annotations' lists")
    # Entries without an id cannot be referred to; a ref that needs one is skipped later.
    anns = {a["id"]: a for a in data["annotations"] if isinstance(a, dict) and _is_id(a.get("id"))}
    images = {i["id"]: i for i in data["images"] if isinstance(i, dict) and _is_id(i.get("id"))}
    return anns, images


def _is_id(value: object) -> bool:
    """Ids are ints or strings; anything else (a list, a float NaN) cannot be looked up."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _image_file_name(image: dict | None, ref: dict) -> str:
    """The image's file name: instances.json's, else the ref's with its `_<ann id>` suffix
    removed (refs name the image COCO_train2014_<image id>_<ann id>.jpg)."""
    if image and isinstance(image.get("file_name"), str):
        return image["file_name"]
    name = ref.get("file_name")
    match = _COCO_NAME.match(name) if isinstance(name, str) else None
    if match:
        return match.group(1) + match.group(2)
    raise BadRef(
        f"image_id {ref.get('image_id')!r} is not in instances.json and the ref has no usable file_name"
    )


def classic_target(
    ref: object, anns: dict, images: dict, image_root: Path
) -> tuple[dict, object, dict | None, Path]:
    """(annotation, image id, instances.json image entry, image file) of a classic ref, or
    BadRef; the image is not opened (`dcsft plan` only checks that it exists)."""
    if not isinstance(ref, dict):
        raise BadRef(f"expected a ref dict, found {type(ref).__name__}")
    missing = [k for k in ("ref_id", "ann_id", "sentences") if k not in ref]
    if missing:
        raise BadRef(f"ref lacks {', '.join(missing)}")
    ann = anns.get(ref["ann_id"]) if _is_id(ref["ann_id"]) else None
    if ann is None:
        raise BadRef(f"ann_id {ref['ann_id']!r} is not in instances.json")
    image_id = ref.get("image_id", ann.get("image_id"))
    if ann.get("image_id", image_id) != image_id:
        raise BadRef(
            f"ann_id {ref['ann_id']} belongs to image {ann.get('image_id')}, the ref says {image_id}"
        )
    image = images.get(image_id) if _is_id(image_id) else None
    return ann, image_id, image, (image_root / _image_file_name(image, ref)).absolute()


def _classic_ref(ref: object, anns: dict, images: dict, image_root: Path, checker: ImageChecker) -> Ref:
    ann, image_id, image, path = classic_target(ref, anns, images, image_root)
    size = checker.size(path)
    if image and "width" in image and "height" in image and (image["width"], image["height"]) != size:
        raise BadRef(
            f"instances.json says image {image_id} is {image['width']}x{image['height']}, "
            f"the file is {size[0]}x{size[1]}: {path}"
        )
    return Ref(
        split=str(ref.get("split") or "unknown"),
        ref_id=ref["ref_id"],
        ann_id=ref["ann_id"],
        image_id=image_id,
        category_id=ref.get("category_id", ann.get("category_id")),
        sentences=ref["sentences"],
        image=str(path),
        size=size,
        box=coco_box(ann.get("bbox"), size),
    )


def load_refcoco_classic(
    refs_path: Path,
    instances_path: Path,
    image_root: Path,
    split: str | None,
    one_sentence_per_ref: bool = False,
) -> LoadedRecords:
    """Records of one split (None: all) of a refer-toolkit `refs(*).p` + `instances.json` +
    COCO image folder; with `one_sentence_per_ref`, only each ref's first usable sentence."""
    refs_path, instances_path, image_root = Path(refs_path), Path(instances_path), Path(image_root)
    refs = read_refs(refs_path)
    anns, images = read_instances(instances_path)
    checker, loaded, seen = ImageChecker(), LoadedRecords([]), set()
    for index, ref in enumerate(refs):
        if split is not None and isinstance(ref, dict) and ref.get("split") != split:
            continue
        ref_label = f"ref_id {ref.get('ref_id')}" if isinstance(ref, dict) else None
        try:
            records, skips = ref_records(
                _classic_ref(ref, anns, images, image_root, checker),
                one_sentence_per_ref,
                str(refs_path),
                index,
            )
        except BadRef as bad:
            loaded.skipped.append(Skip(str(refs_path), index, ref_label, str(bad)))
            continue
        collect_records(loaded, seen, records, skips, str(refs_path), index)
    return loaded
