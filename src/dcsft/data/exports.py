"""A curated bucket for the RL and SFT stacks that read their own formats, with each sample's
bucket and pass rate (from 04_curate/assignments.jsonl) beside its record.

Reads: 01_prepare/records/train.json, its images, 04_curate/assignments.jsonl.
Writes: `--out` only: a `.parquet` file (`verl`) or a `datasets` folder (`hf`), each in place at
once (a temporary sibling renamed into place), images embedded so the output can be moved.

Formats:
- `verl`: one parquet file in the layout verl's multimodal example writes and verl's
  `RLHFDataset` reads, which EasyR1 reads too (its examples' `data.prompt_key=problem`).
  Sources read for it (GitHub):
  volcengine/verl `examples/data_preprocess/geo3k.py` (the columns data_source, prompt,
  images, ability, reward_model {style: rule, ground_truth}, extra_info {split, index,
  answer, question}; docs/preparation/prepare_data.rst), volcengine/verl
  `verl/utils/dataset/rl_dataset.py` (`_build_messages`: prompt_key "prompt" holds chat
  messages whose text content has one "<image>" per entry of image_key "images"; an image is a
  PIL image or a dict with "bytes" -- a plain path is refused), hiyouga/EasyR1
  `verl/utils/dataset.py` (`RLHFDataset` splits the *string* under prompt_key on "<image>",
  reads answer_key "answer" as the ground truth, image_key "images" as dicts with "bytes",
  bytes or paths) and `examples/config.yaml` (prompt_key: problem, answer_key: answer,
  image_key: images; the code's own default prompt_key is "prompt", verl's list of messages).
  Hence both sets of columns: verl's `prompt` (messages), `reward_model`, `data_source`,
  `ability`, `extra_info`; EasyR1's `problem` ("<image>" + the problem) and `answer`; and the
  shared `images`, a list of `{bytes, path}` structs as the HF `Image` feature stores them.
  No column means one thing to one reader and another to the other. The file carries no HF
  features metadata: any `datasets` version (and pandas) reads the images as `{bytes, path}`
  dicts, which both loaders decode.
- `hf`: a `datasets.Dataset.save_to_disk` folder for TRL and open-r1: the record's `id`,
  `image` (the `Image` feature), `problem`, `solution`, `meta` (JSON text), the curation's
  `bucket`, `pass_count`, `k`, `pass_rate`, and TRL's conversational `prompt` / `completion`
  (text content; TRL's SFTTrainer and GRPOTrainer put the `image` in the user turn), so
  `load_from_disk` feeds SFTTrainer (answer-only loss) or GRPOTrainer (`problem` / `solution`
  are open-r1's default prompt and answer columns) as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dcsft.data.records import image_problem, read_json, resolve_image
from dcsft.errors import DataError
from dcsft.prepared import curated_records
from dcsft.rundir import RunDir, atomic_path
from dcsft.stage import upstream

EXPORTS = ("verl", "hf")
IMAGE = "<image>"  # the placeholder verl and EasyR1 replace by the row's image
BATCH = 256  # rows per parquet row group: bounds the image bytes held in memory

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
IMAGES = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
VERL_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", MESSAGES),
        ("images", IMAGES),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("split", pa.string()),
                    ("index", pa.int64()),
                    ("id", pa.string()),
                    ("bucket", pa.string()),
                    ("pass_count", pa.int64()),
                    ("k", pa.int64()),
                    ("pass_rate", pa.float64()),
                    ("answer", pa.string()),
                    ("question", pa.string()),
                ]
            ),
        ),
        ("problem", pa.string()),  # EasyR1's prompt_key
        ("answer", pa.string()),  # EasyR1's answer_key
    ]
)


def curated_rows(rundir: RunDir, bucket: str) -> list[dict]:
    """The records of `bucket` ("all": every curated one), each with its assignment's `bucket`,
    `pass_count`, `k` and `pass_rate` (the assignment's own, else pass_count / k). A chosen
    record whose image is gone is a one-line DataError naming it."""
    upstream(rundir.curate)
    assignments = read_json(rundir.assignments_file)
    chosen = [a for a in assignments if isinstance(a, dict) and bucket in ("all", a.get("bucket"))]
    check_images(rundir, {a.get("id") for a in chosen})
    records = curated_records(rundir, bucket)
    by_id = {a["id"]: a for a in assignments}
    rows = []
    for record in records:
        given = by_id[record["id"]]
        passed, k = given.get("pass_count"), given.get("k")
        rate = given.get("pass_rate", passed / k if isinstance(passed, int) and k else None)
        rows.append(
            {**record, "bucket": given.get("bucket"), "pass_count": passed, "k": k, "pass_rate": rate}
        )
    return rows


def check_images(rundir: RunDir, ids: set) -> None:
    """A DataError naming the first of the records `ids` whose image does not open. (Reading
    the split would skip it with a warning, and the export would then end on "curated ids are
    not in the records": one line that names the record and its image says more.)"""
    path = rundir.records("train")
    records = read_json(path)
    for record in records if isinstance(records, list) else []:
        if isinstance(record, dict) and record.get("id") in ids and isinstance(record.get("image"), str):
            problem = image_problem(resolve_image(record["image"], path.parent), decode=False)
            if problem:
                raise DataError(
                    f"record {record['id']}: {problem}; rerun `dcsft prepare` or restore the file"
                )


def task_name(rundir: RunDir) -> str | None:
    """The run's task, as prepare recorded it (read_split needs it too), or None."""
    try:
        task = json.loads((rundir.prepare.root / "stats.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if isinstance(task, str) else None


def image_struct(row: dict) -> dict:
    """`{bytes, path}` of a row's image as the HF `Image` feature embeds it (path: the file
    name); a missing or unreadable image is a one-line DataError naming the record."""
    path = Path(row["image"])
    problem = image_problem(path, decode=False)
    if problem is None:
        try:
            return {"bytes": path.read_bytes(), "path": path.name}
        except OSError as err:
            problem = f"image cannot be read: {path} ({err.strerror or type(err).__name__})"
    raise DataError(f"record {row['id']}: {problem}; rerun `dcsft prepare` or restore the file")


def with_placeholder(problem: str) -> str:
    """The problem with one image placeholder (in front, as ms-swift's export puts it)."""
    return problem if IMAGE in problem else IMAGE + problem


def verl_row(row: dict, index: int, task: str | None) -> dict:
    prompt = with_placeholder(row["problem"])
    return {
        "data_source": f"dcsft/{task}" if task else "dcsft",
        "prompt": [{"role": "user", "content": prompt}],
        "images": [image_struct(row)],
        "ability": task or "vision",
        "reward_model": {"style": "rule", "ground_truth": row["solution"]},
        "extra_info": {
            "split": "train",
            "index": index,
            "id": row["id"],
            "bucket": row["bucket"],
            "pass_count": row["pass_count"],
            "k": row["k"],
            "pass_rate": row["pass_rate"],
            "answer": row["solution"],
            "question": row["problem"],
        },
        "problem": prompt,
        "answer": row["solution"],
    }


def export_verl(rows: list[dict], path: Path, task: str | None = None) -> int:
    """Write `rows` (curated_rows) to the parquet file `path` in verl's / EasyR1's layout."""
    path = Path(path)
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, VERL_SCHEMA) as writer:
        for start in range(0, len(rows), BATCH):
            batch = [verl_row(row, start + i, task) for i, row in enumerate(rows[start : start + BATCH])]
            writer.write_table(pa.Table.from_pylist(batch, schema=VERL_SCHEMA))
        if not rows:
            writer.write_table(VERL_SCHEMA.empty_table())
    return len(rows)


def hf_features():
    import datasets

    text = datasets.Value("string")
    turn = datasets.List({"role": text, "content": text})
    return datasets.Features(
        {
            "id": text,
            "image": datasets.Image(),
            "problem": text,
            "solution": text,
            "meta": text,
            "bucket": text,
            "pass_count": datasets.Value("int64"),
            "k": datasets.Value("int64"),
            "pass_rate": datasets.Value("float64"),
            "prompt": turn,
            "completion": turn,
        }
    )


def hf_examples(rows: list[dict]) -> Iterator[dict]:
    for row in rows:
        yield {
            "id": row["id"],
            "image": image_struct(row),
            "problem": row["problem"],
            "solution": row["solution"],
            "meta": json.dumps(row["meta"], ensure_ascii=False, sort_keys=True) if "meta" in row else None,
            "bucket": row["bucket"],
            "pass_count": row["pass_count"],
            "k": row["k"],
            "pass_rate": row["pass_rate"],
            "prompt": [{"role": "user", "content": row["problem"]}],
            "completion": [{"role": "assistant", "content": row["solution"]}],
        }


def is_dataset_folder(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() and (folder / "state.json").is_file()


def export_hf(rows: list[dict], folder: Path) -> int:
    """Write `rows` (curated_rows) as a `datasets` folder at `folder`: saved into a temporary
    sibling, then renamed into place (replacing an earlier export there; any other existing
    file or folder is refused)."""
    import datasets

    folder = Path(folder)
    if folder.exists() and not (folder.is_dir() and (is_dataset_folder(folder) or not any(folder.iterdir()))):
        what = "a file" if not folder.is_dir() else "a folder that is not a saved dataset"
        raise DataError(f"--out {folder}: is {what}; remove it or pick another name")
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.*.tmp"):  # left by an export that was killed
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        datasets.disable_progress_bars()
        features = hf_features()
        if rows:
            try:
                dataset = datasets.Dataset.from_generator(
                    hf_examples, features=features, gen_kwargs={"rows": rows}, cache_dir=str(work / "cache")
                )
            except datasets.exceptions.DatasetGenerationError as err:  # wraps a missing image's DataError
                cause = err.__cause__
                raise (cause if isinstance(cause, DataError | OSError) else err) from None
        else:
            empty = datasets.table.InMemoryTable(features.arrow_schema.empty_table())
            dataset = datasets.Dataset(empty, info=datasets.DatasetInfo(features=features))
        dataset.save_to_disk(str(work / "dataset"), num_shards=1 if not rows else None)
        del dataset  # let go of the cache files before they are removed
        old = work / "old"
        if folder.exists():
            os.replace(folder, old)
        os.replace(work / "dataset", folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(rows)


def export_curated(rundir: RunDir, bucket: str, fmt: str, out: Path) -> int:
    """Export `bucket` of `rundir` to `out` in `fmt` (one of EXPORTS); returns how many."""
    if fmt not in EXPORTS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(EXPORTS)}")
    rows = curated_rows(rundir, bucket)
    if fmt == "verl":
        return export_verl(rows, out, task_name(rundir))
    return export_hf(rows, out)
