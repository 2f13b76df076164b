"""The stage table is the one list of stages: verbs, folders, order and upstream all come from it."""

from __future__ import annotations

import importlib

from typer.main import get_command

from dcsft import pretrain
from dcsft.cli import app
from dcsft.config import load_config
from dcsft.launch import MODEL_STAGES, TRAINING_STAGES
from dcsft.rundir import RunDir, read_json, write_json
from dcsft.stages import NAMES, STAGES
from dcsft.study import DATA_STAGES


def test_every_stage_is_a_verb_with_its_doc_a_folder_and_a_module_that_runs_it(tmp_path):
    commands = get_command(app).commands
    for spec in STAGES:
        assert commands[spec.name].help == spec.doc
        assert RunDir(tmp_path).stage(spec.name).root == tmp_path / spec.folder
        assert callable(importlib.import_module(spec.module).run)
    assert [spec.folder for spec in STAGES] == sorted(spec.folder for spec in STAGES)  # `ls` shows the order


def test_upstream_stages_come_first_and_the_derived_lists_follow_the_table():
    for index, spec in enumerate(STAGES):
        assert set(spec.upstream) <= set(NAMES[:index]), spec.name
    assert DATA_STAGES == ("pretrain", "prepare", "coldstart", "profile", "curate")
    assert TRAINING_STAGES == {"coldstart", "train"} <= MODEL_STAGES


def test_pretrain_records_the_base_once_and_finds_it_again_when_it_is_gone(tmp_path):
    local = tmp_path / "my-model"
    local.mkdir()
    cfg = load_config(None, [f"run_dir={tmp_path / 'run'}", f"model.base={local}"])
    pretrain.run(cfg)
    assert pretrain.resolved_base(cfg) == (str(local), str(local))

    embedded = load_config(None, [f"run_dir={tmp_path / 'embedded'}"])
    pretrain.run(embedded)
    path, identity = pretrain.resolved_base(embedded)
    assert identity.startswith("embedded:") and (tmp_path / "embedded" / "00_pretrain" / "DONE").exists()
    base_file = RunDir(embedded.run_dir).base_file
    write_json(base_file, {"path": str(tmp_path / "cleared-cache"), "identity": identity})
    pretrain.run(embedded)  # the recorded base is gone: resolved again, not trusted
    assert read_json(base_file)["path"] == path
