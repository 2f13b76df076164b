"""The whole default study (classification, grounding and reasoning) at its smallest size,
through the CLI, as a user runs it. Most checks are on the classification task; the grounding
and reasoning checks are what differs for them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

SMALLEST = [
    "data.n_coldstart=20",
    "data.n_train=48",
    "data.n_test=20",
    "profile.batch_size=16",
    "train.steps=6",
    "grpo.steps=3",
    "evaluate.batch_size=32",
    "seeds=2",
    # every method for classification and reasoning; grounding keeps the default's own list
    "tasks.classification.train.methods=[sft,sft-e,sft-m,sft-h,sft-em,curriculum,sft-m+h5,sft-m+h15,grpo]",
    "tasks.reasoning.train.methods=[sft,sft-e,sft-m,sft-h,sft-em,curriculum,sft-m+h5,sft-m+h15,grpo]",
]
SEEDS = {"seed0", "seed1"}
STAGE_FILES = {
    "01_prepare": {"DONE", "STARTED", "stats.json", "records", "images"},
    "02_coldstart": {"DONE", "STARTED", "stats.json", "loss.jsonl", "model", "trainer"},
    "03_profile": {"DONE", "STARTED", "stats.json", "profile.jsonl"},
    "04_curate": {
        "DONE",
        "STARTED",
        "stats.json",
        "easy.jsonl",
        "medium.jsonl",
        "hard.jsonl",
        "assignments.jsonl",
        "buckets.json",
    },
    "07_report": {
        "DONE",
        "STARTED",
        "stats.json",
        "report.md",
        "report.html",
        "figures",
        "results.json",
        "buckets.json",
    },
}
METHODS = ["sft", "sft-e", "sft-m", "sft-h", "sft-em", "curriculum", "sft-m+h5", "sft-m+h15", "grpo"]
GROUNDING_METHODS = ["sft", "sft-m", "sft-em", "grpo"]
FIGURES = {"accuracy.png", "forest.png", "loss_per_bucket.png", "gallery.png", "zero_advantage.png"}


def dcsft(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DCSFT_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "dcsft", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    overrides = [arg for kv in SMALLEST for arg in ("--set", kv)]
    first = dcsft("study", "--run-dir", str(root / "run"), *overrides, cwd=root)
    assert first.returncode == 0, first.stdout + first.stderr
    return root / "run", first, overrides


def task_run(study, task: str = "classification") -> Path:
    return study[0] / task


@pytest.mark.e2e
def test_run_directory_has_every_stage_output(study):
    run = task_run(study)
    assert (run.parent / "config.yaml").exists()
    for stage, files in STAGE_FILES.items():
        assert {p.name for p in (run / stage).iterdir()} == files, stage
    assert {p.name for p in (run / "05_train").iterdir()} == set(METHODS)
    assert all({p.name for p in (run / "05_train" / m).iterdir()} == SEEDS for m in METHODS)
    assert {p.name for p in (run / "07_report" / "figures").iterdir()} == FIGURES
    evaluated = {p.name for p in (run / "06_evaluate").iterdir()}
    results = json.loads((run / "07_report" / "results.json").read_text())
    trained = {m for m in METHODS if not results["models"][m]["n_a"]}
    assert evaluated == {"base", "coldstart", *trained}
    folders = [
        run / "06_evaluate" / "base",
        run / "06_evaluate" / "coldstart",
        *(run / "06_evaluate" / m / s for m in trained for s in SEEDS),
    ]
    for folder in folders:
        scores = json.loads((folder / "scores.json").read_text())
        assert set(scores) == {"photo", "rendition", "adversarial"}
        assert all(s["n"] == 20 and 0 <= s["accuracy"] <= 100 for s in scores.values())
    for method in trained:
        runs = results["models"][method]["accuracy"]["photo"]["runs"]
        assert len(runs) == 2 and results["models"][method]["accuracy"]["photo"]["std"] is not None


@pytest.mark.e2e
def test_buckets_partition_the_training_set(study):
    run = task_run(study)
    buckets = json.loads((run / "07_report" / "buckets.json").read_text())
    counts = [buckets[b]["count"] for b in ("easy", "medium", "hard")]
    assert sum(counts) == buckets["total"] == 48
    lines = {
        b: (run / "04_curate" / f"{b}.jsonl").read_text().splitlines() for b in ("easy", "medium", "hard")
    }
    assert [len(lines[b]) for b in ("easy", "medium", "hard")] == counts
    profile = [json.loads(line) for line in (run / "03_profile" / "profile.jsonl").read_text().splitlines()]
    assert len(profile) == 48 and all(len(row["responses"]) == row["k"] == 8 for row in profile)
    record = json.loads(next(line for b in lines.values() for line in b))
    assert set(record) == {"messages", "images"} and record["messages"][0]["content"].startswith("<image>")
    # Every kind of hard sample in the training records is counted, bucket by bucket.
    train = json.loads((run / "01_prepare" / "records" / "train.json").read_text())
    for kind, by_bucket in buckets["kinds_by_bucket"].items():
        assert sum(by_bucket.values()) == sum(
            (kind in r["meta"]["kinds"]) if kind != "none" else not r["meta"]["kinds"] for r in train
        ), kind
    assert "novel" in buckets["kinds_by_bucket"] and "context" in buckets["kinds_by_bucket"]
    report = (run / "07_report" / "report.md").read_text()
    assert (
        "## Where each kind of hard sample landed" in report and "## Accuracy by kind of test item" in report
    )
    results = json.loads((run / "07_report" / "results.json").read_text())
    photo = results["models"]["sft"]["by_kind"]["photo"]
    assert sum(v["n"] for v in photo.values()) >= 20  # each of the 20 items counts under its kinds, or none
    assert all(0 <= v["accuracy"] <= 100 for v in photo.values())


@pytest.mark.e2e
def test_lora_weights_changed(study):
    run = task_run(study)
    results = json.loads((run / "07_report" / "results.json").read_text())
    trained = [m for m in METHODS if not results["models"][m]["n_a"]]
    assert "sft" in trained
    for method in trained:
        seeds = [
            load_file(str(run / "05_train" / method / s / "adapter" / "adapter_model.safetensors"))
            for s in sorted(SEEDS)
        ]
        lora_b = [w for name, w in seeds[0].items() if "lora_B" in name]
        # PEFT starts every lora_B at zero: any non-zero entry was learned.
        assert lora_b and any(w.abs().sum() > 0 for w in lora_b), method
        assert any(not w.equal(seeds[1][name]) for name, w in seeds[0].items()), (
            f"{method}: seeds gave one run"
        )


@pytest.mark.e2e
def test_compute_is_accounted_for_every_method(study):
    run = task_run(study)
    results = json.loads((run / "07_report" / "results.json").read_text())
    rows = results["compute"]["rows"]
    assert rows["profile"]["tokens_generated"] >= 48 * 8  # at least the end-of-turn token of every draw
    for method in METHODS:
        if results["models"][method]["n_a"]:
            assert rows[method] is None
            continue
        cost = rows[method]
        assert cost["seconds"] > 0 and cost["steps"] == (3 if method == "grpo" else 6), method
        assert cost["tokens_forwarded"] > cost["samples_seen"] > 0, method
        assert (cost["tokens_generated"] > 0) == (method == "grpo"), method
    ratio = results["compute"]["grpo_over_dcsft"]
    assert ratio["seconds"] == round(
        rows["grpo"]["seconds"] / (rows["profile"]["seconds"] + rows["sft-m"]["seconds"]), 2
    )
    zero = results["zero_advantage"]
    assert len(zero["runs"]) == 2 and all(len(r) == 3 and all(0 <= f <= 1 for f in r) for r in zero["runs"])


@pytest.mark.e2e
def test_curriculum_and_hard_mixes_train_on_what_they_say(study):
    run = task_run(study)
    buckets = json.loads((run / "07_report" / "buckets.json").read_text())
    stats = {
        m: json.loads((run / "05_train" / m / "seed0" / "stats.json").read_text())
        for m in ("curriculum", "sft-m+h5", "sft-m+h15")
    }
    assert stats["curriculum"]["samples"] == 48  # 6 steps x 8 = every sample once
    medium, hard = buckets["medium"]["count"], buckets["hard"]["count"]
    for method, percent in (("sft-m+h5", 5), ("sft-m+h15", 15)):
        wanted = round(percent / (100 - percent) * medium)
        assert stats[method]["samples"] == medium + min(wanted, hard)


@pytest.mark.e2e
def test_report_prints_both_tables(study):
    _, first, _ = study
    assert "| Model | Runs | photo (ID) | rendition (OOD) | adversarial (OOD) | OOD mean |" in first.stdout
    assert "| Model | Dataset | Easy | Medium | Hard | Samples |" in first.stdout
    assert "| Stage or method | Wall s |" in first.stdout and "GRPO / DC-SFT = " in first.stdout


@pytest.mark.e2e
def test_second_run_skips_every_stage(study):
    root, _, overrides = study
    run = task_run(study)
    before = {
        p: p.stat().st_mtime_ns
        for p in run.rglob("*")
        if p.is_file() and p.name not in ("config.yaml", ".lock")
    }
    second = dcsft("study", "--run-dir", str(root), *overrides, "--task", "classification", cwd=root.parent)
    assert second.returncode == 0, second.stdout + second.stderr
    stage_lines = [line for line in second.stdout.splitlines() if "already complete, skipped" in line]
    evaluations = len(list((run / "06_evaluate").glob("*/scores.json"))) + len(
        list((run / "06_evaluate").glob("*/*/scores.json"))
    )
    data_stages = 5  # pretrain, prepare, coldstart, profile, curate
    assert len(stage_lines) == data_stages + len(METHODS) * len(SEEDS) + evaluations + 1
    after = {
        p: p.stat().st_mtime_ns
        for p in run.rglob("*")
        if p.is_file() and p.name not in ("config.yaml", ".lock")
    }
    assert after == before


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["exact", "adaptive"])
def test_other_profile_methods_feed_curate(study, tmp_path, method):
    run, overrides = task_run(study), study[2]
    copy = tmp_path / "run"
    for stage in ("01_prepare", "02_coldstart"):
        shutil.copytree(run / stage, copy / stage)
    args = [*overrides, "--set", "tasks={}", "--set", f"profile.method={method}"]
    for verb in ("profile", "curate"):
        done = dcsft(verb, "--run-dir", str(copy), *args, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in (copy / "03_profile" / "profile.jsonl").read_text().splitlines()]
    assert len(rows) == 48
    if method == "exact":
        assert all(r["responses"] == [] and r["k"] == 8 and 0 <= r["p_correct"] <= 1 for r in rows)
    else:
        assert all(len(r["responses"]) == r["k"] <= 8 for r in rows)
    buckets = json.loads((copy / "04_curate" / "buckets.json").read_text())
    assert buckets["total"] == 48 and buckets["medium"]["count"] > 0


@pytest.mark.e2e
def test_status_tells_done_from_stale(study):
    from dcsft.config import load_config
    from dcsft.status import statuses

    run = task_run(study)
    smallest = [*SMALLEST, f"run_dir={run.parent}"]
    states = {row.name: row.state for row in statuses(load_config(None, smallest).for_task("classification"))}
    assert set(states.values()) == {"done"}, states
    assert "evaluate sft-m seed 1" in states and "train grpo seed 0" in states
    changed = {
        row.name: row.state
        for row in statuses(load_config(None, [*smallest, "profile.k=4"]).for_task("classification"))
    }
    unchanged = {"pretrain", "prepare", "coldstart", "evaluate base", "evaluate coldstart"}
    assert {name for name, state in changed.items() if state == "done"} == unchanged
    assert {state for name, state in changed.items() if name not in unchanged} == {"stale"}
    status = dcsft(
        "status", "--run-dir", str(run.parent), *[a for kv in SMALLEST for a in ("--set", kv)], cwd=run.parent
    )
    assert status.returncode == 0 and "done" in status.stdout and "stale" not in status.stdout


@pytest.mark.e2e
def test_grounding_runs_every_stage_in_the_model_frame(study):
    run = task_run(study, "grounding")
    for stage, files in STAGE_FILES.items():
        assert {p.name for p in (run / stage).iterdir()} == files, stage
    assert {p.name for p in (run / "05_train").iterdir()} == set(GROUNDING_METHODS)
    records = json.loads((run / "01_prepare" / "records" / "train.json").read_text())
    for record in records:
        meta = record["meta"]
        assert meta["orig_size"] == [126, 126] and meta["size"] == [84, 84]
        assert record["solution"] == "[" + ", ".join(str(round(v)) for v in meta["box"]) + "]"
        assert all(abs(b - o * 84 / 126) < 0.01 for b, o in zip(meta["box"], meta["orig_box"]))
        assert meta["kinds"] == [k for k in (meta["hardness"], meta["noise"]) if k]
    scores = json.loads((run / "06_evaluate" / "coldstart" / "scores.json").read_text())
    assert set(scores) == {"refs", "relational", "indirect"}
    assert all(
        s["n"] == 20 and 0 <= s["unparsable"] <= 20 and 0 <= s["accuracy"] <= 100 for s in scores.values()
    )
    profile = [json.loads(line) for line in (run / "03_profile" / "profile.jsonl").read_text().splitlines()]
    assert (
        len(profile) == 48 and sum(r["generated_tokens"] for r in profile) > 48 * 8 * 10
    )  # boxes, not words


@pytest.mark.e2e
def test_overview_reports_every_task(study):
    root, first, _ = study
    overview = json.loads((root / "overview.json").read_text())
    assert overview["tasks"] == ["classification", "grounding", "reasoning"]
    assert set(overview["buckets"]["grounding"]) >= {"easy", "medium", "hard", "total"}
    report = (root / "report.md").read_text()
    assert "| classification |" in report and "| grounding |" in report and "OOD mean (all)" in report
    assert "| Model | Runs | refs (ID) | relational (OOD) | indirect (OOD) | OOD mean |" in first.stdout
    overall = overview["accuracy"]["sft-m"]["OOD mean (all)"][
        "vs_sft"
    ]  # paired over every OOD split of every task
    assert overall["items"] == [20] * 6 and overall["seeds"] == 2
    assert overall["low"] <= overall["delta"] <= overall["high"]


@pytest.mark.e2e
def test_every_method_is_paired_with_sft(study):
    results = json.loads((task_run(study) / "07_report" / "results.json").read_text())
    for method in METHODS:
        entry = results["models"][method]
        if method == "sft" or entry["n_a"]:
            continue
        assert set(entry["vs_sft"]) == {"photo", "rendition", "adversarial", "ood_mean"}, method
        for column, c in entry["vs_sft"].items():
            assert c["seeds"] == 2 and len(c["mcnemar_p"]) == 2 and c["low"] <= c["delta"] <= c["high"], (
                method
            )
            assert c["items"] == ([20, 20] if column == "ood_mean" else [20])
    assert results["models"]["sft"]["vs_coldstart"]["photo"]["seeds"] == 2
    report = (task_run(study) / "07_report" / "report.md").read_text()
    assert "## Paired comparisons with SFT" in report and "(MDE) is" in report and "![forest]" in report
    assert "dcsft study full" not in study[1].stdout  # the pointer to the powered preset is for one-seed runs


REASONING_SPLITS = {"questions", "rephrased", "rendered"}


@pytest.mark.e2e
def test_reasoning_runs_every_stage_and_method_on_the_shipped_base(study):
    run = task_run(study, "reasoning")
    assert not (study[0].parent / "cache" / "base").exists()  # the shipped reasoning base, not a rebuild
    base = json.loads((run / "00_pretrain" / "base.json").read_text())
    assert Path(base["path"]).name == "embedded-base-reasoning"
    assert {p.name for p in (run / "05_train").iterdir()} == set(METHODS)
    results = json.loads((run / "07_report" / "results.json").read_text())
    for model in ("base", "coldstart", *METHODS):
        scores = json.loads(
            (run / "06_evaluate" / model / ("seed0" if model in METHODS else "") / "scores.json").read_text()
        )
        assert set(scores) == REASONING_SPLITS
        assert all(s["n"] == 20 and 0 <= s["accuracy"] <= 100 for s in scores.values())
        assert set(results["models"][model]["accuracy"]) >= REASONING_SPLITS


@pytest.mark.e2e
def test_reasoning_records_follow_the_reasoning_contract(study):
    run = task_run(study, "reasoning")
    records = json.loads((run / "01_prepare" / "records" / "train.json").read_text())
    for record in records:
        meta = record["meta"]
        assert record["solution"] == meta["answer"] in "ABCD" and meta["answer_type"] == "choice"
        assert meta["source"] == "embedded" and meta["kinds"] == [meta["skill"]]
        assert record["problem"].startswith(meta["question"] + "\nA. " + meta["options"][0] + "\nB. ")
    buckets = json.loads((run / "07_report" / "buckets.json").read_text())
    assert sum(buckets[b]["count"] for b in ("easy", "medium", "hard")) == 48
    assert set(buckets["kinds_by_bucket"]) >= {"counting", "comparing", "chart", "arithmetic"}
