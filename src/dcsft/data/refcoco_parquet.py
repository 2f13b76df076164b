"""RefCOCO's Hugging Face parquet exports -> dcsft grounding records (the layout, decisions and
record format are described in dcsft.data.refcoco, which holds what both layouts share).

Image bytes in a row are decoded, checked and written once into the image cache under the
SHA-256 of their bytes, through a temporary file and `os.replace`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from dcsft.data.records import LoadedRecords, Skip
from dcsft.data.refcoco import BadRef, ImageChecker, Ref, coco_box, collect_records, ref_records
from dcsft.errors import DataError

EXPRESSION_COLUMNS = ("sentences", "answer", "captions")
IMAGE_COLUMNS = ("image", "image_path")
OPTIONAL_COLUMNS = ("split", "ref_id", "question_id", "ann_id", "image_id", "category_id", "file_name")
_SHARD_NAME = re.compile(r"^([A-Za-z]+)-\d{5}-of-\d{5}")
_SPLIT_ALIASES = {"validation": "val"}
_COCO_IMAGE_ID = re.compile(r"_(\d{12})(?:_\d+)?\.\w+$")


def cached_image(data: bytes, cache: Path, known: dict) -> tuple[str, tuple[int, int]]:
    """Path and size of image bytes stored in `cache` under their hash (written only if absent);
    `known` remembers each hash's result for this load."""
    digest = hashlib.sha256(data).hexdigest()
    if digest not in known:
        known[digest] = _store_image(data, digest, cache)
    result = known[digest]
    if isinstance(result, str):
        raise BadRef(result)
    return result


def _store_image(data: bytes, digest: str, cache: Path) -> tuple[str, tuple[int, int]] | str:
    # Decode fully before writing, so the cache only ever holds images that load.
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            size, fmt = im.size, (im.format or "img").lower()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"image bytes cannot be decoded ({type(err).__name__})"
    suffix = {"jpeg": ".jpg"}.get(fmt, "." + fmt)
    target = (cache / f"{digest[:32]}{suffix}").absolute()
    # Same name = same bytes; a file of another length is a leftover of something else: replace it.
    if not (target.is_file() and target.stat().st_size == len(data)):
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=".tmp-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return str(target), size


def _row_image(
    value: object, row: dict, image_root: Path, cache: Path, checker: ImageChecker, known: dict
) -> tuple[str, tuple[int, int]]:
    """The image of a row: bytes go to the cache, a path is checked where it lies."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    elif isinstance(value, (bytes, bytearray)):
        data, path = bytes(value), None
    else:
        data, path = None, value
    if path is None and data is None:
        path = row.get("image_path")
    if data:
        return cached_image(data, cache, known)
    if not isinstance(path, str) or not path:
        raise BadRef("row has no image bytes and no image path")
    file = Path(path) if Path(path).is_absolute() else (image_root / path).absolute()
    return str(file), checker.size(file)


def file_split(path: Path) -> str | None:
    """The split a Hugging Face shard name says (`val-00000-of-00004.parquet` -> "val")."""
    match = _SHARD_NAME.match(path.name)
    return _SPLIT_ALIASES.get(match.group(1), match.group(1)) if match else None


def _image_id_from_name(name: object) -> int | None:
    match = _COCO_IMAGE_ID.search(name) if isinstance(name, str) else None
    return int(match.group(1)) if match else None


def open_parquet(path: Path):
    """The pyarrow ParquetFile at `path`, or a one-line DataError naming the file."""
    import pyarrow.parquet as pq  # imported here: only parquet users pay for pyarrow's import

    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for a non-parquet file
        raise DataError(
            f"{path}: not a readable parquet file ({type(err).__name__}: {err})".splitlines()[0]
        ) from None


def parquet_columns(path: Path):
    """The ParquetFile and the columns to read, or DataError."""
    parquet = open_parquet(path)
    names = parquet.schema_arrow.names
    lacking = [
        what
        for what, options in (
            ("bbox", ("bbox",)),
            ("an expression", EXPRESSION_COLUMNS),
            ("an image", IMAGE_COLUMNS),
        )
        if not any(c in names for c in options)
    ]
    if lacking:
        raise DataError(
            f"{path}: no column for {', '.join(lacking)} (expected bbox, one of "
            f"{'/'.join(EXPRESSION_COLUMNS)}, one of {'/'.join(IMAGE_COLUMNS)}); "
            f"columns found: {', '.join(names)}"
        )
    wanted = ("bbox",) + EXPRESSION_COLUMNS + IMAGE_COLUMNS + OPTIONAL_COLUMNS
    return parquet, [c for c in wanted if c in names]


def _parquet_rows(path: Path, parquet, columns: list[str]):
    """The rows of a parquet file as dicts, streamed in batches (a shard can hold GBs of images)."""
    try:
        for batch in parquet.iter_batches(batch_size=256, columns=columns):
            yield from batch.to_pylist()
    except Exception as err:  # a corrupt row group shows up only while reading it
        raise DataError(f"{path}: cannot read rows ({type(err).__name__}: {err})".splitlines()[0]) from None


def _parquet_ref(
    row: dict,
    path: Path,
    index: int,
    split: str,
    image_root: Path,
    cache: Path,
    checker: ImageChecker,
    known: dict,
) -> Ref:
    expressions = next((row[c] for c in EXPRESSION_COLUMNS if row.get(c) is not None), None)
    if expressions is None:
        raise BadRef("row has no expressions")
    image_col = row.get("image") if "image" in row else row.get("image_path")
    image, size = _row_image(image_col, row, image_root, cache, checker, known)
    ref_id = next(
        (row[c] for c in ("ref_id", "question_id") if row.get(c) is not None), f"{path.stem}-{index}"
    )
    image_id = row.get("image_id")
    if image_id is None:
        image_id = _image_id_from_name(row.get("file_name"))
    return Ref(
        split=split,
        ref_id=ref_id,
        ann_id=row.get("ann_id"),
        image_id=image_id,
        category_id=row.get("category_id"),
        sentences=expressions,
        image=image,
        size=size,
        box=coco_box(row.get("bbox"), size),
    )


def load_refcoco_parquet(
    paths: list[Path],
    image_cache: Path,
    split: str | None,
    one_sentence_per_ref: bool = False,
    image_root: Path | None = None,
) -> LoadedRecords:
    """Records of one split (None: all) of Hugging Face RefCOCO parquet files; image bytes are
    written once into `image_cache`, image paths are taken relative to `image_root` (default:
    the parquet file's folder)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    cache, checker, known = Path(image_cache), ImageChecker(), {}
    loaded, seen = LoadedRecords([]), set()
    for path in map(Path, paths):
        parquet, columns = parquet_columns(path)
        named_split = file_split(path)
        if split is not None and "split" not in columns and named_split is None:
            raise DataError(
                f"{path}: has no split column and its name does not say the split; load it with split=None"
            )
        root = Path(image_root) if image_root is not None else path.parent
        for index, row in enumerate(_parquet_rows(path, parquet, columns)):
            row_split = str(row.get("split") or named_split or "unknown")
            if split is not None and row_split != split:
                continue
            label = next((f"{c} {row[c]}" for c in ("ref_id", "question_id") if row.get(c) is not None), None)
            try:
                ref = _parquet_ref(row, path, index, row_split, root, cache, checker, known)
                records, skips = ref_records(ref, one_sentence_per_ref, str(path), index)
            except BadRef as bad:
                loaded.skipped.append(Skip(str(path), index, label, str(bad)))
                continue
            collect_records(loaded, seen, records, skips, str(path), index)
    return loaded
