"""Whole record files in the authors' two formats: import with auto-detection, export.

Reads: `.json` (a JSON list) or `.jsonl` (one object per line) files, optionally gzipped
(`.json.gz`, `.jsonl.gz`, as the authors' released lists are here), holding either format.
Writes: `.json` or `.jsonl` files in either format (never gzipped: ms-swift and
`datasets.load_dataset("json", ...)` read them as they are).

Formats:
- `records`: the authors' RL / evaluation records `{"problem", "solution", "image"}`, plus
  dcsft's `id` and `meta` (tools that do not know them ignore them).
- `sft`: ms-swift's SFT records `{"messages": [{"role": "user", "content": "<image>" + problem},
  {"role": "assistant", "content": answer}], "images": [path]}`: `swift sft --dataset FILE`
  reads them as they are. TRL's SFTTrainer accepts them too, but keeps the literal "<image>"
  in the prompt beside its own image block and puts the loss on every token; hence:
- `trl`: TRL's conversational prompt/completion rows with an image block
  `{"prompt": [user turn with {"type": "image"} and the problem], "completion": [assistant
  turn], "images": [path]}`, which TRL's SFTTrainer trains on answer-only, as dcsft itself
  does (export only).

Image paths come back absolute: a relative path is read relative to the file's folder
(as `dcsft.data.records` does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from dcsft.data.records import REQUIRED_FIELDS, DataError, from_sft, read_json, resolve_image, to_sft, to_trl
from dcsft.rundir import atomic_path

FORMATS = ("records", "sft", "trl")


def format_of(item: object) -> str | None:
    """"records" or "sft" by the keys an item has, None if neither."""
    if isinstance(item, dict) and "messages" in item and "images" in item:
        return "sft"
    if isinstance(item, dict) and all(name in item for name in REQUIRED_FIELDS):
        return "records"
    return None


def detect_format(items: list, path: Path) -> str:
    """The one format every item of a file is in, or a DataError naming the first odd item."""
    if not items:
        raise DataError(f"{path}: no records")
    first = format_of(items[0])
    for index, item in enumerate(items):
        found = format_of(item)
        if found is None:
            raise DataError(f"{path}: record {index}: neither a problem/solution/image record nor an "
                            f"ms-swift messages/images record")
        if found != first:
            raise DataError(f"{path}: record {index} is in the {found} format, record 0 in the {first} format")
    return first


def sft_problem(item: dict) -> str | None:
    """Why an ms-swift record cannot become a problem/solution/image record, or None."""
    messages, images = item["messages"], item["images"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "messages must be a list of {role, content} objects"
    roles = [m.get("role") for m in messages]
    if "user" not in roles or "assistant" not in roles:
        return "messages need a user and an assistant turn"
    if not all(isinstance(m.get("content"), str) for m in messages):
        return "every message content must be text"
    if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
        return f"images must list exactly one path, found {images!r:.60}"
    return None


def records_problem(item: dict) -> str | None:
    wrong = [name for name in REQUIRED_FIELDS if not isinstance(item[name], str)]
    return f"field(s) {', '.join(wrong)} must be text" if wrong else None


def import_records(path: Path) -> list[dict]:
    """Records `{"id", "problem", "solution", "image", "meta"?}` of a file in either format;
    an id missing from the file becomes `<file stem>-<index>` (as in dcsft.data.records)."""
    path = Path(path)
    items = read_json(path)
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list of records, found {type(items).__name__}")
    fmt = detect_format(items, path)
    stem = Path(path.stem).stem if path.suffix == ".gz" else path.stem
    records = []
    for index, item in enumerate(items):
        problem = sft_problem(item) if fmt == "sft" else records_problem(item)
        if problem:
            raise DataError(f"{path}: record {index}: {problem}")
        fields = from_sft(item) if fmt == "sft" else {name: item[name] for name in REQUIRED_FIELDS}
        record = {"id": item.get("id", f"{stem}-{index}"), **fields,
                  "image": str(resolve_image(fields["image"], path.parent))}
        if "meta" in item:
            record["meta"] = item["meta"]
        records.append(record)
    return records


def export_records(records: Iterable[dict], path: Path, fmt: str = "records", with_id: bool = False) -> int:
    """Write records to `path` (`.json`: one JSON list, `.jsonl`: one object per line) in the
    `records` or ms-swift `sft` format; returns how many. `sft` rows hold exactly `messages`
    and `images` (the authors' files) unless `with_id` adds each record's `id`."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    suffix = path.suffix
    if suffix not in (".json", ".jsonl"):
        raise ValueError(f"{path}: name the file .json or .jsonl")
    rows = [export_row(record, fmt, with_id) for record in records]
    with atomic_path(path) as tmp:
        if suffix == ".json":
            tmp.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        else:
            tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return len(rows)


def export_row(record: dict, fmt: str, with_id: bool) -> dict:
    if fmt == "records":
        return record
    row = to_trl(record) if fmt == "trl" else to_sft(record)
    return {"id": record["id"], **row} if with_id else row
