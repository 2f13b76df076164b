"""ImageNet-style image folders on disk, read into dcsft records (nothing is written).

Reads:
- class folders `<folder>/<wnid>/<image>`: ImageNet `train/`, a `val/` sorted into class
  folders, ImageNet-R and ImageNet-A (their `<wnid>/` folders);
- a flat ImageNet `val/` folder plus a labels file, either `<file> <wnid>` per line or the
  `LOC_val_solution.csv` layout (`ImageId,PredictionString`, the first token of
  PredictionString being the wnid); files are matched by name without extension;
- a wnid -> one-word class name map: `wnid name` per line (`#` comments allowed) or a JSON
  object. The default, `dcsft/assets/paper/imagenet_names_extended.txt` (NAMES_FILE), names
  482 classes: the paper's 186 (its 100 training classes and the classes of its ImageNet-R and
  ImageNet-A test sets, also alone in `imagenet_names.txt`) and 296 more one-word names from
  torchvision's ImageNet-1K categories, none of them an ImageNet-R / -A class (the file's header
  says how they were chosen).

Each image becomes `{"id": "<split>/<wnid>/<file name>", "problem": PROMPT, "solution": name,
"image": absolute path, "meta": {"wnid", "split"}}`, the authors' record format. The id does
not depend on where the dataset lies, or on whether val is flat or sorted, so profiles and
buckets of the same images compare across machines and with the authors' lists.

Classes are all class folders, a given list of wnids, or n of them drawn with `seed`; with
`per_class`, each class contributes that many images drawn with `seed` (each class from its
own stream, so changing the class list does not change the other classes' draws). The
supplement's 100k setting is `load_split(root / "train", "train", classes=200, per_class=500)`:
200 of the default map's classes.

Bad input is a one-line `DataError` naming the folder or file: a missing folder, a class
without a name, too few images for `per_class`. An image that does not decode is skipped,
counted and replaced by the next drawn image of its class (`bad_images="skip"`, returned as
`records.Skip`), or is an error (`bad_images="error"`).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable
from pathlib import Path

from dcsft.data.records import LoadedRecords, Skip, image_problem
from dcsft.errors import DataError
from dcsft.tasks.classification import PROMPT

PAPER_ASSETS = Path(__file__).resolve().parent.parent / "assets" / "paper"
NAMES_FILE = PAPER_ASSETS / "imagenet_names_extended.txt"  # the paper's 186 names, 296 from torchvision
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp"}
BAD_IMAGE_POLICIES = ("skip", "error")


def read_name_map(path: Path = NAMES_FILE) -> dict[str, str]:
    """wnid -> one-word name from a `wnid name` text file or a JSON object {wnid: name}."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: name map not found") from None
    pairs = json_pairs(text, path) if text.lstrip().startswith("{") else text_pairs(text, path)
    names = {}
    for where, wnid, name in pairs:
        if not name or any(c.isspace() for c in name):
            raise DataError(f"{path}: {where}: the name of {wnid} must be one word, found {name!r}")
        if wnid in names and names[wnid] != name:
            raise DataError(f"{path}: {where}: {wnid} is named both {names[wnid]!r} and {name!r}")
        names[wnid] = name
    return names


def text_pairs(text: str, path: Path) -> list[tuple[str, str, str]]:
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{path}: line {number}: expected `wnid name`, found {line!r}")
        pairs.append((f"line {number}", parts[0], parts[1].strip()))
    return pairs


def json_pairs(text: str, path: Path) -> list[tuple[str, str, str]]:
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise DataError(f"{path}: expected a JSON object {{wnid: name}} with text names")
    return [(f"key {wnid!r}", wnid, name.strip()) for wnid, name in mapping.items()]


def record_id(split: str, wnid: str, image: Path | str) -> str:
    """`<split>/<wnid>/<file name>`: unique within a split, independent of the dataset root."""
    return f"{split}/{wnid}/{Path(image).name}"


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def class_folders(folder: Path) -> dict[str, list[Path]]:
    """wnid -> its image files (sorted by name) for every `<folder>/<wnid>/` class folder."""
    return {
        sub.name: sorted(p for p in sub.iterdir() if is_image(p))
        for sub in sorted(folder.iterdir())
        if sub.is_dir() and not sub.name.startswith(".")
    }


def read_val_labels(path: Path) -> dict[str, str]:
    """File name without extension -> wnid, from `<file> <wnid>` lines or LOC_val_solution.csv."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: labels file not found") from None
    if lines and lines[0].replace(" ", "").startswith("ImageId,PredictionString"):
        return loc_labels(lines, path)
    labels = {}
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or line.lstrip().startswith("#"):
            continue
        if len(parts) != 2:
            raise DataError(f"{path}: line {number}: expected `<file> <wnid>`, found {line.strip()!r}")
        labels[Path(parts[0]).stem] = parts[1]
    return labels


def loc_labels(lines: list[str], path: Path) -> dict[str, str]:
    labels = {}
    for number, row in enumerate(csv.reader(lines), start=1):
        if number == 1 or not row:
            continue
        if len(row) < 2 or not row[1].split():
            raise DataError(
                f"{path}: line {number}: expected `ImageId,PredictionString`, found {','.join(row)!r}"
            )
        labels[Path(row[0]).stem] = row[1].split()[0]
    return labels


def flat_folder(folder: Path, labels: Path) -> dict[str, list[Path]]:
    """wnid -> image files of a flat folder, by the labels file."""
    wnid_of = read_val_labels(labels)
    images = sorted(p for p in folder.iterdir() if is_image(p))
    unlabelled = [p.name for p in images if p.stem not in wnid_of]
    if unlabelled:
        raise DataError(
            f"{labels}: no label for {len(unlabelled)} of the {len(images)} images in {folder} "
            f"(first: {unlabelled[0]})"
        )
    by_class: dict[str, list[Path]] = {}
    for image in images:
        by_class.setdefault(wnid_of[image.stem], []).append(image)
    return dict(sorted(by_class.items()))


def scan(folder: Path, labels: Path | None = None) -> dict[str, list[Path]]:
    """wnid -> image files: class folders, or a flat folder when a labels file is given."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {'not a folder' if folder.exists() else 'folder does not exist'}")
    if labels is not None:
        return flat_folder(folder, Path(labels))
    by_class = class_folders(folder)
    if not by_class:
        loose = sum(1 for p in folder.iterdir() if is_image(p))
        hint = (
            f"{loose} images lie directly in it: pass a labels file for a flat folder"
            if loose
            else "it is empty"
        )
        raise DataError(f"{folder}: no <wnid>/ class folders ({hint})")
    return by_class


def choose_classes(
    available: list[str], classes: int | Iterable[str] | None, seed: int, folder: Path
) -> list[str]:
    """All classes, the given wnids (which must all be present), or n drawn with the seed."""
    if classes is None:
        return sorted(available)
    if isinstance(classes, int):
        if not 0 < classes <= len(available):
            raise DataError(f"{folder}: {classes} classes requested, {len(available)} present")
        return sorted(random.Random(f"classes:{seed}").sample(sorted(available), classes))
    wanted = list(dict.fromkeys(classes))
    absent = [wnid for wnid in wanted if wnid not in available]
    if absent:
        raise DataError(f"{folder}: no images of {len(absent)} requested class(es) (first: {absent[0]})")
    return wanted


def check_names(chosen: list[str], names: dict[str, str], folder: Path, names_source: str) -> None:
    unnamed = [wnid for wnid in chosen if wnid not in names]
    if unnamed:
        raise DataError(
            f"{folder}: class {unnamed[0]} has no name in {names_source} ({len(unnamed)} classes "
            f"unnamed); pass a name map covering them, or choose classes it names"
        )
    seen: dict[str, str] = {}
    for wnid in chosen:
        answer = names[wnid].lower()
        if answer in seen:
            # The verifier compares answers case-insensitively: two classes with one name cannot be
            # told apart.
            raise DataError(f"{names_source}: {seen[answer]} and {wnid} are both named {names[wnid]!r}")
        seen[answer] = wnid


def check_counts(pools: dict[str, list[Path]], per_class: int, folder: Path) -> None:
    short = {wnid: len(pool) for wnid, pool in pools.items() if len(pool) < per_class}
    if short:
        wnid, have = next(iter(short.items()))
        more = f" (and {len(short) - 1} more classes short)" if len(short) > 1 else ""
        raise DataError(f"{folder}/{wnid}: {per_class} samples per class requested, only {have} images{more}")


def draw_class(
    pool: list[Path],
    wnid: str,
    per_class: int | None,
    seed: int,
    split: str,
    folder: Path,
    bad_images: str,
    skipped: list[Skip],
) -> list[Path]:
    """The class's images (all, or `per_class` drawn with the seed) that decode; an image that
    does not is skipped and the next drawn one taken instead, so every class gets per_class."""
    order = pool if per_class is None else random.Random(f"{seed}:{wnid}").sample(pool, len(pool))
    wanted = len(pool) if per_class is None else per_class
    kept, bad = [], 0
    for image in order:
        if len(kept) == wanted:
            break
        problem = image_problem(image)
        if problem is None:
            kept.append(image)
        elif bad_images == "error":
            raise DataError(f"{folder}: {problem}")
        else:
            bad += 1
            # index: the image's place among its class's candidates, sorted by file name
            skipped.append(Skip(str(folder), pool.index(image), record_id(split, wnid, image), problem))
    if per_class is not None and len(kept) < per_class:
        raise DataError(
            f"{folder}/{wnid}: {per_class} samples per class requested, only {len(kept)} of its "
            f"{len(pool)} images usable ({bad} cannot be decoded)"
        )
    return sorted(kept)


def load_split(
    folder: Path,
    split: str,
    *,
    names: dict[str, str] | Path | None = None,
    classes: int | Iterable[str] | None = None,
    per_class: int | None = None,
    seed: int = 0,
    labels: Path | None = None,
    exclude: Iterable[str | Path] = (),
    bad_images: str = "skip",
) -> LoadedRecords:
    """Records of one ImageNet-style split folder (see the module docstring).

    names: a wnid -> name dict or map file (default: NAMES_FILE, shipped with dcsft).
    classes: None (every class folder), wnids, or a number of classes drawn with `seed`.
    per_class: images per class drawn with `seed` (None: all).
    labels: labels file of a flat folder (val). exclude: image paths or record ids to leave
    out (e.g. the cold-start images when drawing the training set from the same folder).
    bad_images: "skip" (count, replace by the next draw) or "error"."""
    if bad_images not in BAD_IMAGE_POLICIES:
        raise ValueError(f"bad_images must be one of {BAD_IMAGE_POLICIES}, not {bad_images!r}")
    folder = Path(folder).absolute()
    names_source = "the given name map" if isinstance(names, dict) else str(names or NAMES_FILE)
    name_of = names if isinstance(names, dict) else read_name_map(names or NAMES_FILE)
    by_class = scan(folder, labels)
    chosen = choose_classes(list(by_class), classes, seed, folder)
    check_names(chosen, name_of, folder, names_source)
    left_out = {str(Path(e).absolute()) if isinstance(e, Path) else e for e in exclude}
    pools = {
        wnid: [
            p for p in by_class[wnid] if str(p) not in left_out and record_id(split, wnid, p) not in left_out
        ]
        for wnid in chosen
    }
    if per_class is not None:
        check_counts(pools, per_class, folder)
    loaded = LoadedRecords([])
    for wnid in chosen:
        for image in draw_class(
            pools[wnid], wnid, per_class, seed, split, folder, bad_images, loaded.skipped
        ):
            loaded.records.append(
                {
                    "id": record_id(split, wnid, image),
                    "problem": PROMPT,
                    "solution": name_of[wnid],
                    "image": str(image),
                    "meta": {"wnid": wnid, "split": split},
                }
            )
    return loaded
