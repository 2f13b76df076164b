"""The paper's exact ImageNet splits, from a manifest shipped with dcsft.

Reads: the authors' released lists (byyx666/DC-SFT `data/`, kept in this project as
`shared/paper-data/*.json.gz`; plain `.json` works too) to build the manifest once, and the
manifest plus a user's dataset root to import the splits.
Writes: `dcsft/assets/paper/imagenet_manifest.csv.gz` and `imagenet_names.txt`
(`dcsft build-manifest SRC_DIR [OUT_DIR]` rebuilds both).

Manifest: one CSV row per image, `split,file,wnid,name,bucket_3b,bucket_7b`, in the
authors' order. Splits: coldstart (400), train (9,600), val (the ID test, 5,000), imagenet-r
(10,741) and imagenet-a (3,015). `file` is the authors' path from the split folder on,
relative to a dataset root laid out as

    ROOT/train/<wnid>/<file>.JPEG        (cold start and training images)
    ROOT/val/<wnid>/<file>.JPEG          (or a flat ROOT/val/<file>.JPEG)
    ROOT/imagenet-r/<wnid>/<file>        (the authors had Imagenet-R/images/<wnid>/)
    ROOT/imagenet-a/<wnid>/<file>

and any of those folders can be put elsewhere with `roots`. `bucket_3b` / `bucket_7b` hold
the authors' difficulty bucket of each training image for Qwen2.5-VL-3B / 7B, in dcsft's
words (easy / medium / hard; the authors' files say "middle").

The authors' ImageNet-R and ImageNet-A lists are mostly of classes the model is not trained
on: 16 of ImageNet-R's 68 classes and 24 of ImageNet-A's 87 are among the 100 training
classes (the names file therefore holds 186 classes).

Record ids are `dcsft.data.imagenet.record_id`'s `<split>/<wnid>/<file name>`, so profiles
and buckets of the same images compare with the authors' and across machines.

Example:
    splits = import_paper_splits(MANIFEST, "/data/imagenet")   # {"train": LoadedRecords, ...}
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path, PurePosixPath

from dcsft.data.imagenet import PAPER_ASSETS, record_id
from dcsft.data.records import LoadedRecords, Skip, read_json
from dcsft.errors import DataError
from dcsft.rundir import atomic_path
from dcsft.tasks.classification import PROMPT

MANIFEST = PAPER_ASSETS / "imagenet_manifest.csv.gz"
NAMES = PAPER_ASSETS / "imagenet_names.txt"
COLUMNS = ("split", "file", "wnid", "name", "bucket_3b", "bucket_7b")
SPLIT_FILES = {
    "coldstart": "imagenet_cold_sft.json.gz",
    "train": "imagenet_left_sft.json.gz",
    "val": "imagenet_val_processed.json.gz",
    "imagenet-r": "imagenet-r_val_processed.json.gz",
    "imagenet-a": "imagenet-a_val_processed.json.gz",
}
SPLITS = tuple(SPLIT_FILES)
# The folder under the dataset root that holds each split's images (the cold start is drawn from train).
SPLIT_FOLDER = {
    "coldstart": "train",
    "train": "train",
    "val": "val",
    "imagenet-r": "imagenet-r",
    "imagenet-a": "imagenet-a",
}
SIZES = ("3b", "7b")
AUTHORS_BUCKETS = {"easy": "easy", "middle": "medium", "hard": "hard"}  # their file names -> dcsft's buckets
SHOWN_MISSING = 3


def source_file(src_dir: Path, name: str) -> Path:
    """The released list `name` (.json.gz) in src_dir, or its uncompressed .json."""
    gz, plain = Path(src_dir) / name, Path(src_dir) / name.removesuffix(".gz")
    if gz.exists() or not plain.exists():
        return gz
    return plain


def bucket_file_name(authors_bucket: str, size: str) -> str:
    return f"imagenet_{authors_bucket}_sft_{size}.json.gz"


def image_and_answer(item: object, path: Path, index: int) -> tuple[str, str]:
    """(image path, answer) of an authors' record in either of their formats."""
    if (
        isinstance(item, dict)
        and isinstance(item.get("images"), list)
        and isinstance(item.get("messages"), list)
    ):
        answers = [
            m.get("content") for m in item["messages"] if isinstance(m, dict) and m.get("role") == "assistant"
        ]
        if item["images"] and answers:
            return str(item["images"][0]), str(answers[-1])
    if (
        isinstance(item, dict)
        and isinstance(item.get("image"), str)
        and isinstance(item.get("solution"), str)
    ):
        return item["image"], item["solution"]
    raise DataError(f"{path}: record {index}: neither a problem/solution/image nor a messages/images record")


def relative_file(authors_path: str, split: str) -> str:
    """The authors' absolute path from the split folder on: `/data/dataset/Imagenet/train/n01/x.JPEG`
    -> `train/n01/x.JPEG`, `/data/dataset/Imagenet-R/images/n01/art_1.jpg` -> `imagenet-r/n01/art_1.jpg`
    (every released path ends in `<wnid>/<file>`)."""
    parts = PurePosixPath(authors_path.replace("\\", "/")).parts
    if len(parts) < 2:
        raise DataError(f"image path {authors_path!r} does not end in <wnid>/<file>")
    return f"{SPLIT_FOLDER[split]}/{parts[-2]}/{parts[-1]}"


def read_list(src_dir: Path, name: str) -> list[tuple[str, str]]:
    path = source_file(src_dir, name)
    items = read_json(path)
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a JSON list of records, found {type(items).__name__}")
    return [image_and_answer(item, path, index) for index, item in enumerate(items)]


def authors_bucket_lists(src_dir: Path, train_files: set[str]) -> dict[str, dict[str, str]]:
    """size -> training file -> dcsft bucket, checked to split the training set exactly."""
    buckets: dict[str, dict[str, str]] = {}
    for size in SIZES:
        of_file: dict[str, str] = {}
        for authors, ours in AUTHORS_BUCKETS.items():
            name = bucket_file_name(authors, size)
            for image, _ in read_list(src_dir, name):
                file = relative_file(image, "train")
                if file not in train_files:
                    raise DataError(f"{source_file(src_dir, name)}: {image} is not in the training set")
                if file in of_file:
                    raise DataError(
                        f"{source_file(src_dir, name)}: {image} is also in the {of_file[file]} bucket"
                    )
                of_file[file] = ours
        unbucketed = train_files - set(of_file)
        if unbucketed:
            raise DataError(
                f"{src_dir}: {len(unbucketed)} training images are in no {size} bucket "
                f"(first: {sorted(unbucketed)[0]})"
            )
        buckets[size] = of_file
    return buckets


def manifest_rows(src_dir: Path) -> list[dict]:
    rows, name_of = [], {}
    for split, name in SPLIT_FILES.items():
        for image, answer in read_list(src_dir, name):
            file = relative_file(image, split)
            wnid = file.split("/")[1]
            if name_of.setdefault(wnid, answer) != answer:
                raise DataError(
                    f"{source_file(src_dir, name)}: {wnid} is named {answer!r} here and "
                    f"{name_of[wnid]!r} elsewhere"
                )
            rows.append({"split": split, "file": file, "wnid": wnid, "name": answer})
    train_files = {r["file"] for r in rows if r["split"] == "train"}
    buckets = authors_bucket_lists(src_dir, train_files)
    for row in rows:
        for size in SIZES:
            row[f"bucket_{size}"] = buckets[size][row["file"]] if row["split"] == "train" else ""
    return rows


def write_gzip_text(path: Path, text: str) -> None:
    """mtime 0: the same rows give the same bytes, so a rebuilt asset shows no spurious diff."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
        tmp.chmod(0o644)  # a package asset: mkstemp's 0600 would hide it from other users


def build_manifest(src_dir: Path, out_path: Path = MANIFEST) -> int:
    """Write the manifest (gzipped CSV) from the authors' released lists; returns its rows."""
    rows = manifest_rows(Path(src_dir))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_gzip_text(out_path, buffer.getvalue())
    return len(rows)


def build_name_map(manifest: Path = MANIFEST, out_path: Path = NAMES) -> int:
    """Write `wnid name` lines for every class in the manifest; returns how many."""
    rows = read_manifest(manifest)
    names = dict(sorted({r["wnid"]: r["name"] for r in rows}.items()))
    trained = {r["wnid"] for r in rows if r["split"] == "train"}
    header = (
        f"# wnid -> one-word class name as the paper used them (byyx666/DC-SFT data/): the {len(trained)} "
        f"training classes and\n# the classes of its ImageNet-R / ImageNet-A test sets; "
        f"{len(names)} in all. Built by dcsft.data.paper.build_name_map.\n"
    )
    with atomic_path(Path(out_path)) as tmp:
        tmp.write_text(header + "".join(f"{w} {n}\n" for w, n in names.items()), encoding="utf-8")
        tmp.chmod(0o644)
    return len(names)


def read_manifest(manifest: Path = MANIFEST) -> list[dict]:
    manifest = Path(manifest)
    try:
        text = gzip.decompress(manifest.read_bytes()).decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"{manifest}: manifest not found") from None
    except (gzip.BadGzipFile, EOFError, OSError, UnicodeDecodeError) as err:
        raise DataError(f"{manifest}: not a gzipped CSV manifest ({type(err).__name__})") from None
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise DataError(
            f"{manifest}: expected columns {','.join(COLUMNS)}, found {','.join(reader.fieldnames or [])}"
        )
    return list(reader)


def paper_classes(manifest: Path = MANIFEST) -> list[str]:
    """The wnids of the paper's training classes (100)."""
    return sorted({r["wnid"] for r in read_manifest(manifest) if r["split"] == "train"})


def row_id(row: dict) -> str:
    return record_id(row["split"], row["wnid"], row["file"])


def authors_buckets(manifest: Path = MANIFEST, size: str = "3b") -> dict[str, str]:
    """Training record id -> the authors' bucket (easy / medium / hard) for Qwen2.5-VL-`size`."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    return {row_id(r): r[f"bucket_{size}"] for r in read_manifest(manifest) if r["split"] == "train"}


def locate(row: dict, root: Path, roots: dict[str, Path]) -> Path | None:
    """The image of a manifest row under the user's root, or None. A flat val folder is
    accepted too: ImageNet val file names are unique, so `val/<file>` is unambiguous."""
    top, wnid, name = row["file"].split("/", 2)
    base = Path(roots[top]) if top in roots else root / top
    candidates = [base / wnid / name] + ([base / name] if top == "val" else [])
    return next((p for p in candidates if p.is_file()), None)


def import_paper_splits(
    manifest: Path,
    dataset_root: Path | str,
    *,
    roots: dict[str, Path] | None = None,
    splits: tuple[str, ...] = SPLITS,
    missing: str = "error",
) -> dict[str, LoadedRecords]:
    """split -> records of the paper's splits with the images found under `dataset_root`.

    roots: another folder for any of train / val / imagenet-r / imagenet-a (the folder that
    holds its `<wnid>/` folders). missing: "error" (one line: how many images are missing,
    the first few) or "skip" (each missing image a records.Skip)."""
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', not {missing!r}")
    root = Path(dataset_root).absolute()
    if not root.is_dir():
        raise DataError(f"{root}: dataset root does not exist")
    roots = {top: Path(folder).absolute() for top, folder in (roots or {}).items()}
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r}; the paper's splits: {', '.join(SPLITS)}")
    result = {split: LoadedRecords([]) for split in splits}
    absent = []
    rows = read_manifest(manifest)
    for index, row in enumerate(rows):
        if row["split"] not in result:
            continue
        image = locate(row, root, roots)
        if image is None:
            absent.append(row["file"])
            result[row["split"]].skipped.append(
                Skip(str(manifest), index, row_id(row), f"image not found: {row['file']} under {root}")
            )
            continue
        result[row["split"]].records.append(paper_record(row, image))
    if absent and missing == "error":
        listed = sum(len(loaded.records) + len(loaded.skipped) for loaded in result.values())
        raise DataError(
            f"{root}: {len(absent)} of the {listed} images of the paper's "
            f"{', '.join(splits)} splits are missing (first: {', '.join(absent[:SHOWN_MISSING])}); "
            f"expected ROOT/train/<wnid>/, ROOT/val/, ROOT/imagenet-r/<wnid>/, ROOT/imagenet-a/<wnid>/"
        )
    return result


def paper_record(row: dict, image: Path) -> dict:
    meta = {"wnid": row["wnid"], "split": row["split"]}
    if row["split"] == "train":
        meta.update({f"authors_bucket_{size}": row[f"bucket_{size}"] for size in SIZES})
    return {"id": row_id(row), "problem": PROMPT, "solution": row["name"], "image": str(image), "meta": meta}
