"""Data-parallel batches (dcsft.distributed): ranks of a real gloo process group, forked from
this process, score batch i on rank i % world with a stand-in scorer; the merged file must be
byte for byte the one-process file, partial files of killed ranks must be resumed, and only
rank 0 may prepare the folder, write the marker, hold the lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest
from torch import distributed as torch_distributed  # imported once here, not in every forked rank

from dcsft import distributed
from dcsft.errors import StageError
from dcsft.resumable import batched_jsonl
from dcsft.rundir import RunDir, Stage
from dcsft.stage import run_stage

RECORDS = [{"id": f"r{i}", "problem": "q", "solution": "star"} for i in range(11)]
SIZE = 3  # batches of 3, 3, 3 and a short last one of 2


def rows_of(batch: list[dict], index: int) -> list[dict]:
    """What a seeded scorer returns: depends on the batch index and the batch's records only."""
    return [{"id": r["id"], "batch": index, "answer": f"{r['id']}·{index}"} for r in batch]


def scorer(log: Path):
    def load():
        def score(batch, index):
            with log.open("a") as out:
                out.write(f"{distributed.rank()} {index}\n")
            return rows_of(batch, index)

        return score

    return load


def scored(log: Path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in log.read_text().splitlines()] if log.exists() else []


def line(row: dict) -> str:
    return json.dumps(row) + "\n"


def batch_lines(index: int) -> str:
    return "".join(line(r) for r in rows_of(RECORDS[index * SIZE : (index + 1) * SIZE], index))


@pytest.fixture
def reference(tmp_path) -> bytes:
    """The output of today's one-process path."""
    path = tmp_path / "reference" / "out.jsonl"
    path.parent.mkdir()
    rows, start = batched_jsonl(path, RECORDS, SIZE, "profile", "scoring", scorer(tmp_path / "reference.log"))
    assert start == 0 and [r["id"] for r in rows] == [r["id"] for r in RECORDS]
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.jsonl"]
    return path.read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_rank(rank: int, world: int, port: int, target, args) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    target(rank, *args)


def launch(world: int, target, *args) -> None:
    """`target(rank, *args)` in `world` forked processes joined in one gloo group (like torchrun)."""
    assert torch_distributed.is_gloo_available()
    ctx = multiprocessing.get_context("fork")
    port = free_port()
    procs = [ctx.Process(target=as_rank, args=(rank, world, port, target, args)) for rank in range(world)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    assert [proc.exitcode for proc in procs] == [0] * world


def share(rank: int, path: Path, log: Path, results: Path) -> None:
    rows, resumed = batched_jsonl(path, RECORDS, SIZE, "profile", "scoring", scorer(log))
    (results / f"{rank}.json").write_text(json.dumps({"rows": rows, "resumed": resumed}))


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_score_batch_i_on_rank_i_mod_world_and_merge_the_one_process_file(tmp_path, reference, world):
    path, log = tmp_path / "run" / "out.jsonl", tmp_path / "scored.log"
    path.parent.mkdir()
    launch(world, share, path, log, tmp_path)
    assert path.read_bytes() == reference
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.jsonl"]  # partial files merged and removed
    assert sorted(scored(log), key=lambda s: s[1]) == [(i % world, i) for i in range(4)]
    expected = [json.loads(text) for text in reference.decode().splitlines()]
    for rank in range(world):
        assert json.loads((tmp_path / f"{rank}.json").read_text()) == {"rows": expected, "resumed": 0}


def killed_run(folder: Path) -> None:
    """Partial files as a two-process run killed mid-way leaves them: rank 0 finished batch 0
    and tore its next line; rank 1 finished batch 1 and wrote one line of batch 3."""
    folder.mkdir(parents=True)
    (folder / "out.rank0-of-2.jsonl").write_text(batch_lines(0) + '{"id": "r6", "ba')
    (folder / "out.rank1-of-2.jsonl").write_text(batch_lines(1) + batch_lines(3).splitlines(keepends=True)[0])


def test_a_killed_run_resumes_from_each_ranks_partial_file(tmp_path, reference):
    path, log = tmp_path / "run" / "out.jsonl", tmp_path / "scored.log"
    killed_run(path.parent)
    launch(2, share, path, log, tmp_path)
    assert sorted(scored(log)) == [(0, 2), (1, 3)]  # batches 0 and 1 were reused, not redone
    assert path.read_bytes() == reference
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.jsonl"]
    assert json.loads((tmp_path / "1.json").read_text())["resumed"] == 6


def test_another_number_of_processes_or_one_reuses_every_finished_batch(tmp_path, reference):
    three, log3 = tmp_path / "three" / "out.jsonl", tmp_path / "three.log"
    killed_run(three.parent)
    launch(3, share, three, log3, tmp_path)
    assert sorted(scored(log3), key=lambda s: s[1]) == [
        (2, 2),
        (0, 3),
    ]  # 0 and 1 were copied by ranks 0 and 1
    assert three.read_bytes() == reference

    one, log1 = tmp_path / "one" / "out.jsonl", tmp_path / "one.log"
    killed_run(one.parent)
    one.write_text(batch_lines(0) + batch_lines(1)[:10])  # a one-process run killed in batch 1, too
    rows, resumed = batched_jsonl(one, RECORDS, SIZE, "profile", "scoring", scorer(log1))
    assert scored(log1) == [(0, 2), (0, 3)] and resumed == 6
    assert one.read_bytes() == reference and [r["batch"] for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert sorted(p.name for p in one.parent.iterdir()) == ["out.jsonl"]


def staged(rank: int, root: Path, log: Path) -> None:
    """run_stage on every rank; logs which rank prepares the folder, runs the body, marks it done."""

    def logged(what, original):
        def call(self, *args):
            with (root / "calls.log").open("a") as out:
                out.write(f"{rank} {what}\n")
            return original(self, *args)

        return call

    Stage.begin, Stage.finish = logged("begin", Stage.begin), logged("finish", Stage.finish)

    def body(folder):
        logged("body", lambda self: None)(None)
        rows, _ = batched_jsonl(folder / "out.jsonl", RECORDS, SIZE, "profile", "scoring", scorer(log))
        return "scored", {"samples": len(rows)}

    assert run_stage(RunDir(root).profile, "fp", body)["samples"] == 11


def test_only_rank_0_prepares_and_marks_the_stage_and_every_rank_skips_it_when_done(tmp_path):
    root, log = tmp_path / "run", tmp_path / "scored.log"
    root.mkdir()
    launch(2, staged, root, log)
    calls = sorted((root / "calls.log").read_text().splitlines())
    assert calls == ["0 begin", "0 body", "0 finish", "1 body"]
    assert json.loads((root / "03_profile" / "DONE").read_text()) == {"fingerprint": "fp"}
    assert sorted(p.name for p in (root / "03_profile").iterdir()) == [
        "DONE",
        "STARTED",
        "out.jsonl",
        "stats.json",
    ]

    (root / "calls.log").unlink()
    launch(2, staged_again, root, log)
    assert not (root / "calls.log").exists()  # skipped on both ranks, though rank 1 saw it unfinished
    assert len(scored(log)) == 4


def staged_again(rank: int, root: Path, log: Path) -> None:
    stage = RunDir(root).profile
    if rank == 1:
        Stage.is_done = lambda self, current: False
    assert (
        run_stage(stage, "fp", lambda folder: (_ for _ in ()).throw(AssertionError("ran")))["samples"] == 11
    )
    with pytest.raises(StageError, match="`dcsft curate` does not run across processes"):
        run_stage(RunDir(root).curate, "fp", lambda folder: ("", {}))


def test_setup_of_a_rank_other_than_0_takes_no_lock_and_writes_no_config(tmp_path, monkeypatch):
    from dcsft.cli import setup

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    setup(None, ["tasks={}"], tmp_path / "rank1", None)
    assert not (tmp_path / "rank1").exists()
    monkeypatch.setenv("RANK", "0")
    setup(None, ["tasks={}"], tmp_path / "rank0", None)
    assert sorted(p.name for p in (tmp_path / "rank0").iterdir()) == [".lock", "config.yaml"]


class StandIn:
    """What respond() returns, from a stand-in model: answers depend on the record and the batch index."""

    def __init__(self, records, index):
        self.responses = [["star" if (int(r["id"].split("-")[1]) + index) % 3 else "moon."] for r in records]


def stand_in_model(monkeypatch) -> None:
    from dcsft import evaluate

    monkeypatch.setattr(evaluate, "load_generator", lambda *args, **kwargs: "model")
    monkeypatch.setattr(evaluate, "load_processor", lambda *args, **kwargs: "processor")
    monkeypatch.setattr(
        evaluate, "respond", lambda model, processor, records, sampling, seed, index: StandIn(records, index)
    )


def evaluation_config(root: Path):
    from dcsft.config import load_config

    return load_config(None, ["tasks={}", f"run_dir={root}", "evaluate.batch_size=2"])


def prepared(root: Path):
    """A prepared run directory (7 records per evaluation split) and its config."""
    from PIL import Image

    from dcsft.data.splits import eval_splits
    from dcsft.rundir import write_json

    cfg = evaluation_config(root)
    rundir = RunDir(root)
    root.mkdir(parents=True)
    Image.new("RGB", (28, 28), "red").save(root / "star.png")
    for split in eval_splits(cfg):
        write_json(
            rundir.records(split),
            [
                {"id": f"{split}-{i}", "problem": "q", "solution": "star", "image": str(root / "star.png")}
                for i in range(7)
            ],
        )
    write_json(rundir.prepare.root / "stats.json", {"classes": ["star", "moon"], "task": "classification"})
    write_json(rundir.prepare.marker, {"fingerprint": "prepared"})
    return cfg


def evaluate_as_rank(rank: int, root: Path) -> None:
    from dcsft.evaluate import ModelToEvaluate, evaluate_model

    evaluate_model(evaluation_config(root), ModelToEvaluate("coldstart", None, "unused", None, "cold"))


def test_evaluation_across_ranks_writes_the_one_process_predictions_and_scores(tmp_path, monkeypatch):
    from dcsft.evaluate import ModelToEvaluate, evaluate_model

    stand_in_model(monkeypatch)  # inherited by the forked ranks
    one = prepared(tmp_path / "one")
    evaluate_model(one, ModelToEvaluate("coldstart", None, "unused", None, "cold"))
    prepared(tmp_path / "two")
    launch(2, evaluate_as_rank, tmp_path / "two")
    folders = [tmp_path / run / "06_evaluate" / "coldstart" for run in ("one", "two")]
    names = sorted(p.name for p in folders[0].iterdir())
    assert names == [
        "DONE",
        "STARTED",
        "adversarial.jsonl",
        "photo.jsonl",
        "rendition.jsonl",
        "scores.json",
        "stats.json",
    ]
    assert sorted(p.name for p in folders[1].iterdir()) == names
    for name in names:
        if name != "stats.json":  # wall seconds
            assert (folders[1] / name).read_bytes() == (folders[0] / name).read_bytes(), name
