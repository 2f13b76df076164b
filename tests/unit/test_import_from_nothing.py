"""`dcsft import-rollouts` into an empty run directory: the training records are built from the
rollout files themselves (image, question, ground truth), written as 01_prepare's output, and
`dcsft curate` then gives every sample the authors' bucket (easy: all draws correct, hard: none,
medium: the rest), computed here from the files independently; `dcsft export` writes the medium
bucket; bad files end in one line naming the file and the position."""

import json
import random
import shlex
from pathlib import Path

import pytest
from PIL import Image
from test_cli_data import invoke, one_error_line

from dcsft import prepare
from dcsft.config import load_config
from dcsft.data.rollouts import profile_row
from dcsft.rundir import RunDir, read_json, read_jsonl, write_json, write_jsonl
from dcsft.status import statuses
from dcsft.tasks.classification import PROMPT

K = 5  # draws, one rollout file each
LABELS = {"n01": "goose", "n02": "sundial", "n03": "warthog"}
AUTHORS_ROOT = "/data/dataset/Imagenet/train"  # where the authors' own images were


def task_cfg(root: Path, task: str = "classification"):
    """The packaged study's `task` with run directory `root` (its folder is root/<task>)."""
    return load_config(None, [f"run_dir={root}"]).for_task(task)


def png(path: Path, shade: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), (shade, 255 - shade, 40)).save(path)
    return path


def authors_result(image: str, truth, correct) -> dict:
    answer = truth if correct else "swan"
    return {
        "image": image,
        "question": "<image>" + PROMPT,
        "ground_truth": truth,
        "model_output": f"<answer>{answer}</answer>",
        "extracted_answer": answer,
        "correct": correct,
    }


def write_rollouts(
    folder: Path, samples: list[tuple[str, object, list]], shuffle: int | None = None
) -> list[Path]:
    """One rollout file per draw in the authors' shape; `samples`: (image as written, ground truth,
    each draw's correct); draw `shuffle` lists the samples in another order."""
    files = []
    for d in range(len(samples[0][2])):
        results = [authors_result(image, truth, outcomes[d]) for image, truth, outcomes in samples]
        if d == shuffle:
            random.Random(d).shuffle(results)
        accuracy = sum(bool(r["correct"]) for r in results) / len(results)
        path = folder / f"rollout_{d}.json"
        path.write_text(json.dumps({"accuracy": accuracy, "results": results}))
        files.append(path)
    return files


def authors_bucket(outcomes: list) -> str:
    """The authors' rule, as their released code states it."""
    return "easy" if all(outcomes) else "hard" if not any(outcomes) else "medium"


@pytest.fixture
def rollouts(tmp_path):
    """Rollout files over 15 samples, with real little PNGs: images referenced relative to the
    rollout files' folder (the first ten) and by absolute path (the rest); every bucket occurs.
    Returns the files and, per image file on disk, the authors' bucket computed from the files."""
    folder = tmp_path / "rollouts"
    rng = random.Random(7)
    samples, paths = [], []
    for i in range(15):
        wnid = sorted(LABELS)[i % 3]
        on_disk = png(folder / "images" / wnid / f"{wnid}_{i}.png", 15 * i)
        written = str(on_disk.relative_to(folder)) if i < 10 else str(on_disk)
        pattern = [1] * K if i % 5 == 0 else [0] * K if i % 5 == 1 else [rng.randint(0, 1) for _ in range(K)]
        if i % 5 == 2:
            pattern[0], pattern[1] = 1, 0  # certainly medium
        pattern = [bool(c) if i % 2 else c for c in pattern]  # 0/1 and true/false, as their writers give
        samples.append((written, LABELS[wnid], pattern))
        paths.append(on_disk)
    files = write_rollouts(folder, samples, shuffle=2)
    # the authors' rule, from the files alone: every draw's `correct` of each image
    outcomes: dict[str, list] = {}
    for path in files:
        for result in json.loads(path.read_text())["results"]:
            outcomes.setdefault(result["image"], []).append(result["correct"])
    expected = {}
    for written, on_disk in zip((s[0] for s in samples), paths):
        expected[str(on_disk)] = authors_bucket(outcomes[written])
    assert set(expected.values()) == {"easy", "medium", "hard"}
    return files, expected


def next_commands(output: str) -> list[list[str]]:
    """The commands the import prints as its next steps."""
    line = next(line for line in output.splitlines() if line.startswith("next: "))
    return [shlex.split(part.removeprefix("dcsft ")) for part in line.removeprefix("next: ").split(", then ")]


def test_an_empty_run_directory_gets_the_authors_buckets_record_by_record(rollouts, tmp_path):
    files, expected = rollouts
    root = tmp_path / "run"  # does not exist yet
    result = invoke("import-rollouts", *files, "--run-dir", root)
    assert result.exit_code == 0, result.output
    assert "15 training records built from the rollouts; 15 samples profiled from 5 draws" in result.output
    cfg = task_cfg(root)  # the files' ground truths are class names: the classification task
    rundir = RunDir(cfg.run_dir)

    # 01_prepare as prepare leaves it: records read back by every later stage, stats, DONE
    from dcsft.prepared import read_split

    records, skipped = read_split(rundir, "train")
    assert skipped == 0 and sorted(r["image"] for r in records) == sorted(expected)
    assert all(r["problem"] == PROMPT and r["solution"] in LABELS.values() for r in records)
    assert {"id", "image", "problem", "solution", "meta"} <= set(records[0])
    stats = read_json(rundir.prepare.root / "stats.json")
    assert (stats["task"], stats["source"], stats["records"]) == ("classification", "rollouts", {"train": 15})
    assert stats["classes"] == sorted(LABELS.values())
    # the stages before the profile count as done: status, and a study, keep them
    assert rundir.prepare.done_fingerprint() == prepare.stage_fingerprint(cfg)
    states = {s.name: s.state for s in statuses(cfg)}
    assert (states["prepare"], states["profile"]) == ("done", "done")

    curate_args, export_args = next_commands(result.output)
    assert curate_args == ["curate", "--run-dir", str(root)]  # runs the one task whose folder exists
    curate = invoke(*curate_args)
    assert curate.exit_code == 0, curate.output
    by_id = {r["id"]: r for r in records}
    assignments = read_jsonl(rundir.assignments_file)
    assert len(assignments) == 15
    for a in assignments:
        assert a["bucket"] == expected[by_id[a["id"]]["image"]], a
    assert {s.name: s.state for s in statuses(cfg)}["curate"] == "done"

    out = tmp_path / "medium.jsonl"
    assert export_args[:2] == ["export", str(rundir.root)]
    exported = invoke(*export_args[:-1], out)
    assert exported.exit_code == 0, exported.output
    medium = [json.loads(line)["images"][0] for line in out.read_text().splitlines()]
    assert sorted(medium) == sorted(path for path, bucket in expected.items() if bucket == "medium")

    # the same files again: nothing changes, curate stays done; prepare skips its records
    again = invoke("import-rollouts", *files, "--run-dir", root)
    assert again.exit_code == 0 and "rebuilt" not in again.output, again.output
    assert rundir.curate.marker.exists()
    skipped_prepare = invoke("prepare", "--run-dir", root, "--task", "classification")
    assert "already complete" in skipped_prepare.output
    assert read_split(rundir, "train")[0] == records


def test_buckets_json_has_the_keys_of_a_sampled_profiles(rollouts, tmp_path):
    """Curate writes buckets.json of an imported profile exactly as of one dcsft sampled."""
    files, _ = rollouts
    imported = tmp_path / "imported"
    assert invoke("import-rollouts", *files, "-r", imported).exit_code == 0
    assert invoke("curate", "-r", imported, "-t", "classification").exit_code == 0

    sampled = RunDir(task_cfg(tmp_path / "sampled").run_dir)  # a study's: prepared, profile sampled
    image = png(tmp_path / "study" / "0.png", 0)
    records = [
        {"id": f"train-{i}", "problem": PROMPT, "solution": "goose", "image": str(image), "meta": {}}
        for i in range(3)
    ]
    write_json(sampled.records("train"), records)
    write_json(sampled.prepare.root / "stats.json", {"task": "classification", "classes": ["goose"]})
    write_json(sampled.prepare.marker, {"fingerprint": "p"})
    rows = [profile_row(r, ["goose"] * 2, c) for r, c in zip(records, ([1, 1], [1, 0], [0, 0]))]
    write_jsonl(sampled.profile_file, rows)
    write_json(sampled.profile.root / "stats.json", {"method": "sample"})
    write_json(sampled.profile.marker, {"fingerprint": "s"})
    assert invoke("curate", "-r", tmp_path / "sampled", "-t", "classification").exit_code == 0

    def keys(value):
        return {k: keys(v) for k, v in value.items()} if isinstance(value, dict) else None

    ours = read_json(RunDir(task_cfg(imported).run_dir).curate.root / "buckets.json")
    theirs = read_json(sampled.curate.root / "buckets.json")
    assert keys(ours) == keys(theirs)


def test_box_ground_truths_make_grounding_records(tmp_path):
    folder = tmp_path / "rollouts"
    samples = []
    for i in range(4):
        png(folder / "refcoco" / f"{i}.png", 40 * i)
        truth = [2, 1, 9, 8] if i % 2 else "[1, 2, 7, 9]"  # a list, or the box as text
        samples.append((f"refcoco/{i}.png", truth, [[1, 1], [0, 0], [1, 0], [0, 1]][i]))
    files = write_rollouts(folder, samples)
    root = tmp_path / "run"
    result = invoke("import-rollouts", *files, "-r", root)
    assert result.exit_code == 0, result.output
    rundir = RunDir(task_cfg(root, "grounding").run_dir)
    assert read_json(rundir.prepare.root / "stats.json")["task"] == "grounding"
    records = read_json(rundir.records("train"))
    assert [r["solution"] for r in records] == ["[1, 2, 7, 9]", "[2, 1, 9, 8]"] * 2
    assert invoke("curate", "-r", root, "-t", "grounding").exit_code == 0
    assert [a["bucket"] for a in read_jsonl(rundir.assignments_file)] == ["easy", "hard", "medium", "medium"]
    # the same files as classification: one line saying what they are
    line = one_error_line(invoke("import-rollouts", *files, "-r", tmp_path / "other", "-t", "classification"))
    assert f"{files[0]}: results[0]: ground truth '[1, 2, 7, 9]' is a box" in line
    assert "--task grounding" in line


def test_a_missing_image_is_a_counted_skip_and_image_root_finds_moved_images(tmp_path):
    folder = tmp_path / "rollouts"
    dataset = tmp_path / "my-imagenet"
    samples = []
    for i in range(3):
        png(dataset / "n01" / f"n01_{i}.JPEG", 50 * i)  # PNG bytes; the name as the authors'
        samples.append((f"{AUTHORS_ROOT}/n01/n01_{i}.JPEG", "goose", [1, 0]))
    samples.append((f"{AUTHORS_ROOT}/n01/n01_9.JPEG", "goose", [1, 1]))  # not in this dataset
    folder.mkdir()
    files = write_rollouts(folder, samples)

    line = one_error_line(invoke("import-rollouts", *files, "-r", tmp_path / "run"))
    assert line == (
        f"error: none of the 4 rollout samples is usable (first: {files[0]}: results[0] (n01/n01_0.JPEG): "
        f"image not found: {AUTHORS_ROOT}/n01/n01_0.JPEG); image paths are absolute or relative to the "
        "rollout file: --image-root DIR looks them up under DIR"
    )
    result = invoke("import-rollouts", *files, "-r", tmp_path / "run", "--image-root", dataset)
    assert result.exit_code == 0, result.output
    assert (
        f"3 training records built from the rollouts; 1 skipped (first: {files[0]}: results[3] "
        f"(n01/n01_9.JPEG): image not found: {dataset}/n01/n01_9.JPEG); 3 samples profiled from 2 draws"
    ) in result.output
    rundir = RunDir(task_cfg(tmp_path / "run").run_dir)
    assert [r["image"] for r in read_json(rundir.records("train"))] == [
        str(dataset / "n01" / f"n01_{i}.JPEG") for i in range(3)
    ]
    assert [s["index"] for s in read_jsonl(rundir.prepare.root / "skipped.jsonl")] == [3]
    stats = read_json(rundir.profile.root / "stats.json")
    assert (stats["samples"], stats["skipped"], stats["unmatched"]) == (3, 1, 0)


# --- bad input: one line naming the file and the position, nothing written ----------------------


@pytest.fixture
def three(tmp_path):
    """Three samples with real images, and a writer of one draw over them, changed as a test wants."""
    folder = tmp_path / "rollouts"
    for i in range(3):
        png(folder / "images" / "n01" / f"{i}.png", 60 * i)

    def draw(name: str, change=None) -> Path:
        results = [authors_result(f"images/n01/{i}.png", "goose", i % 2) for i in range(3)]
        if change:
            change(results)
        path = folder / name
        path.write_text(json.dumps({"accuracy": 0.3, "results": results}))
        return path

    return draw


def bad_import(tmp_path, *files, extra=()) -> str:
    root = tmp_path / "run"
    line = one_error_line(invoke("import-rollouts", *files, "-r", root, *extra))
    assert not (root / "classification" / "01_prepare").exists()
    assert not (root / "classification" / "03_profile").exists()
    return line


def test_draws_of_different_lengths(three, tmp_path):
    first = three("d0.json")
    shorter = three("d1.json", lambda results: results.pop())
    assert bad_import(tmp_path, first, shorter) == (
        f"error: {shorter}: draws over different samples: 2 results where {first} has 3; its results[2] "
        "(images/n01/2.png) is missing here"
    )
    longer = three("d2.json", lambda results: results.append(authors_result("images/n01/9.png", "goose", 1)))
    assert bad_import(tmp_path, first, longer) == (
        f"error: {longer}: results[3]: draws over different samples: images/n01/9.png is not in {first} "
        "(1 not there, 0 of it missing here)"
    )


def test_another_image_at_the_same_position(three, tmp_path):
    first = three("d0.json")
    other = three("d1.json", lambda results: results[1].update(image="images/n02/1.png"))
    assert bad_import(tmp_path, first, other) == (
        f"error: {other}: results[1]: draws over different samples: images/n02/1.png is not in {first} "
        "(1 not there, 1 of it missing here)"
    )


def test_another_ground_truth_at_the_same_position(three, tmp_path):
    first = three("d0.json")
    other = three("d1.json", lambda results: results[2].update(ground_truth="sundial"))
    assert bad_import(tmp_path, first, other) == (
        f"error: {other}: results[2]: ground truth 'sundial' differs from 'goose' in {first} "
        "(results[2], images/n01/2.png)"
    )


def test_no_ground_truth_to_build_a_record_from(three, tmp_path):
    first = three("d0.json", lambda results: results[1].pop("ground_truth"))
    line = bad_import(tmp_path, first)
    assert line.startswith(f"error: {first}: results[1]: no ground_truth, which a run directory without")


def test_a_sample_listed_twice_and_a_broken_file(three, tmp_path):
    twice = three("d0.json", lambda results: results.append(dict(results[0])))
    assert bad_import(tmp_path, twice) == (
        f"error: {twice}: results[3] repeats the sample of results[0] (images/n01/0.png)"
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"accuracy": 0.5, "results": [')
    assert bad_import(tmp_path, three("d1.json"), broken).startswith(f"error: {broken}: line 1 column")


def test_a_partial_prepare_is_replaced_only_with_force(three, tmp_path):
    root = tmp_path / "run"
    prepare_root = RunDir(task_cfg(root).run_dir).prepare.root
    prepare_root.mkdir(parents=True)
    (prepare_root / "STARTED").write_text("a dcsft prepare that was stopped")
    files = [three("d0.json"), three("d1.json")]
    line = one_error_line(invoke("import-rollouts", *files, "-r", root))
    assert f"{prepare_root} holds a partial `dcsft prepare`; pass --force" in line
    result = invoke("import-rollouts", *files, "-r", root, "--force")
    assert result.exit_code == 0, result.output
    assert len(read_json(prepare_root / "records" / "train.json")) == 3
