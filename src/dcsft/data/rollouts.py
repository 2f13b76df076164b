"""The authors' rollout files, imported as a dcsft profile (and, into an empty run directory, as
its training records too).

Reads: k rollout files, one per sampled draw over the training set (`.json`, or `.json.gz`):
`{"accuracy": float, "results": [{"image", "question", "ground_truth", "model_output",
"extracted_answer", "correct": 0|1}, ...]}`, and the training records they were drawn for.
Writes nothing: `import_rollouts` returns rows in the format of `03_profile/profile.jsonl`
(see dcsft.profiling: id, solution, responses, correct, pass_count, k, pass_rate and token
counts), which `dcsft curate` turns into buckets like a profile dcsft sampled itself;
`build_records` returns the training records of a run directory that has none (dcsft.profiling
writes them as 01_prepare's output).

A sample is its image and its question: the image by its last two path parts
(`<wnid>/<file>`, so the authors' `/data/dataset/Imagenet/train/...` matches the same image
under any dataset root), the question after stripping whitespace and a leading "<image>".
Each draw may list the samples in its own order.

Matched to prepared records: by image key and question, then by file name alone where that is
unique. Results that match no record are counted and named, not guessed at.

Built from nothing (`build_records`): one record per sample, in the first file's order:
`{id: <wnid>/<file> (a further question on the same image: "#2", "#3", ...), image: the
resolved path, problem: the question, solution: the ground truth (a box list as
"[x1, y1, x2, y2]"), meta: {"rollout": {file, index, image}}}`. Image paths are absolute, or
relative to the rollout file's folder; with an image root, a path is looked up under it (a
relative path as it is, then its `<wnid>/<file>`, then its file name). A sample whose image is
missing or does not decode, or whose ground truth the task cannot use, is a counted skip named
on one line; none usable is an error. The task: grounding when every ground truth is a box,
else classification (`rollout_task`).

Bad input is a one-line DataError naming the file and the result index: not JSON, no
`results` list, a result without image / question / correct, `correct` not 0/1 or a
boolean, a sample listed twice, draws over different samples (another image, a different
length), or a sample's ground truth differing between draws; from nothing also a result
without a ground truth, or box ground truths under the classification task.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dcsft.data.records import read_json, record_problem
from dcsft.errors import DataError
from dcsft.rundir import RunDir, fingerprint
from dcsft.rundir import read_json as read_stage_json

RESULT_FIELDS = ("image", "question", "correct")
SHOWN = 3
SOURCE = "rollouts"  # 01_prepare/stats.json `source` of training records built from rollout files

Key = tuple[str, str]  # (image key, question key): one sample


@dataclass
class RolloutProfile:
    rows: list[dict]  # profile.jsonl rows, in training-record order
    k: int  # draws (files)
    unmatched: list[str] = field(default_factory=list)  # rollout samples with no training record
    unprofiled: list[str] = field(default_factory=list)  # training record ids with no rollouts
    label_mismatches: list[str] = field(
        default_factory=list
    )  # ids whose ground_truth differs from the record's
    built: int | None = None  # training records built from the rollouts (None: matched to prepared ones)
    left_out: list[str] = field(default_factory=list)  # built from nothing: samples skipped, one line each

    def summary(self) -> str:
        line = f"{len(self.rows)} samples profiled from {self.k} draws"
        if self.built is not None:
            skipped = f"; {len(self.left_out)} skipped (first: {self.left_out[0]})" if self.left_out else ""
            line = f"{self.built} training records built from the rollouts{skipped}; {line}"
        for what, items in (
            ("rollout samples matched no training record", self.unmatched),
            ("training records have no rollouts", self.unprofiled),
            ("ground truths differ from the record's answer", self.label_mismatches),
        ):
            if items:
                line += f"; {len(items)} {what} (first: {', '.join(items[:SHOWN])})"
        return line


@dataclass
class Rollouts:
    """k draws read and checked to be over the same samples: per draw, sample -> its result
    (`index` in the file, `image`, `ground_truth`, `response`, `correct`)."""

    files: list[Path]
    draws: list[dict[Key, dict]]

    @property
    def k(self) -> int:
        return len(self.files)


def image_key(path: str) -> str:
    """`<wnid>/<file>` of an image path, whatever the dataset root (POSIX or Windows)."""
    return "/".join(PurePosixPath(str(path).replace("\\", "/")).parts[-2:])


def question_key(text: str) -> str:
    return text.strip().removeprefix("<image>").strip()


def correct_value(value: object, path: Path, index: int) -> int:
    # bool is a subclass of int: accept True/False and the integers 0/1 (also 0.0/1.0 floats
    # some JSON writers produce), nothing else.
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
        return int(value)
    raise DataError(f"{path}: results[{index}]: correct must be 0/1 or true/false, found {value!r}")


def read_draw(path: Path) -> dict[Key, dict]:
    """(image key, question) -> {"index", "image", "ground_truth", "response", "correct"} of one
    rollout file, in the file's order."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        found = "an object without a results list" if isinstance(data, dict) else type(data).__name__
        raise DataError(f'{path}: expected a rollout file {{"accuracy", "results": [...]}}, found {found}')
    draw: dict[Key, dict] = {}
    for index, result in enumerate(data["results"]):
        if not isinstance(result, dict):
            raise DataError(f"{path}: results[{index}]: expected an object, found {type(result).__name__}")
        missing = [name for name in RESULT_FIELDS if name not in result]
        if missing:
            raise DataError(f"{path}: results[{index}]: missing field(s) {', '.join(missing)}")
        if not isinstance(result["image"], str) or not isinstance(result["question"], str):
            raise DataError(f"{path}: results[{index}]: image and question must be text")
        key = (image_key(result["image"]), question_key(result["question"]))
        if key in draw:
            raise DataError(
                f"{path}: results[{index}] repeats the sample of results[{draw[key]['index']}] "
                f"({result['image']})"
            )
        draw[key] = {
            "index": index,
            "image": result["image"],
            "ground_truth": result.get("ground_truth"),
            "response": result.get("model_output"),
            "correct": correct_value(result["correct"], path, index),
        }
    return draw


def check_same_samples(draws: list[dict], files: list[Path]) -> None:
    """Every draw lists the samples of the first: the first sample of another (by its position)
    or a sample it lacks is named."""
    first, size = draws[0], len(draws[0])
    for draw, path in zip(draws[1:], files[1:]):
        extra = [result for key, result in draw.items() if key not in first]
        if extra:
            lacking = sum(key not in draw for key in first)
            raise DataError(
                f"{path}: results[{extra[0]['index']}]: draws over different samples: "
                f"{extra[0]['image']} is not in {files[0]} "
                f"({len(extra)} not there, {lacking} of it missing here)"
            )
        if len(draw) != size:
            lacking = next(result for key, result in first.items() if key not in draw)
            raise DataError(
                f"{path}: draws over different samples: {len(draw)} results where {files[0]} has "
                f"{size}; its results[{lacking['index']}] ({lacking['image']}) is missing here"
            )


def truth_key(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def check_same_ground_truths(draws: list[dict], files: list[Path]) -> None:
    """A sample's ground truth is the same in every draw that gives one."""
    for draw, path in zip(draws[1:], files[1:]):
        for key, result in draw.items():
            theirs, ours = draws[0][key]["ground_truth"], result["ground_truth"]
            if theirs is not None and ours is not None and truth_key(theirs) != truth_key(ours):
                raise DataError(
                    f"{path}: results[{result['index']}]: ground truth {ours!r} differs from "
                    f"{theirs!r} in {files[0]} (results[{draws[0][key]['index']}], {result['image']})"
                )


def read_rollouts(files: list[Path]) -> Rollouts:
    """The k rollout files (one per draw), read and checked against each other."""
    files = [Path(f) for f in files]
    if not files:
        raise DataError("no rollout files given")
    draws = [read_draw(path) for path in files]
    check_same_samples(draws, files)
    check_same_ground_truths(draws, files)
    return Rollouts(files, draws)


def box_of(value: object) -> list | None:
    """The box a ground truth is: a list of four numbers, or text that is one (`[x1, y1, x2, y2]`,
    bbox_2d JSON, Qwen2-VL's box tokens); None for anything else (a class name)."""
    from dcsft.tasks import grounding

    if isinstance(value, list) and len(value) == 4:
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        return value if numbers else None
    if isinstance(value, str):
        found = grounding.candidates(value)
        return list(found[0]) if found else None
    return None


def rollout_task(rollouts: Rollouts) -> str:
    """grounding when every ground truth the first draw gives is a box, else classification."""
    truths = [r["ground_truth"] for r in rollouts.draws[0].values() if r["ground_truth"] is not None]
    return "grounding" if truths and all(box_of(t) is not None for t in truths) else "classification"


def match_samples(keys: list[Key], records: list[dict]) -> dict[Key, dict]:
    """(image key, question) of each rollout sample -> its training record, where one matches:
    first by `<wnid>/<file>` and question, then, for samples still unmatched, by file name and
    question where that file name belongs to one record only (flat folders, other layouts)."""
    by_key, by_name, name_count = {}, {}, {}
    for record in records:
        question = question_key(record["problem"])
        by_key[(image_key(record["image"]), question)] = record
        name = (PurePosixPath(record["image"]).name, question)
        name_count[name] = name_count.get(name, 0) + 1
        by_name[name] = record
    matched = {key: by_key[key] for key in keys if key in by_key}
    taken = {record["id"] for record in matched.values()}
    for key in keys:
        name = (PurePosixPath(key[0]).name, key[1])
        record = by_name.get(name) if name_count.get(name) == 1 else None
        if key not in matched and record is not None and record["id"] not in taken:
            matched[key] = record
            taken.add(record["id"])
    return matched


def import_rollouts(
    files: list[Path] | Rollouts,
    records: list[dict],
    matched: dict[Key, dict] | None = None,
    left_out: Collection[Key] = (),
) -> RolloutProfile:
    """Profile rows for the training records from k rollout files (one per draw). `matched`:
    sample -> record where the caller knows it (records built from the rollouts), else matched
    by image and question; `left_out`: samples skipped on purpose, not counted as unmatched."""
    rollouts = files if isinstance(files, Rollouts) else read_rollouts(files)
    draws = rollouts.draws
    if matched is None:
        matched = match_samples(list(draws[0]), records)
    outcomes: dict[str, tuple[list, list]] = {}
    profile = RolloutProfile([], rollouts.k)
    for key, first in draws[0].items():
        record = matched.get(key)
        if record is None:
            if key not in left_out:
                profile.unmatched.append(first["image"])
            continue
        if (
            isinstance(first["ground_truth"], str)
            and first["ground_truth"].strip().lower() != record["solution"].strip().lower()
        ):
            profile.label_mismatches.append(record["id"])
        outcomes[record["id"]] = ([d[key]["response"] for d in draws], [d[key]["correct"] for d in draws])
    for record in records:
        if record["id"] not in outcomes:
            profile.unprofiled.append(record["id"])
            continue
        responses, correct = outcomes[record["id"]]
        profile.rows.append(profile_row(record, responses, correct))
    return profile


def profile_row(
    record: dict, responses: list, correct: list[int], prompt: int = 0, generated: int = 0, forwarded: int = 0
) -> dict:
    """A profile row, sampled (dcsft.profiling) or imported; token counts are unknown for imported
    rollouts (0)."""
    return {
        "id": record["id"],
        "solution": record["solution"],
        "responses": responses,
        "correct": correct,
        "pass_count": sum(correct),
        "k": len(correct),
        "pass_rate": sum(correct) / len(correct),
        "prompt_tokens": prompt,
        "generated_tokens": generated,
        "forwarded_tokens": forwarded,
    }


# ---------------------------------------------------------------- training records from nothing


@dataclass
class BuiltRecords:
    """Training records built from rollout files, each sample's record, and the samples left out."""

    records: list[dict]
    by_key: dict[Key, dict]
    skipped: list[dict] = field(
        default_factory=list
    )  # {file, index, id, reason, key}: one per sample left out

    @property
    def left_out(self) -> list[Key]:
        return [tuple(s["key"]) for s in self.skipped]


def skip_line(skip: dict) -> str:
    return f"{skip['file']}: results[{skip['index']}] ({skip['id']}): {skip['reason']}"


def resolve_rollout_image(image: str, base: Path, image_root: Path | None) -> Path:
    """A rollout's image on this machine: absolute, or relative to `base` (the rollout file's
    folder); under `image_root`, the first of its relative path, its `<wnid>/<file>` and its file
    name that exists there (else the first, to be reported missing)."""
    path = Path(image)
    if image_root is None:
        return path if path.is_absolute() else base / path
    tail = PurePosixPath(image.replace("\\", "/"))
    candidates = [image_root / path] if not path.is_absolute() else []
    candidates += [image_root / image_key(image), image_root / tail.name]
    return next((c for c in candidates if c.exists()), candidates[0])


def solution_text(truth: object, task: str) -> object:
    """A record's solution from a ground truth: a box list as `[x1, y1, x2, y2]` for grounding,
    anything else as it is (the record check names what is wrong with it)."""
    if task == "grounding" and isinstance(truth, list):
        return json.dumps(truth)
    return truth


def build_records(rollouts: Rollouts, task: str, image_root: Path | None = None, check=None) -> BuiltRecords:
    """The training records of the rollouts' samples (see the module docstring); `check` is the
    task's record test (a record it finds a problem with is skipped, like one whose image is
    missing or does not decode)."""
    source, base = rollouts.files[0], rollouts.files[0].absolute().parent
    image_root = image_root.absolute() if image_root is not None else None
    results = list(rollouts.draws[0].items())
    if task == "classification" and rollout_task(rollouts) == "grounding":
        first = results[0][1]
        raise DataError(
            f"{source}: results[{first['index']}]: ground truth {first['ground_truth']!r} is a box: these "
            f"are grounding rollouts; import them with the grounding task (--task grounding)"
        )
    built = BuiltRecords([], {})
    seen: dict[str, int] = {}
    for key, result in results:
        index = result["index"]
        if result["ground_truth"] is None:
            raise DataError(
                f"{source}: results[{index}]: no ground_truth, which a run directory without prepared "
                f"records takes each answer from (or prepare the training records first)"
            )
        name = image_key(result["image"])
        seen[name] = seen.get(name, 0) + 1
        record = {
            "id": name if seen[name] == 1 else f"{name}#{seen[name]}",
            "image": str(resolve_rollout_image(result["image"], base, image_root)),
            "problem": key[1],
            "solution": solution_text(result["ground_truth"], task),
            "meta": {"rollout": {"file": str(source.absolute()), "index": index, "image": result["image"]}},
        }
        problem = record_problem(record, None, base, check, decode=True)
        if problem:
            built.skipped.append(
                {"file": str(source), "index": index, "id": record["id"], "reason": problem, "key": list(key)}
            )
            continue
        built.records.append(record)
        built.by_key[key] = record
    if not built.records:
        hint = (
            "; image paths are absolute or relative to the rollout file: --image-root DIR looks them up "
            "under DIR"
            if all("image not found" in s["reason"] for s in built.skipped)
            else ""
        )
        raise DataError(
            f"none of the {len(results)} rollout samples is usable "
            f"(first: {skip_line(built.skipped[0])}){hint}"
        )
    return built


def records_fingerprint(task: str, records: list[dict]) -> str:
    """01_prepare's fingerprint for training records built from rollouts: their task and content."""
    content = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
    return fingerprint("prepare", SOURCE, task, content)


def built_from_rollouts(rundir: RunDir) -> bool:
    """Whether 01_prepare holds training records that `dcsft import-rollouts` built."""
    try:
        return read_stage_json(rundir.prepare.root / "stats.json").get("source") == SOURCE
    except (OSError, ValueError, AttributeError):
        return False


def built_fingerprint(rundir: RunDir) -> str | None:
    """The fingerprint of 01_prepare's records built from rollouts, from its files (None if they
    are not such records or cannot be read): what `dcsft prepare` and `dcsft status` take as
    current, so that a study keeps them instead of preparing its configured data over them."""
    if not built_from_rollouts(rundir):
        return None
    try:
        task = read_stage_json(rundir.prepare.root / "stats.json")["task"]
        return records_fingerprint(task, read_stage_json(rundir.records("train")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
