"""The study's stages, written once: each stage's verb, module, folder, upstream stages and doc.

Everything that lists stages derives from STAGES: the CLI's verbs (dcsft.cli), the order of
`dcsft study` (dcsft.study), the upstream propagation of `dcsft status` (dcsft.status), the
stages a launcher runs (dcsft.launch), RunDir's folder names (dcsft.rundir) and whether a stage
runs on every rank of torchrun / accelerate launch (dcsft.stage). This module imports nothing of
dcsft, so that each of them may import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageSpec:
    name: str  # the CLI verb, and the stage's name in summaries and `dcsft status`
    module: str  # whose run(cfg) does the stage; imported only when the stage runs
    folder: str  # its folder in the run directory (numbered, so that `ls` shows the study's order)
    upstream: tuple[str, ...]  # stages whose outputs it reads: a change there makes it rebuild
    doc: str  # one line: the verb's help
    data_parallel: bool = False  # runs on every rank of a launcher (else it refuses to run there)
    loads_model: bool = False  # loads a model: the model's settings must suit this machine (dcsft.launch)
    trains: bool = False  # trains a model: where a DeepSpeed launch config applies (dcsft.launch)


STAGES = (
    StageSpec(
        "pretrain",
        "dcsft.pretrain",
        "00_pretrain",
        (),
        "Resolve the base model: model.base, or the embedded base (built once per machine).",
    ),
    StageSpec(
        "prepare", "dcsft.prepare", "01_prepare", (), "Draw or load every split and write its records."
    ),
    StageSpec(
        "coldstart",
        "dcsft.coldstart",
        "02_coldstart",
        ("pretrain", "prepare"),
        "Full fine-tune of the base on the cold-start set.",
        data_parallel=True,
        loads_model=True,
        trains=True,
    ),
    StageSpec(
        "profile",
        "dcsft.profiling",
        "03_profile",
        ("prepare", "coldstart"),
        "Sample k responses per training sample and score them.",
        data_parallel=True,
        loads_model=True,
    ),
    StageSpec(
        "curate",
        "dcsft.curate",
        "04_curate",
        ("prepare", "profile"),
        "Split the training set into easy / medium / hard buckets.",
    ),
    StageSpec(
        "train",
        "dcsft.train.run",
        "05_train",
        ("coldstart", "curate"),
        "Train every method from the cold start (SFT on buckets, hard mixes, curriculum, GRPO), per seed.",
        data_parallel=True,
        loads_model=True,
        trains=True,
    ),
    StageSpec(
        "evaluate",
        "dcsft.evaluate",
        "06_evaluate",
        ("pretrain", "prepare", "coldstart", "train"),
        "Greedy accuracy on the ID and OOD splits for every model and seed.",
        data_parallel=True,
        loads_model=True,
    ),
    StageSpec(
        "report",
        "dcsft.report.run",
        "07_report",
        ("curate", "train", "evaluate"),
        "Tables (accuracy, buckets, compute), figures, report.md/.html and results.json.",
    ),
)
BY_NAME = {spec.name: spec for spec in STAGES}
NAMES = tuple(BY_NAME)
