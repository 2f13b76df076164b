"""`dcsft export --format verl | hf` (dcsft.data.exports), checked against what reads them: the
parquet file's schema and rows, read as verl's and EasyR1's RLHFDataset read them (neither is
installed here: their loaders' steps are done by hand), and the datasets folder through
`datasets.load_from_disk`, on a small run directory written by hand in the stages' formats."""

import io
import json
import re
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_cli_data import invoke, one_error_line  # the CLI in this process, written once

from dcsft.data.exports import VERL_SCHEMA, curated_rows, export_curated, export_hf, export_verl
from dcsft.errors import DataError
from dcsft.rundir import RunDir, write_json, write_jsonl

PROBLEM = "What is the shape in the image? Answer with one word."
# Per training record: its label, pass count of k = 4 and bucket.
SAMPLES = [("circle", 4, "easy"), ("square", 2, "medium"), ("triangle", 0, "hard"), ("circle", 1, "medium")]
K = 4


def mark_done(stage, stats: dict) -> None:
    stage.root.mkdir(parents=True, exist_ok=True)
    write_json(stage.root / "stats.json", {"seconds": 0.0, **stats})
    write_json(stage.marker, {"fingerprint": f"{stage.name}-fp"})


@pytest.fixture
def run(tmp_path) -> tuple[RunDir, list[dict]]:
    """A run directory through curate: tiny PNGs, their records and assignments, marked done."""
    rundir = RunDir(tmp_path / "run")
    images = rundir.prepare.root / "images" / "train"
    images.mkdir(parents=True)
    records = []
    for index, (label, _, _) in enumerate(SAMPLES):
        path = images / f"{index:05d}.png"
        Image.new("RGB", (8, 6), (60 * index, 200, 90)).save(path)
        meta = {"noise": "small" if index == 2 else None, "index": index}
        records.append(
            {
                "id": f"train-{index:05d}",
                "problem": PROBLEM,
                "solution": label,
                "image": str(path),
                "meta": meta,
            }
        )
    write_json(rundir.records("train"), records)
    mark_done(rundir.prepare, {"task": "classification", "records": {"train": len(records)}})
    mark_done(rundir.profile, {"method": "sample"})
    write_jsonl(
        rundir.assignments_file,
        [
            {"id": r["id"], "bucket": b, "pass_count": p, "k": K, "noise": None}
            for r, (_, p, b) in zip(records, SAMPLES)
        ],
    )
    mark_done(rundir.curate, {})
    return rundir, records


def png(record: dict) -> bytes:
    return Path(record["image"]).read_bytes()


# --- verl / EasyR1 parquet --------------------------------------------------------------------


def test_verl_parquet_has_the_schema_and_rows_verl_and_easyr1_read(run, tmp_path):
    rundir, records = run
    out = tmp_path / "out" / "medium.parquet"
    result = invoke("export", rundir.root, "--bucket", "medium", "--format", "verl", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote 2 medium records (verl format)" in result.output

    schema = pq.read_schema(out)
    assert schema.names == [
        *["data_source", "prompt", "images", "ability", "reward_model", "extra_info"],  # verl's
        *["problem", "answer"],  # EasyR1's (images is shared)
    ]
    assert schema.field("prompt").type == pa.list_(
        pa.struct([("role", pa.string()), ("content", pa.string())])
    )
    assert schema.field("images").type == pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    assert schema.field("reward_model").type == pa.struct(
        [("style", pa.string()), ("ground_truth", pa.string())]
    )
    assert schema.field("extra_info").type.field("pass_rate").type == pa.float64()
    assert schema.field("extra_info").type.field("index").type == pa.int64()
    assert schema.metadata is None or b"huggingface" not in schema.metadata  # any datasets version reads it
    assert schema.remove_metadata() == VERL_SCHEMA

    rows = pq.read_table(out).to_pylist()
    medium = [records[1], records[3]]
    assert rows == [
        {
            "data_source": "dcsft/classification",
            "prompt": [{"role": "user", "content": "<image>" + PROBLEM}],
            "images": [{"bytes": png(r), "path": Path(r["image"]).name}],
            "ability": "classification",
            "reward_model": {"style": "rule", "ground_truth": r["solution"]},
            "extra_info": {
                "split": "train",
                "index": i,
                "id": r["id"],
                "bucket": "medium",
                "pass_count": p,
                "k": K,
                "pass_rate": p / K,
                "answer": r["solution"],
                "question": PROBLEM,
            },
            "problem": "<image>" + PROBLEM,
            "answer": r["solution"],
        }
        for i, (r, p) in enumerate(zip(medium, (2, 1)))
    ]
    assert not list(out.parent.glob(".*.tmp"))


def test_verl_parquet_through_the_loaders_steps(run, tmp_path):
    """What verl's and EasyR1's RLHFDataset do with a row, short of the processor and tokenizer:
    both read the file with datasets.load_dataset("parquet", data_files=...)."""
    rundir, records = run
    out = tmp_path / "all.parquet"
    assert export_curated(rundir, "all", "verl", out) == 4
    dataset = datasets.load_dataset(
        "parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "c")
    )
    assert len(dataset) == 4
    for row, record, (_, passed, bucket) in zip(dataset, records, SAMPLES):
        # verl (verl/utils/dataset/rl_dataset.py, _build_messages): one "<image>" per image in the
        # text of the prompt_key "prompt" messages, each image a PIL image or a dict with "bytes"
        images = row["images"]
        for message in row["prompt"]:
            segments = [s for s in re.split("(<image>|<video>)", message["content"]) if s != ""]
            assert segments == ["<image>", PROBLEM]
        assert len(images) == 1 and isinstance(images[0], dict) and "bytes" in images[0]
        image = Image.open(io.BytesIO(images[0]["bytes"]))
        image.load()
        assert image.size == (8, 6) and image.convert("RGB").getpixel((0, 0)) == Image.open(
            record["image"]
        ).getpixel((0, 0))
        # verl's reward manager: data_source, reward_model.ground_truth, extra_info
        assert row["reward_model"]["ground_truth"] == record["solution"]
        assert row["extra_info"]["id"] == record["id"] and row["extra_info"]["bucket"] == bucket
        assert row["extra_info"]["pass_rate"] == passed / K
        # EasyR1 (verl/utils/dataset.py with examples/config.yaml's keys): prompt_key "problem" is
        # a string split on "<image>", answer_key "answer" becomes ground_truth, image_key "images"
        content = []
        for i, text in enumerate(row["problem"].split("<image>")):
            if i != 0:
                content.append({"type": "image"})
            if text:
                content.append({"type": "text", "text": text})
        assert content == [{"type": "image"}, {"type": "text", "text": PROBLEM}]
        assert row["answer"] == record["solution"]
        assert Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB").size == (8, 6)


def test_a_problem_that_has_its_placeholder_keeps_one(run, tmp_path):
    rundir, records = run
    records[1]["problem"] = "Look: <image> what shape?"
    write_json(rundir.records("train"), records)
    out = tmp_path / "m.parquet"
    export_curated(rundir, "medium", "verl", out)
    row = pq.read_table(out).to_pylist()[0]
    assert row["prompt"][0]["content"] == row["problem"] == "Look: <image> what shape?"


def test_a_pass_rate_curate_wrote_is_kept(run):
    rundir, records = run
    write_jsonl(
        rundir.assignments_file,
        [{"id": r["id"], "bucket": "medium", "pass_count": 1, "k": K, "pass_rate": 0.3} for r in records],
    )
    assert [r["pass_rate"] for r in curated_rows(rundir, "all")] == [0.3] * 4


# --- datasets folder (TRL, open-r1) ---------------------------------------------------------------


def test_hf_folder_loads_with_the_image_feature_bucket_and_pass_rate(run, tmp_path):
    rundir, records = run
    out = tmp_path / "curated"
    result = invoke("export", rundir.root, "-b", "all", "-f", "hf", "-o", out)
    assert result.exit_code == 0, result.output
    assert "wrote 4 all records (hf format)" in result.output
    dataset = datasets.load_from_disk(str(out))
    assert isinstance(dataset.features["image"], datasets.Image)
    assert dataset.column_names == [
        *["id", "image", "problem", "solution", "meta", "bucket", "pass_count", "k", "pass_rate"],
        *["prompt", "completion"],
    ]
    assert dataset["bucket"] == [b for _, _, b in SAMPLES]
    assert dataset["pass_rate"] == [p / K for _, p, _ in SAMPLES]
    assert dataset["pass_count"] == [p for _, p, _ in SAMPLES] and dataset["k"] == [K] * 4
    for row, record in zip(dataset, records):
        assert row["id"] == record["id"] and row["solution"] == record["solution"]
        assert json.loads(row["meta"]) == record["meta"]
        assert isinstance(row["image"], Image.Image) and row["image"].size == (8, 6)
        assert row["image"].convert("RGB").getpixel((1, 1)) == Image.open(record["image"]).getpixel((1, 1))
        # TRL's conversational prompt-completion (its trainers put the image into the user turn)
        assert row["prompt"] == [{"role": "user", "content": PROBLEM}]
        assert row["completion"] == [{"role": "assistant", "content": record["solution"]}]
    Path(records[0]["image"]).unlink()  # embedded: the folder no longer needs the run directory
    assert datasets.load_from_disk(str(out))[0]["image"].size == (8, 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curated", "run"]  # no temporary left


def test_hf_replaces_an_earlier_export_and_refuses_anything_else(run, tmp_path):
    rundir, _ = run
    out = tmp_path / "curated"
    export_curated(rundir, "all", "hf", out)
    assert invoke("export", rundir.root, "-b", "medium", "-f", "hf", "-o", out).exit_code == 0
    assert datasets.load_from_disk(str(out))["bucket"] == ["medium", "medium"]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    line = one_error_line(invoke("export", rundir.root, "-b", "medium", "-f", "hf", "-o", other))
    assert f"--out {other}: is a folder that is not a saved dataset" in line
    assert (other / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_error_line(
        invoke("export", rundir.root, "-b", "medium", "-f", "hf", "-o", tmp_path / "file")
    )


def test_an_empty_bucket_writes_no_rows(run, tmp_path):
    rundir, records = run
    write_jsonl(
        rundir.assignments_file, [{"id": r["id"], "bucket": "easy", "pass_count": K, "k": K} for r in records]
    )
    assert export_curated(rundir, "hard", "verl", tmp_path / "h.parquet") == 0
    assert pq.read_table(tmp_path / "h.parquet").schema.remove_metadata() == VERL_SCHEMA
    assert pq.read_table(tmp_path / "h.parquet").num_rows == 0
    assert export_curated(rundir, "hard", "hf", tmp_path / "h") == 0
    assert len(datasets.load_from_disk(str(tmp_path / "h"))) == 0


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,name", [("verl", "m.parquet"), ("hf", "m")])
def test_a_missing_image_is_one_line_and_writes_nothing(run, tmp_path, fmt, name):
    rundir, records = run
    Path(records[3]["image"]).unlink()
    out = tmp_path / "out" / name
    line = one_error_line(invoke("export", rundir.root, "-b", "medium", "-f", fmt, "-o", out))
    assert f"record train-00003: image not found: {records[3]['image']}" in line
    assert not out.exists() and not list(tmp_path.glob("out/.*"))


@pytest.mark.parametrize("fmt,name", [("verl", "m.parquet"), ("hf", "m")])
def test_an_image_gone_while_writing_is_a_data_error_naming_the_record(run, tmp_path, fmt, name):
    rundir, records = run
    rows = curated_rows(rundir, "medium")
    Path(records[3]["image"]).unlink()
    write = export_verl if fmt == "verl" else export_hf
    with pytest.raises(DataError, match="record train-00003: image not found"):
        write(rows, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_verl_needs_a_parquet_name(run, tmp_path):
    rundir, _ = run
    line = one_error_line(
        invoke("export", rundir.root, "-b", "easy", "-f", "verl", "-o", tmp_path / "x.jsonl")
    )
    assert "name the file .parquet" in line
    line = one_error_line(
        invoke("export", rundir.root, "-b", "easy", "-f", "parquet", "-o", tmp_path / "x.parquet")
    )
    assert "expected one of records, sft, trl, verl, hf" in line
