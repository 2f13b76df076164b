"""Records in the authors' formats, read with clear errors and counted skips.

Evaluation / RL records: `{"problem", "solution", "image"}` (dcsft adds `id` and a `meta`
dict, which other tools ignore). SFT records (ms-swift's format):
`{"messages": [{"role": "user", "content": "<image>" + problem}, {"role": "assistant",
"content": answer}], "images": [path]}`. Image paths are absolute, or relative to the
folder of the file that lists them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from dcsft.errors import DataError

REQUIRED_FIELDS = ("problem", "solution", "image")


@dataclass
class Skip:
    file: str
    index: int
    record_id: str | None
    reason: str

    def line(self) -> str:
        rid = f" ({self.record_id})" if self.record_id else ""
        return f"{self.file}: record {self.index}{rid}: {self.reason}"


@dataclass
class LoadedRecords:
    records: list[dict]
    skipped: list[Skip] = field(default_factory=list)


def plain_suffix(path: Path) -> str:
    """`.json` or `.jsonl`, looking through a `.gz` suffix."""
    path = Path(path)
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


def read_json(path: Path) -> Any:
    """The JSON value of a `.json` file, or the list of objects of a `.jsonl` file; gzip is
    undone first. Any problem is a one-line DataError naming the file (and line)."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a JSON file") from None
    except (gzip.BadGzipFile, EOFError) as err:
        raise DataError(f"{path}: cannot be decompressed ({type(err).__name__})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or type(err).__name__})") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if plain_suffix(path) == ".jsonl":
        return parse_lines(text, path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON Lines in a file named .json
            return parse_lines(text, path)
        raise DataError(f"{path}: line {err.lineno} column {err.colno}: not valid JSON ({err.msg})") from None


def parse_lines(text: str, path: Path) -> list:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {number}: not valid JSON ({err.msg})") from None
    return rows


def read_json_list(path: Path) -> list:
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, found {type(data).__name__}")
    return data


def resolve_image(image: str, base: Path) -> Path:
    path = Path(image)
    return path if path.is_absolute() else base / path


def image_problem(path: Path, decode: bool = True) -> str | None:
    """Why an image cannot be used, or None if it decodes (or, with `decode=False`, if its
    header reads: the cheap check for images a stage has decoded before)."""
    try:
        with Image.open(path) as im:
            if decode:
                im.load()
    except FileNotFoundError:
        return f"image not found: {path}"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return f"image cannot be decoded: {path} ({type(err).__name__})"
    return None


def record_problem(
    record: object,
    classes: set[str] | None,
    base: Path,
    check: Callable[[dict], str | None] | None = None,
    decode: bool = True,
) -> str | None:
    if not isinstance(record, dict):
        return f"expected an object with {', '.join(REQUIRED_FIELDS)}, found {type(record).__name__}"
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    wrong = [name for name in REQUIRED_FIELDS if not isinstance(record[name], str)]
    if wrong:
        return f"field(s) {', '.join(wrong)} must be text"
    if not record["solution"].strip():
        return "empty answer: solution is empty or only whitespace"
    if classes is not None and record["solution"].strip().lower() not in classes:
        return f"label {record['solution']!r} is not one of the {len(classes)} classes"
    if check is not None and (problem := check(record)):
        return problem
    return image_problem(resolve_image(record["image"], base), decode)


def load_records(
    path: Path,
    classes: list[str] | None = None,
    check: Callable[[dict], str | None] | None = None,
    decode: bool = True,
) -> LoadedRecords:
    """Usable records of a `problem/solution/image` file, each with an absolute image path;
    every unusable record is skipped with a reason naming the file and the record. `classes`
    limits the solutions to class names; `check` is a task's own test of a record; `decode`
    False checks image headers only."""
    path = Path(path)
    known = {c.lower() for c in classes} if classes is not None else None
    loaded = LoadedRecords([])
    for index, record in enumerate(read_json_list(path)):
        problem = record_problem(record, known, path.parent, check, decode)
        if problem:
            rid = record.get("id") if isinstance(record, dict) else None
            loaded.skipped.append(Skip(str(path), index, rid, problem))
            continue
        loaded.records.append(
            {
                **record,
                "id": record.get("id", f"{path.stem}-{index}"),
                "image": str(resolve_image(record["image"], path.parent)),
            }
        )
    return loaded


def to_sft(record: dict) -> dict:
    """ms-swift's SFT record for a `problem/solution/image` record."""
    return {
        "messages": [
            {"role": "user", "content": "<image>" + record["problem"]},
            {"role": "assistant", "content": record["solution"]},
        ],
        "images": [record["image"]],
    }


def to_trl(record: dict) -> dict:
    """TRL's conversational prompt/completion row with an image: TRL's SFTTrainer puts the loss
    on the completion only, as ms-swift does on the assistant turn."""
    return {
        "prompt": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": record["problem"]}]}
        ],
        "completion": [{"role": "assistant", "content": [{"type": "text", "text": record["solution"]}]}],
        "images": [record["image"]],
    }


def from_sft(record: dict) -> dict:
    """The `problem/solution/image` record of an ms-swift SFT record."""
    user = next(m for m in record["messages"] if m["role"] == "user")
    assistant = [m for m in record["messages"] if m["role"] == "assistant"][-1]
    return {
        "problem": user["content"].removeprefix("<image>"),
        "solution": assistant["content"],
        "image": record["images"][0],
    }


def record_kinds(meta: dict) -> list[str]:
    """The hard-sample kinds a record's meta names (embedded worlds; older records: their noise only)."""
    return list(meta.get("kinds", [meta["noise"]] if meta.get("noise") else []))
