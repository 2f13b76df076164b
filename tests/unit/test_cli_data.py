"""The data commands: `dcsft export` (a curated bucket in the authors' or ms-swift's format),
`dcsft compare-buckets` and `dcsft import-rollouts`, run through the CLI on a small run
directory written by hand in the stages' formats."""

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from dcsft import coldstart, prepare, pretrain
from dcsft import rundir as rundir_module
from dcsft.cli import app
from dcsft.config import load_config
from dcsft.data.formats import import_records
from dcsft.data.records import to_sft
from dcsft.rundir import RunDir, read_json, read_jsonl, write_json, write_jsonl
from dcsft.status import statuses
from dcsft.tasks.classification import PROMPT

CLASSES = ["circle", "square", "triangle"]
# Per training record: its label and the pass count of k = 4 profiled responses.
SAMPLES = [("circle", 4), ("square", 2), ("triangle", 0), ("circle", 1), ("square", 4), ("triangle", 3)]
K = 4
BUCKETS = [
    "easy",
    "medium",
    "hard",
    "medium",
    "easy",
    "medium",
]  # what pass counts 4, 2, 0, 1, 4, 3 of 4 mean


def invoke(*args: str):
    """Run the CLI in this process, then let go of the run directory's lock as the process exit would."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    for handle in rundir_module._held_locks:
        handle.close()
    rundir_module._held_locks.clear()
    return result


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


def mark_done(stage, current: str, stats: dict | None = None) -> None:
    stage.root.mkdir(parents=True, exist_ok=True)
    write_json(stage.root / "stats.json", {"seconds": 0.0, **(stats or {})})
    write_json(stage.marker, {"fingerprint": current})


def prepared(root: Path, cfg=None) -> list[dict]:
    """01_prepare of a run directory: tiny PNGs and their records, marked done (with the real
    prepare fingerprint of `cfg` where given, so `dcsft status` counts it done)."""
    rundir = RunDir(root)
    images = rundir.prepare.root / "images" / "train"
    images.mkdir(parents=True)
    records = []
    for index, (label, _) in enumerate(SAMPLES):
        path = images / f"{index:05d}.png"
        Image.new("RGB", (8, 8), (40 * index, 255 - 40 * index, 90)).save(path)
        records.append(
            {
                "id": f"train-{index:05d}",
                "problem": PROMPT,
                "solution": label,
                "image": str(path),
                "meta": {"noise": None, "index": index},
            }
        )
    write_json(rundir.records("train"), records)
    mark_done(
        rundir.prepare,
        prepare.stage_fingerprint(cfg) if cfg else "prepare-fp",
        {"task": "classification", "classes": CLASSES, "records": {"train": len(records)}},
    )
    return records


@pytest.fixture
def run(tmp_path) -> tuple[Path, list[dict]]:
    """A run directory through curate: records, a k = 4 profile and its buckets, written by hand."""
    root = tmp_path / "run"
    records = prepared(root)
    rundir = RunDir(root)
    write_jsonl(
        rundir.profile_file,
        [
            {
                "id": r["id"],
                "solution": r["solution"],
                "responses": ["x"] * K,
                "correct": [1] * p + [0] * (K - p),
                "pass_count": p,
                "k": K,
                "pass_rate": p / K,
            }
            for r, (_, p) in zip(records, SAMPLES)
        ],
    )
    mark_done(rundir.profile, "profile-fp", {"method": "sample"})
    write_jsonl(
        rundir.curate.root / "assignments.jsonl",
        [
            {"id": r["id"], "bucket": b, "pass_count": p, "k": K, "noise": None}
            for r, b, (_, p) in zip(records, BUCKETS, SAMPLES)
        ],
    )
    for bucket in ("easy", "medium", "hard"):
        write_jsonl(rundir.bucket_file(bucket), [to_sft(r) for r, b in zip(records, BUCKETS) if b == bucket])
    mark_done(rundir.curate, "curate-fp")
    return root, records


# --- export ---------------------------------------------------------------------------------


def test_export_medium_as_ms_swift_jsonl_equals_curates_bucket_file_and_round_trips(run, tmp_path):
    root, records = run
    out = tmp_path / "out" / "medium.jsonl"
    result = invoke("export", root, "--bucket", "medium", "--format", "sft", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"wrote 3 medium records (sft format) to {out}" in result.output
    lines = out.read_text().splitlines()
    assert len(lines) == BUCKETS.count("medium") == 3
    rows = [json.loads(line) for line in lines]
    assert out.read_text() == RunDir(root).bucket_file("medium").read_text()  # what curate wrote for ms-swift
    medium = [r for r, b in zip(records, BUCKETS) if b == "medium"]
    for row, record in zip(rows, medium):
        assert set(row) == {"messages", "images"}
        assert row["messages"] == [
            {"role": "user", "content": "<image>" + PROMPT},
            {"role": "assistant", "content": record["solution"]},
        ]
        assert row["images"] == [record["image"]] and Path(row["images"][0]).is_absolute()
    back = import_records(out).records
    assert [(r["problem"], r["solution"], r["image"]) for r in back] == [
        (r["problem"], r["solution"], r["image"]) for r in medium
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == ["medium.jsonl"]  # no temporary file left


def test_export_all_as_records_json_keeps_ids_and_meta(run, tmp_path):
    root, records = run
    out = tmp_path / "all.json"
    result = invoke("export", root, "--bucket", "all", "--format", "records", "--out", out)
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert isinstance(written, list) and len(written) == len(SAMPLES)
    assert written == records
    assert import_records(out).records == records


def test_export_with_id_and_through_a_config_file(run, tmp_path):
    root, records = run
    config = tmp_path / "study.yaml"
    config.write_text(f"run_dir: {root}\n")
    out = tmp_path / "easy.json"
    result = invoke("export", config, "-b", "easy", "-f", "sft", "--with-id", "-o", out)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["id"] for r in rows] == [r["id"] for r, b in zip(records, BUCKETS) if b == "easy"]
    assert [r["id"] for r in import_records(out).records] == ["train-00000", "train-00004"]
    hard = tmp_path / "hard.jsonl"  # --run-dir overrides the config's run_dir as for every command
    config.write_text("run_dir: somewhere/else\n")
    assert invoke("export", config, "--run-dir", root, "-b", "hard", "-o", hard).exit_code == 0
    assert [r["solution"] for r in import_records(hard).records] == ["triangle"]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--bucket", "tiny"], "--bucket 'tiny': expected one of easy, medium, hard, all"),
        (["--bucket", "easy", "--format", "csv"], "--format 'csv': expected one of records, sft"),
        (["--bucket", "easy", "--out", "subset.txt"], "name the file .json or .jsonl"),
    ],
)
def test_export_bad_options_end_in_one_line(run, tmp_path, args, says):
    root, _ = run
    args = args if "--out" in args else [*args, "--out", tmp_path / "x.jsonl"]
    line = one_error_line(invoke("export", root, *args))
    assert says in line
    assert not (tmp_path / "x.jsonl").exists()


def test_export_bad_sources_end_in_one_line(run, tmp_path):
    root, _ = run
    out = tmp_path / "x.jsonl"
    assert "nope.yaml: no such run directory or config file" in one_error_line(
        invoke("export", tmp_path / "nope.yaml", "-b", "easy", "-o", out)
    )
    (tmp_path / "bad.yaml").write_text("profile: [1, 2\n")
    assert "bad.yaml" in one_error_line(invoke("export", tmp_path / "bad.yaml", "-b", "easy", "-o", out))
    (tmp_path / "empty").mkdir()
    assert "04_curate is not complete: run `dcsft curate`" in one_error_line(
        invoke("export", tmp_path / "empty", "-b", "easy", "-o", out)
    )
    assert "go with a config file" in one_error_line(
        invoke("export", root, "-r", root, "-b", "easy", "-o", out)
    )
    study = tmp_path / "study"  # a study of several tasks keeps each task's run directory in a subfolder
    (study / "classification" / "04_curate").mkdir(parents=True)
    (study / "grounding" / "04_curate").mkdir(parents=True)
    line = one_error_line(invoke("export", study, "-b", "easy", "-o", out))
    assert (
        f"several tasks (classification, grounding): export from one of them, e.g. {study / 'classification'}"
    ) in line
    (tmp_path / "folder.json").mkdir()
    assert "is a folder" in one_error_line(
        invoke("export", root, "-b", "easy", "-o", tmp_path / "folder.json")
    )
    (RunDir(root).curate.root / "assignments.jsonl").write_text(
        '{"id": "train-00000", "bucket": "easy"}\n{oops\n'
    )
    line = one_error_line(invoke("export", root, "-b", "easy", "-o", out))
    assert "assignments.jsonl: line 2: not valid JSON" in line
    assert not out.exists()


# --- compare-buckets --------------------------------------------------------------------------


def test_compare_buckets_prints_the_confusion_matrix_and_kappa_computed_by_hand(run, tmp_path):
    root, records = run
    # B: the same six ids bucketed easy, easy, hard, medium, medium, medium, plus one id only B holds.
    other = [4, 4, 0, 2, 3, 1]
    profile = tmp_path / "profile.jsonl"
    write_jsonl(
        profile,
        [{"id": r["id"], "pass_count": p, "k": K} for r, p in zip(records, other)]
        + [{"id": "train-99999", "pass_count": 1, "k": K}],
    )
    # Rows A (easy, medium, hard) x columns B: [[1, 1, 0], [1, 2, 0], [0, 0, 1]]: p_o = 4/6,
    # p_e = (2*2 + 3*3 + 1*1) / 36 = 14/36, kappa = (24 - 14) / (36 - 14) = 10/22 = 0.4545.
    kappa = (4 / 6 - 14 / 36) / (1 - 14 / 36)
    assert kappa == pytest.approx(10 / 22)
    result = invoke("compare-buckets", root, profile, "--a-name", "run", "--b-name", "other")
    assert result.exit_code == 0, result.output
    assert "| run \\ other | easy | medium | hard | total |" in result.output
    assert "| easy | 1 | 1 | 0 | 2 |" in result.output
    assert "| medium | 1 | 2 | 0 | 3 |" in result.output
    assert "| hard | 0 | 0 | 1 | 1 |" in result.output
    assert (
        f"6 samples in both: agreement 66.7%, Cohen's kappa {kappa:.3f}; 0 only in run, 1 only in other."
        in result.output
    )
    assert f"{kappa:.3f}" == "0.455"


def test_compare_buckets_against_the_shipped_manifest(run):
    root, _ = run
    result = invoke("compare-buckets", root, "paper:3b")
    assert result.exit_code == 0, result.output
    assert "0 samples in both: agreement n/a, Cohen's kappa n/a; 6 only in" in result.output
    assert "9600 only in paper:3b." in result.output


def test_compare_buckets_bad_input_ends_in_one_line(run, tmp_path):
    root, _ = run
    assert "does not exist" in one_error_line(invoke("compare-buckets", root, tmp_path / "missing.jsonl"))
    assert "--size '9b'" in one_error_line(invoke("compare-buckets", root, "paper:3b", "--size", "9b"))
    assert "9b" in one_error_line(invoke("compare-buckets", root, "paper:9b"))
    odd = tmp_path / "buckets.json"
    odd.write_text("[]")
    assert "not a run directory" in one_error_line(invoke("compare-buckets", odd, root))
    bad = tmp_path / "assignments.jsonl"
    bad.write_text('{"id": "train-00000", "bucket": "trivial"}\n')
    assert "unknown bucket 'trivial'" in one_error_line(invoke("compare-buckets", bad, root))


# --- import-rollouts ----------------------------------------------------------------------------

CLS = ("--task", "classification")  # the packaged study's classification task, as every command takes it

# Per training record index: the correctness of 3 draws; record 3 has no rollouts, and one
# rollout sample (99999) is not in the training set.
DRAWS = {0: [1, 1, 1], 1: [1, 0, True], 2: [0, 0, False], 4: [0, 1, 0], 5: [1, 1, 0], 99999: [1, 0, 0]}


def write_rollouts(folder: Path, records: list[dict], draws: dict = DRAWS) -> list[Path]:
    """The authors' rollout files, one per draw, with their own dataset root in the image paths."""
    files = []
    for d in range(3):
        results = []
        for index, outcomes in draws.items():
            answer = records[index]["solution"] if index < len(records) else "circle"
            results.append(
                {
                    "image": f"/data/authors/images/train/{index:05d}.png",
                    "question": "<image>" + PROMPT,
                    "ground_truth": answer,
                    "model_output": answer if outcomes[d] else "blob",
                    "extracted_answer": answer if outcomes[d] else "blob",
                    "correct": outcomes[d],
                }
            )
        path = folder / f"rollout_{d}.json"
        path.write_text(json.dumps({"accuracy": 0.5, "results": results}))
        files.append(path)
    return files


def classification(root: Path):
    """The packaged study's classification task with run directory `root` (root itself, or
    root/classification where the study has several tasks), and the folder it works in."""
    cfg = load_config(None, [f"run_dir={root}"]).for_task("classification")
    return cfg, Path(cfg.run_dir)


@pytest.fixture
def to_import(tmp_path):
    """A prepared run directory whose cold start is done (real fingerprints), and rollout files.
    Commands get the study root and `--task classification`, as every command takes them."""
    root = tmp_path / "run"
    cfg, folder = classification(root)
    records = prepared(folder, cfg)
    pretrain.run(cfg)  # finds the base shipped in the package
    mark_done(RunDir(folder).coldstart, coldstart.stage_fingerprint(cfg))
    return root, cfg, records, write_rollouts(tmp_path, records)


def profile_stage_state(cfg) -> str:
    return next(s.state for s in statuses(cfg) if s.name == "profile")


def test_import_rollouts_writes_the_profile_marks_it_done_and_curate_proceeds(to_import, tmp_path):
    root, cfg, records, files = to_import
    rundir = RunDir(cfg.run_dir)
    assert profile_stage_state(cfg) == "missing"
    result = invoke("import-rollouts", *files, "--run-dir", root, *CLS)
    assert result.exit_code == 0, result.output
    assert (
        "5 samples profiled from 3 draws; 1 rollout samples matched no training record "
        "(first: /data/authors/images/train/99999.png); 1 training records have no rollouts "
        "(first: train-00003)"
    ) in result.output
    rows = read_jsonl(rundir.profile_file)
    assert [r["id"] for r in rows] == [
        "train-00000",
        "train-00001",
        "train-00002",
        "train-00004",
        "train-00005",
    ]
    assert [r["pass_count"] for r in rows] == [3, 2, 0, 1, 2]
    assert [r["correct"] for r in rows] == [[1, 1, 1], [1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 0]]
    assert all(r["k"] == 3 and r["pass_rate"] == r["pass_count"] / 3 for r in rows)
    assert rows[1]["responses"] == ["square", "blob", "square"]
    from dcsft import profiling

    assert read_json(rundir.profile.marker) == {"fingerprint": profiling.stage_fingerprint(cfg)}
    stats = read_json(rundir.profile.root / "stats.json")
    assert stats["method"] == "imported" and stats["samples"] == 5 and stats["k"] == 3
    assert (stats["unmatched"], stats["unprofiled"]) == (1, 1)
    assert stats["pass_count_histogram"] == {"0": 1, "1": 1, "2": 2, "3": 1}
    assert profile_stage_state(cfg) == "done"
    status = invoke("status", "--run-dir", root, *CLS)
    assert status.exit_code == 0, status.output
    assert any(
        "profile" in line and "done" in line and "stale" not in line for line in status.output.splitlines()
    )

    curate = invoke("curate", "--run-dir", root, *CLS)
    assert curate.exit_code == 0, curate.output
    assignments = read_jsonl(rundir.curate.root / "assignments.jsonl")
    assert [(a["id"], a["bucket"]) for a in assignments] == [
        ("train-00000", "easy"),
        ("train-00001", "medium"),
        ("train-00002", "hard"),
        ("train-00004", "medium"),
        ("train-00005", "medium"),
    ]
    out = tmp_path / "medium.jsonl"
    assert invoke("export", rundir.root, "--bucket", "medium", "--out", out).exit_code == 0
    assert [r["image"] for r in import_records(out).records] == [records[i]["image"] for i in (1, 4, 5)]


def test_reimporting_other_rollouts_rebuilds_curate_and_a_sampled_profile_needs_force(to_import, tmp_path):
    root, cfg, records, files = to_import
    rundir = RunDir(cfg.run_dir)
    assert invoke("import-rollouts", *files, "-r", root, *CLS).exit_code == 0
    assert invoke("curate", "-r", root, *CLS).exit_code == 0
    again = invoke("import-rollouts", *files, "-r", root, *CLS)  # the same rollouts: nothing changes after it
    assert again.exit_code == 0 and "rebuilt" not in again.output
    assert rundir.curate.marker.exists()

    (tmp_path / "new").mkdir()
    flipped = write_rollouts(tmp_path / "new", records, {**DRAWS, 2: [1, 1, 1]})
    result = invoke("import-rollouts", *flipped, "-r", root, *CLS)
    assert result.exit_code == 0, result.output
    assert "the profile changed: the stages after it" in result.output
    assert (
        next(s.state for s in statuses(cfg) if s.name == "curate") == "stale"
    )  # its profile's content changed
    assert invoke("curate", "-r", root, *CLS).exit_code == 0
    assert read_jsonl(rundir.curate.root / "assignments.jsonl")[2]["bucket"] == "easy"

    write_json(rundir.profile.root / "stats.json", {"method": "sample", "seconds": 1.0})
    line = one_error_line(invoke("import-rollouts", *files, "-r", root, *CLS))
    assert "holds a profile dcsft sampled (sample); pass --force" in line
    rundir.profile.marker.unlink()  # a `dcsft profile` run that was stopped part-way
    (rundir.profile.root / "stats.json").unlink()
    line = one_error_line(invoke("import-rollouts", *files, "-r", root, *CLS))
    assert "holds a partial profile; pass --force" in line
    assert invoke("import-rollouts", *files, "-r", root, *CLS, "--force").exit_code == 0
    assert [r["pass_count"] for r in read_jsonl(rundir.profile_file)] == [3, 2, 0, 1, 2]


def test_import_without_a_cold_start_is_done_and_curate_proceeds(tmp_path):
    root = tmp_path / "run"
    cfg, folder = classification(root)
    records = prepared(folder, cfg)
    files = write_rollouts(tmp_path, records)
    result = invoke("import-rollouts", *files, "--run-dir", root, *CLS)
    assert result.exit_code == 0, result.output
    assert RunDir(folder).profile.done_fingerprint() is not None
    assert profile_stage_state(cfg) == "done"  # its fingerprint is its content's: `study` keeps it
    assert invoke("curate", "--run-dir", root, *CLS).exit_code == 0
    assert len(read_jsonl(RunDir(folder).curate.root / "assignments.jsonl")) == 5


def test_a_single_task_config_file_and_a_study_of_several_tasks(tmp_path):
    root = tmp_path / "run"
    records = prepared(root)
    files = write_rollouts(tmp_path, records)
    single = tmp_path / "single.yaml"
    single.write_text(f"run_dir: {root}\ntask: classification\n")
    result = invoke("import-rollouts", *files, "--config", single)
    assert result.exit_code == 0, result.output
    assert [r["pass_count"] for r in read_jsonl(RunDir(root).profile_file)] == [3, 2, 0, 1, 2]
    several = tmp_path / "several.yaml"
    several.write_text(f"run_dir: {root}\ntasks:\n  classification: {{}}\n  grounding: {{}}\n")
    # no --task in a study of several: the files' ground truths (class names) pick classification,
    # whose folder holds no prepared records, so they are built from the rollouts
    images = RunDir(root).prepare.root / "images"
    result = invoke("import-rollouts", *files, "--config", several, "--image-root", images)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(RunDir(root / "classification").profile_file)
    assert [r["pass_count"] for r in rows] == [3, 2, 0, 1, 2]
    assert "pick one with --task" in one_error_line(
        invoke("export", several, "-b", "all", "-o", tmp_path / "a.json")
    )


def test_import_rollouts_bad_input_ends_in_one_line(to_import, tmp_path):
    root, cfg, records, files = to_import
    broken = tmp_path / "broken.json"
    broken.write_text('{"accuracy": 0.5, "results": [')
    assert "broken.json: line 1" in one_error_line(
        invoke("import-rollouts", files[0], broken, "-r", root, *CLS)
    )
    assert "file not found" in one_error_line(
        invoke("import-rollouts", tmp_path / "gone.json", "-r", root, *CLS)
    )
    # nothing prepared: the records are built from the rollouts, whose images are not on this machine
    assert "none of the 6 rollout samples is usable" in one_error_line(
        invoke("import-rollouts", *files, "-r", tmp_path / "unprepared", *CLS)
    )
    stranger = tmp_path / "stranger.json"
    stranger.write_text(
        json.dumps(
            {
                "accuracy": 1.0,
                "results": [{"image": "/x/train/elsewhere.png", "question": PROMPT, "correct": 1}],
            }
        )
    )
    assert "none of the rollout samples matched a training record" in one_error_line(
        invoke("import-rollouts", stranger, "-r", root, *CLS)
    )
    assert not RunDir(cfg.run_dir).profile.marker.exists()
