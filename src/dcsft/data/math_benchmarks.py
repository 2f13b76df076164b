"""The multimodal-reasoning datasets as Hugging Face publishes them (parquet), read into dcsft
reasoning records: MMK12 (training) and the benchmarks MathVista, MathVerse, MathVision, WeMath
and MMMU (evaluation).

Every layout gives records of one contract, which the reasoning task verifies:
`{id, image, problem, solution, meta}` with meta.question (the question without its options),
meta.options (option texts in letter order A, B, C, ...; [] for a numeric item),
meta.answer_type (`choice` or `numeric`), meta.answer (the option letter, or the number as
written), meta.source (the dataset's name) and the layout's own fields (subject, category, ...);
solution = meta.answer.

What is kept, what is left out and what is bad: dcsft.data.math_items.

Layouts (columns from each dataset's Hugging Face card and the loaders that read it):
- mmk12: FanqingM/MMK12 (data/train-*.parquet, data/test-*.parquet): id, subject, question,
  answer, image. Options are lines of the question (`A. ...`, `B. ...`), the answer a letter,
  or a number for fill-in items (MM-Eureka's release; read as in lmms-eval's k12 task).
- mathvista: AI4Math/MathVista (data/testmini-*.parquet): pid, question, image (a path),
  decoded_image, choices, answer (the text of the right choice), question_type
  (multi_choice / free_form), answer_type (text / integer / float / list), precision, unit,
  metadata (lmms-eval tasks/mathvista/utils.py). Its answer_type is kept as meta.value_type
  (meta.answer_type is the contract's).
- mathverse: AI4Math/MathVerse (testmini.parquet): sample_index, problem_index,
  problem_version, question (options as lines `A:...` after `Choices:`), image, answer,
  question_type (multi-choice / free-form), metadata, query_wo, query_cot,
  question_for_eval (lmms-eval tasks/mathverse/utils.py). A multiple-choice item whose
  options are only drawn in the diagram (no options in its text) is unsupported.
- mathvision: MathLLMs/MathVision (data/test-*.parquet, data/testmini-*.parquet): id,
  question, options (a list; empty for free-form), image (a path), decoded_image, answer (a
  letter, or the value), solution, level, subject (lmms-eval tasks/mathvision/utils.py).
- wemath: We-Math/We-Math (testmini): ID, split, knowledge concept, question, option (one
  string, `A. 300, 400;B. 400, 300;...; E. No correct answer`), answer (a letter),
  image_path (the image), key, question number (lmms-eval tasks/wemath, and the authors'
  data/testmini.json on GitHub).
- mmmu: MMMU/MMMU (<Subject>/validation-*.parquet): id, question, options (a Python list as a
  string), explanation, image_1 .. image_7, img_type, answer (a letter, or the value of an
  `open` item), topic_difficulty, question_type (multiple-choice / open), subfield (its
  dataset card). `<image 1>` is kept in the question as MMMU writes it.

An image cell is a Hugging Face Image struct {bytes, path}, raw bytes, or a path (relative to
the parquet file's folder). Bytes are written once into an image cache under the SHA-256 of
their bytes, decoded first, as RefCOCO's parquet loader writes them (dcsft.data.refcoco_parquet).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dcsft.data import math_items as items
from dcsft.data.records import Skip, image_problem
from dcsft.data.refcoco import BadRef
from dcsft.data.refcoco_parquet import cached_image, open_parquet
from dcsft.errors import DataError


def _first_image(*columns: str) -> Callable[[dict], list]:
    """One image, from the first of `columns` that holds one (MathVista's decoded_image, else its
    image path)."""

    def images(row: dict) -> list:
        for column in columns:
            if present(row.get(column)):
                return [row[column]]
        return []

    return images


def _every_image(*columns: str) -> Callable[[dict], list]:
    def images(row: dict) -> list:
        return [row[c] for c in columns if present(row.get(c))]

    return images


@dataclass(frozen=True)
class Layout:
    name: str  # meta.source, and the OOD split it is by default
    title: str  # in messages
    pattern: str  # its parquet files under data.root (a glob; ** is any folders)
    id_column: str
    needed: tuple[str | tuple[str, ...], ...]  # columns it reads (a tuple: one of them)
    optional: tuple[str, ...]  # columns read where present
    image_columns: tuple[str, ...]
    images: Callable[[dict], list]  # the row's image cells, in the row's order
    item: Callable[[dict], items.Item]

    def columns(self, names: list[str]) -> list[str]:
        """The columns to read of a file with `names`, or DataError naming those missing."""
        missing = [
            "/".join(need) if isinstance(need, tuple) else need
            for need in self.needed
            if not any(c in names for c in (need if isinstance(need, tuple) else (need,)))
        ]
        if missing:
            raise DataError(
                f"not a {self.title} file: no column {', '.join(missing)} (the {self.name} layout; "
                f"columns found: {', '.join(names)})"
            )
        wanted = [self.id_column, *(c for n in self.needed for c in (n if isinstance(n, tuple) else (n,)))]
        wanted += [*self.optional, *self.image_columns]
        return [c for c in dict.fromkeys(wanted) if c in names]


MMMU_IMAGES = tuple(f"image_{i}" for i in range(1, 8))
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "mmk12",
            "MMK12",
            "mmk12/**/train-*.parquet",
            "id",
            ("id", "question", "answer", "image"),
            ("subject",),
            ("image",),
            _first_image("image"),
            items.mmk12_item,
        ),
        Layout(
            "mathvista",
            "MathVista",
            "mathvista/**/testmini-*.parquet",
            "pid",
            (
                "pid",
                "question",
                "choices",
                "answer",
                "question_type",
                "answer_type",
                ("decoded_image", "image"),
            ),
            ("unit", "precision", "metadata"),
            ("decoded_image", "image"),
            _first_image("decoded_image", "image"),
            items.mathvista_item,
        ),
        Layout(
            "mathverse",
            "MathVerse",
            "mathverse/**/testmini.parquet",
            "sample_index",
            ("sample_index", "question", "answer", "question_type", "image"),
            ("problem_version", "problem_index", "metadata"),
            ("image",),
            _first_image("image"),
            items.mathverse_item,
        ),
        Layout(
            "mathvision",
            "MathVision",
            "mathvision/**/test-*.parquet",
            "id",
            ("id", "question", "options", "answer", ("decoded_image", "image")),
            ("subject", "level"),
            ("decoded_image", "image"),
            _first_image("decoded_image", "image"),
            items.mathvision_item,
        ),
        Layout(
            "wemath",
            "WeMath",
            "wemath/**/testmini*.parquet",
            "ID",
            ("ID", "question", "option", "answer", "image_path"),
            ("key", "knowledge concept"),
            ("image_path",),
            _first_image("image_path"),
            items.wemath_item,
        ),
        Layout(
            "mmmu",
            "MMMU",
            "mmmu/**/validation-*.parquet",
            "id",
            ("id", "question", "options", "answer", "question_type", "image_1"),
            ("subfield", "topic_difficulty", "img_type"),
            MMMU_IMAGES,
            _every_image(*MMMU_IMAGES),
            items.mmmu_item,
        ),
    )
}


# ---------------------------------------------------------------- reading the files


def present(cell: object) -> bool:
    """Whether an image cell holds an image (bytes or a path)."""
    if isinstance(cell, dict):
        return bool(cell.get("bytes")) or bool(cell.get("path"))
    return bool(cell)


def expand(pattern: Path) -> list[Path]:
    """The files of a path: itself, a folder's *.parquet (recursively), or a glob's matches."""
    parts = pattern.parts
    wild = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), None)
    if wild is None:
        return sorted(pattern.rglob("*.parquet")) if pattern.is_dir() else [pattern]
    return sorted(p for p in Path(*parts[:wild]).glob("/".join(parts[wild:])) if p.is_file())


def layout_parquet(path: Path, layout: Layout):
    """The ParquetFile and the layout's columns in it, or a one-line DataError naming the file."""
    parquet = open_parquet(path)
    try:
        return parquet, layout.columns(parquet.schema_arrow.names)
    except DataError as err:
        raise DataError(f"{path}: {err}") from None


def _cells(array, with_bytes: bool) -> list:
    """An image column's cells; without bytes, a struct's bytes become True (present) or None, so
    that reading a file for its text does not load its images into Python."""
    import pyarrow as pa

    if with_bytes:
        return array.to_pylist()
    kind = array.type
    if pa.types.is_struct(kind):
        names = [kind.field(i).name for i in range(kind.num_fields)]
        valid = array.is_valid().to_pylist()
        has = array.field("bytes").is_valid().to_pylist() if "bytes" in names else [False] * len(array)
        paths = array.field("path").to_pylist() if "path" in names else [None] * len(array)
        return [
            {"bytes": True if b else None, "path": p} if v else None for v, b, p in zip(valid, has, paths)
        ]
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return [True if v else None for v in array.is_valid().to_pylist()]
    return array.to_pylist()


def rows(
    path: Path, parquet, columns: list[str], images: tuple[str, ...], with_bytes: bool
) -> Iterator[dict]:
    """The rows of a file as dicts, streamed in batches (a file can hold GBs of images)."""
    try:
        for batch in parquet.iter_batches(batch_size=64, columns=columns):
            table = {
                name: _cells(batch.column(name), with_bytes)
                if name in images
                else batch.column(name).to_pylist()
                for name in batch.schema.names
            }
            for index in range(batch.num_rows):
                yield {name: values[index] for name, values in table.items()}
    except DataError:
        raise
    except Exception as err:  # a corrupt row group shows up only while reading it
        raise DataError(f"{path}: cannot read rows ({type(err).__name__}: {err})".splitlines()[0]) from None


@dataclass
class Row:
    """A usable row, its record made but its image not yet read (`image`: the cell, bytes left out)."""

    file: Path
    index: int
    record: dict
    image: object


@dataclass
class Parsed:
    """What a layout's files give before their images are read."""

    files: list[Path]
    rows: list[Row] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)  # bad input
    unsupported: list[Skip] = field(default_factory=list)  # left out, reason "unsupported (kind): ..."
    kinds: dict[str, int] = field(default_factory=dict)  # unsupported per kind
    total: int = 0

    def answer_types(self) -> dict[str, int]:
        counts = {"choice": 0, "numeric": 0}
        for row in self.rows:
            counts[row.record["meta"]["answer_type"]] += 1
        return counts


def record_of(layout: Layout, item: items.Item, record_id: str) -> dict:
    meta = {
        **item.meta,
        "source": layout.name,
        "question": item.question,
        "options": item.options,
        "answer_type": item.answer_type,
        "answer": item.answer,
    }
    return {
        "id": record_id,
        "image": "",
        "problem": problem_text(meta),
        "solution": item.answer,
        "meta": meta,
    }


def problem_text(meta: dict) -> str:
    """The question with its lettered options: the record's problem until prepare words it with
    the task's template (`prompts.reasoning`)."""
    lines = [f"{items.LETTERS[i]}. {option}" for i, option in enumerate(meta["options"])]
    return "\n".join([meta["question"], *lines])


def parse(layout: Layout, files: list[Path], prefix: str) -> Parsed:
    """Every row of the files, without reading image bytes: usable rows, bad input, unsupported."""
    out = Parsed(files)
    for path in files:
        parquet, columns = layout_parquet(path, layout)
        for index, row in enumerate(rows(path, parquet, columns, layout.image_columns, with_bytes=False)):
            out.total += 1
            raw_id = row.get(layout.id_column)
            record_id = f"{prefix}-{raw_id if raw_id not in (None, '') else f'{path.stem}-{index}'}"
            try:
                cells = layout.images(row)
                if len(cells) > 1:
                    raise items.Unsupported(
                        "several images",
                        f"{len(cells)} images; a record carries one (the first is not enough)",
                    )
                if not cells:
                    raise items.BadItem("no image")
                item = layout.item(row)
            except items.Unsupported as why:
                out.unsupported.append(Skip(str(path), index, record_id, str(why)))
                out.kinds[why.kind] = out.kinds.get(why.kind, 0) + 1
                continue
            except items.BadItem as bad:
                out.skipped.append(Skip(str(path), index, record_id, str(bad)))
                continue
            out.rows.append(Row(path, index, record_of(layout, item, record_id), cells[0]))
    return out


def image_paths(parsed: Parsed) -> tuple[list[Path], int]:
    """The image files the rows point at (paths, relative to their parquet file's folder) and how
    many rows carry their image's bytes inside the file."""
    paths, inside = [], 0
    for row in parsed.rows:
        data, path = _bytes_and_path(row.image)
        if data:
            inside += 1
        else:
            paths.append(_path_of(path, row.file))
    return paths, inside


def _bytes_and_path(cell: object) -> tuple[object, object]:
    if isinstance(cell, dict):
        return cell.get("bytes"), cell.get("path")
    if isinstance(cell, (bytes, bytearray)) or cell is True:
        return cell, None
    return None, cell


def _path_of(path: object, file: Path) -> Path:
    path = Path(str(path))
    return path if path.is_absolute() else (file.parent / path).absolute()


def read_images(
    layout: Layout, wanted: list[Row], cache: Path, known: dict
) -> dict[tuple[Path, int], tuple[str | None, str | None]]:
    """(file, row index) -> (the image path, None) of each wanted row, its bytes written once into
    `cache`, or (None, why its image cannot be used)."""
    out: dict[tuple[Path, int], tuple[str | None, str | None]] = {}
    by_file: dict[Path, set[int]] = {}
    for row in wanted:
        by_file.setdefault(row.file, set()).add(row.index)
    for path, indices in by_file.items():
        parquet, columns = layout_parquet(path, layout)
        image_columns = [c for c in columns if c in layout.image_columns]
        for index, row in enumerate(
            rows(path, parquet, image_columns, layout.image_columns, with_bytes=True)
        ):
            if index in indices:
                out[(path, index)] = _image(layout.images(row)[0], path, cache, known)
    return out


def _image(cell: object, file: Path, cache: Path, known: dict) -> tuple[str | None, str | None]:
    data, path = _bytes_and_path(cell)
    if data:
        try:
            return cached_image(bytes(data), cache, known)[0], None
        except BadRef as bad:
            return None, str(bad)
    where = _path_of(path, file)
    problem = image_problem(where)
    return (None, problem) if problem else (str(where), None)
