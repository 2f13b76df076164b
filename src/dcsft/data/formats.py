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
from collections.abc import Iterable
from pathlib import Path

from dcsft.data.records import (
    REQUIRED_FIELDS,
    LoadedRecords,
    Skip,
    from_sft,
    read_json,
    resolve_image,
    to_sft,
    to_trl,
)
from dcsft.errors import DataError
from dcsft.rundir import atomic_path

FORMATS = ("records", "sft", "trl")


def format_of(item: object) -> str | None:
    """ "records" or "sft" by the keys an item has, None if neither."""
    if isinstance(item, dict) and "messages" in item and "images" in item:
        return "sft"
    if isinstance(item, dict) and all(name in item for name in REQUIRED_FIELDS):
        return "records"
    return None


def detect_format(items: list, path: Path) -> str:
    """The format of a file: that of its first record in a known one, or a DataError."""
    if not items:
        raise DataError(f"{path}: no records")
    found = next((f for f in map(format_of, items) if f is not None), None)
    if found is None:
        raise DataError(
            f"{path}: no record is a problem/solution/image record or an ms-swift messages/images record"
        )
    return found


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


def item_problem(item: object, fmt: str) -> str | None:
    """Why one item of a `fmt` file cannot be used, or None."""
    found = format_of(item)
    if found is None:
        return (
            f"missing field(s): expected {', '.join(REQUIRED_FIELDS)} (or ms-swift's messages and images)"
            if isinstance(item, dict)
            else f"expected an object, found {type(item).__name__}"
        )
    if found != fmt:
        return f"in the {found} format, the file's first record in the {fmt} format"
    problem = sft_problem(item) if fmt == "sft" else records_problem(item)
    if problem:
        return problem
    answer = from_sft(item)["solution"] if fmt == "sft" else item["solution"]
    return "empty answer: solution is empty or only whitespace" if not answer.strip() else None


def import_records(path: Path) -> LoadedRecords:
    """Records `{"id", "problem", "solution", "image", "meta"?}` of a file in either format; an
    id missing from the file becomes `<file stem>-<index>` (as in dcsft.data.records). A record
    that cannot be used (fields missing or mistyped, an empty answer) is a Skip naming the file
    and the record; a file that is not a list of records is a DataError."""
    path = Path(path)
    items = read_json(path)
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list of records, found {type(items).__name__}")
    fmt = detect_format(items, path)
    stem = Path(path.stem).stem if path.suffix == ".gz" else path.stem
    loaded = LoadedRecords([])
    for index, item in enumerate(items):
        problem = item_problem(item, fmt)
        if problem:
            loaded.skipped.append(
                Skip(str(path), index, item.get("id") if isinstance(item, dict) else None, problem)
            )
            continue
        fields = from_sft(item) if fmt == "sft" else {name: item[name] for name in REQUIRED_FIELDS}
        record = {
            "id": item.get("id", f"{stem}-{index}"),
            **fields,
            "image": str(resolve_image(fields["image"], path.parent)),
        }
        if "meta" in item:
            record["meta"] = item["meta"]
        loaded.records.append(record)
    return loaded


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
            tmp.write_text(
                "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
            )
    return len(rows)


def export_row(record: dict, fmt: str, with_id: bool) -> dict:
    if fmt == "records":
        return record
    row = to_trl(record) if fmt == "trl" else to_sft(record)
    return {"id": record["id"], **row} if with_id else row
