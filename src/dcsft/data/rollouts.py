"""The authors' rollout files, imported as a dcsft profile.

Reads: k rollout files, one per sampled draw over the training set (`.json`, or `.json.gz`):
`{"accuracy": float, "results": [{"image", "question", "ground_truth", "model_output",
"extracted_answer", "correct": 0|1}, ...]}`, and the training records they were drawn for.
Writes nothing: `import_rollouts` returns rows in the format of `03_profile/profile.jsonl`
(see dcsft.profiling: id, solution, responses, correct, pass_count, k, pass_rate and token
counts), which `dcsft curate` turns into buckets like a profile dcsft sampled itself.

A result is matched to a training record by its image and its question: the image by its
last two path parts (`<wnid>/<file>`, so the authors' `/data/dataset/Imagenet/train/...`
matches the same image under any dataset root; by file name alone where that is unique),
the question after stripping whitespace and a leading "<image>". Results that match no
record are counted and named, not guessed at.

Bad input is a one-line DataError naming the file and the result index: not JSON, no
`results` list, a result without image / question / correct, `correct` not 0/1 or a
boolean, a sample listed twice, or draws over different sets of samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dcsft.data.records import read_json
from dcsft.errors import DataError

RESULT_FIELDS = ("image", "question", "correct")
SHOWN = 3


@dataclass
class RolloutProfile:
    rows: list[dict]  # profile.jsonl rows, in training-record order
    k: int  # draws (files)
    unmatched: list[str] = field(default_factory=list)  # rollout samples with no training record
    unprofiled: list[str] = field(default_factory=list)  # training record ids with no rollouts
    label_mismatches: list[str] = field(
        default_factory=list
    )  # ids whose ground_truth differs from the record

    def summary(self) -> str:
        line = f"{len(self.rows)} samples profiled from {self.k} draws"
        for what, items in (
            ("rollout samples matched no training record", self.unmatched),
            ("training records have no rollouts", self.unprofiled),
            ("ground truths differ from the record's answer", self.label_mismatches),
        ):
            if items:
                line += f"; {len(items)} {what} (first: {', '.join(items[:SHOWN])})"
        return line


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


def read_draw(path: Path) -> dict[tuple[str, str], dict]:
    """(image key, question) -> {"response", "correct", "ground_truth", "image"} of one rollout file."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        found = "an object without a results list" if isinstance(data, dict) else type(data).__name__
        raise DataError(f'{path}: expected a rollout file {{"accuracy", "results": [...]}}, found {found}')
    draw: dict[tuple[str, str], dict] = {}
    first_index: dict[tuple[str, str], int] = {}
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
                f"{path}: results[{index}] repeats the sample of results[{first_index[key]}] "
                f"({result['image']})"
            )
        first_index[key] = index
        draw[key] = {
            "response": result.get("model_output"),
            "correct": correct_value(result["correct"], path, index),
            "ground_truth": result.get("ground_truth"),
            "image": result["image"],
        }
    return draw


def check_same_samples(draws: list[dict], files: list[Path]) -> None:
    first = set(draws[0])
    for draw, path in zip(draws[1:], files[1:]):
        if set(draw) != first:
            extra, lacking = set(draw) - first, first - set(draw)
            example = (
                draw[next(iter(sorted(extra)))]["image"] if extra else draws[0][sorted(lacking)[0]]["image"]
            )
            raise DataError(
                f"{path}: draws over different samples: {len(extra)} not in {files[0]}, {len(lacking)} "
                f"of it missing (first: {example})"
            )


def match_samples(keys: list[tuple[str, str]], records: list[dict]) -> dict[tuple[str, str], dict]:
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


def import_rollouts(files: list[Path], records: list[dict]) -> RolloutProfile:
    """Profile rows for the training records from k rollout files (one per draw)."""
    files = [Path(f) for f in files]
    if not files:
        raise DataError("no rollout files given")
    draws = [read_draw(path) for path in files]
    check_same_samples(draws, files)
    matched = match_samples(list(draws[0]), records)
    outcomes: dict[str, tuple[list, list]] = {}
    profile = RolloutProfile([], len(files))
    for key, first in draws[0].items():
        record = matched.get(key)
        if record is None:
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
