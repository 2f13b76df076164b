"""Compare two difficulty bucketings of the same samples, sample by sample.

Reads (`load_buckets`), id -> bucket from any of:
- a dcsft run directory: its `04_curate/assignments.jsonl` (id, bucket), or, before curate
  has run, `03_profile/profile.jsonl` (bucketed as curate would: dcsft.curate.bucket_of_row with
  the run's `curate` settings from its config.yaml, else the default rule);
- one of those two files directly;
- a folder with the authors' bucket lists `imagenet_{easy,middle,hard}_sft_<size>.json[.gz]`
  (ids derived from the image paths as dcsft.data.paper derives them);
- the manifest shipped with dcsft (`paper:3b`, `paper:7b`, or a manifest path + `size`).
Writes nothing. `compare_buckets` gives the 3 x 3 confusion matrix, agreement and Cohen's
kappa over the ids both sides hold, and counts the ids only one side holds;
`format_comparison` renders that as a small markdown table.

Example: compare_buckets(load_buckets("runs/imagenet-3b"), load_buckets("paper:3b"))
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from dcsft.config import CurateConfig, problem
from dcsft.config_files import merge
from dcsft.curate import BUCKETS, bucket_of_row
from dcsft.data.imagenet import record_id
from dcsft.data.paper import (
    AUTHORS_BUCKETS,
    MANIFEST,
    SIZES,
    authors_buckets,
    bucket_file_name,
    relative_file,
)
from dcsft.data.records import read_json
from dcsft.errors import DataError
from dcsft.rundir import RunDir

ALIASES = {"middle": "medium"}  # the authors' word for the medium bucket


def normalise_bucket(bucket: object, where: str) -> str:
    name = ALIASES.get(str(bucket).strip().lower(), str(bucket).strip().lower())
    if name not in BUCKETS:
        raise DataError(f"{where}: unknown bucket {bucket!r} (expected one of {', '.join(BUCKETS)})")
    return name


def cohens_kappa(matrix: list[list[int]]) -> float | None:
    """(p_o - p_e) / (1 - p_e) with p_o the observed agreement and p_e the agreement expected
    from the two sides' marginals; None when p_e = 1 (both sides put everything in one bucket)."""
    n = sum(map(sum, matrix))
    if n == 0:
        return None
    observed = sum(matrix[i][i] for i in range(len(matrix))) / n
    rows = [sum(row) for row in matrix]
    cols = [sum(col) for col in zip(*matrix)]
    expected = sum(r * c for r, c in zip(rows, cols)) / n**2
    return None if expected == 1 else (observed - expected) / (1 - expected)


def compare_buckets(a: dict[str, str], b: dict[str, str]) -> dict:
    """Confusion matrix (rows: a's bucket, columns: b's, in BUCKETS order), agreement, Cohen's
    kappa and per-side proportions over the ids in both; ids only in one side counted."""
    both = [i for i in a if i in b]
    index = {bucket: n for n, bucket in enumerate(BUCKETS)}
    matrix = [[0] * len(BUCKETS) for _ in BUCKETS]
    for i in both:
        matrix[index[normalise_bucket(a[i], f"id {i}")]][index[normalise_bucket(b[i], f"id {i}")]] += 1
    n = len(both)
    agreed = sum(matrix[k][k] for k in range(len(BUCKETS)))
    kappa = cohens_kappa(matrix)
    return {
        "buckets": list(BUCKETS),
        "matrix": matrix,
        "n": n,
        "agreement": agreed / n if n else None,
        "kappa": kappa,
        "a_counts": dict(zip(BUCKETS, (sum(row) for row in matrix))),
        "b_counts": dict(zip(BUCKETS, (sum(col) for col in zip(*matrix)))),
        "only_a": sum(1 for i in a if i not in b),
        "only_b": sum(1 for i in b if i not in a),
    }


def format_comparison(result: dict, a_name: str = "A", b_name: str = "B") -> str:
    """The confusion matrix as a markdown table, then one line of agreement, kappa and coverage."""
    buckets, matrix = result["buckets"], result["matrix"]
    lines = [
        f"| {a_name} \\ {b_name} | " + " | ".join(buckets) + " | total |",
        "|---|" + "---:|" * (len(buckets) + 1),
    ]
    for bucket, row in zip(buckets, matrix):
        lines.append(f"| {bucket} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    lines.append("| total | " + " | ".join(str(sum(col)) for col in zip(*matrix)) + f" | {result['n']} |")
    agreement = "n/a" if result["agreement"] is None else f"{100 * result['agreement']:.1f}%"
    kappa = "n/a" if result["kappa"] is None else f"{result['kappa']:.3f}"
    lines.append("")
    lines.append(
        f"{result['n']} samples in both: agreement {agreement}, Cohen's kappa {kappa}; "
        f"{result['only_a']} only in {a_name}, {result['only_b']} only in {b_name}."
    )
    return "\n".join(lines) + "\n"


def read_jsonl_rows(path: Path) -> list[dict]:
    rows = read_json(path)
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "id" in r for r in rows):
        raise DataError(f"{path}: expected JSON lines with an id each")
    return rows


def buckets_of_assignments(path: Path) -> dict[str, str]:
    rows = read_jsonl_rows(path)
    return {r["id"]: normalise_bucket(r.get("bucket"), f"{path}: id {r['id']}") for r in rows}


def run_rule(root: Path) -> CurateConfig:
    """The `curate` settings of the run directory `root`, from the config.yaml a run writes at
    its root (a study of several tasks: the parent's, with the task's overrides); the default
    rule when there is none."""
    for config, task in ((root / "config.yaml", None), (root.parent / "config.yaml", root.name)):
        if not config.exists():
            continue
        try:
            data = yaml.safe_load(config.read_text()) or {}
            tasks = data.get("tasks") or {}
            if task is not None and task not in tasks:
                continue
            section = merge(data.get("curate") or {}, (tasks.get(task) or {}).get("curate") or {})
            return CurateConfig.model_validate(section)
        except (yaml.YAMLError, AttributeError) as err:
            raise DataError(f"{config}: not a dcsft config ({type(err).__name__})") from None
        except ValidationError as err:
            raise DataError(f"{config}: curate.{problem(err.errors()[0])}") from None
    return CurateConfig()


def buckets_of_profile(path: Path, rule: CurateConfig | None = None) -> dict[str, str]:
    buckets = {}
    needs = "scores (or correct)" if rule and rule.rule == "graded" else "pass_count and k"
    for number, row in enumerate(read_jsonl_rows(path), start=1):
        try:
            buckets[row["id"]] = bucket_of_row(row, rule)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
            raise DataError(f"{path}: line {number}: no usable {needs} ({err})") from None
    return buckets


def buckets_of_authors(folder: Path, size: str) -> dict[str, str]:
    """Training id -> bucket from the authors' three bucket lists for one model size."""
    buckets = {}
    for authors, ours in AUTHORS_BUCKETS.items():
        name = bucket_file_name(authors, size)
        path = folder / name if (folder / name).exists() else folder / name.removesuffix(".gz")
        items = read_json(path)
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON list of SFT records")
        for index, item in enumerate(items):
            try:
                image = item["images"][0] if "images" in item else item["image"]
            except (TypeError, KeyError, IndexError):
                raise DataError(f"{path}: record {index}: no image path") from None
            file = relative_file(image, "train")
            buckets[record_id("train", file.split("/")[1], file)] = ours
    return buckets


def has_authors_lists(folder: Path, size: str) -> bool:
    name = bucket_file_name("easy", size)
    return (folder / name).exists() or (folder / name.removesuffix(".gz")).exists()


def load_buckets(path: str | Path, size: str = "3b", rule: CurateConfig | None = None) -> dict[str, str]:
    """id -> bucket (easy / medium / hard) from a run directory, a profile.jsonl or
    assignments.jsonl, a folder of the authors' bucket lists, or a manifest (`paper:3b`,
    `paper:7b`: the one shipped with dcsft); `size` picks the authors' model size, `rule` the
    bucketing of a profile (None: the run's own `curate` settings)."""
    text = str(path)
    if text.startswith("paper:"):
        return authors_buckets(MANIFEST, text.removeprefix("paper:"))
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    path = Path(path)
    if path.is_dir():
        rundir = RunDir(path)
        candidates = (
            (rundir.assignments_file, buckets_of_assignments),
            (rundir.profile_file, lambda file: buckets_of_profile(file, rule or run_rule(path))),
        )
        for candidate, reader in candidates:
            if candidate.exists():
                return reader(candidate)
        if has_authors_lists(path, size):
            return buckets_of_authors(path, size)
        looked = ", ".join(str(candidate.relative_to(path)) for candidate, _ in candidates)
        raise DataError(f"{path}: no {looked} or authors' {bucket_file_name('easy', size)} in it")
    if not path.exists():
        raise DataError(f"{path}: does not exist")
    if path.name.endswith(".csv.gz"):
        return authors_buckets(path, size)
    if path.name.startswith("assignments"):
        return buckets_of_assignments(path)
    if path.name.startswith("profile"):
        in_run = RunDir(path.parent.parent).profile_file == path  # a run's 03_profile/profile.jsonl
        return buckets_of_profile(path, rule or (run_rule(path.parent.parent) if in_run else None))
    raise DataError(
        f"{path}: not a run directory, profile.jsonl, assignments.jsonl, folder of the authors' "
        f"bucket lists or manifest (.csv.gz)"
    )
