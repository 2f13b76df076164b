"""The study config: packaged default, overrides, one-line errors, dump round trip, section hashes."""

import re

import pytest
import yaml

from dcsft.config import (
    METHODS,
    StudyConfig,
    dump_config,
    hard_mix_percent,
    is_method,
    load_config,
)
from dcsft.config_files import default_config_path, parse_override
from dcsft.errors import ConfigError

HAS_DEFAULT = default_config_path().exists()


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("run_dir: runs/test\nprofile:\n  k: 8\ntrain:\n  steps: 10\n  lora:\n    r: 4\n")
    return path


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message
    return message


def _assert_subset(expected, actual, where="config"):
    """Every key stated in the YAML holds the YAML's value in the loaded config."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key}"
            _assert_subset(value, actual[key], f"{where}.{key}")
    else:
        assert actual == expected, where


@pytest.mark.skipif(not HAS_DEFAULT, reason="packaged default config not written yet")
def test_default_config_loads_with_its_yaml_values():
    cfg = load_config()
    assert isinstance(cfg, StudyConfig)
    raw = yaml.safe_load(default_config_path().read_text())
    assert isinstance(raw, dict) and raw
    _assert_subset(raw, cfg.model_dump())
    assert all(is_method(m) for m in cfg.train.methods)
    assert cfg.task == "classification"


def test_load_file(cfg_file):
    cfg = load_config(cfg_file)
    assert cfg.run_dir == "runs/test"
    assert cfg.train.steps == 10
    assert cfg.train.lora.r == 4
    # Unstated keys keep their defaults.
    assert cfg.train.lora.alpha == StudyConfig().train.lora.alpha
    assert cfg.profile.temperature == StudyConfig().profile.temperature


def test_empty_file_is_all_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == StudyConfig()


def test_defaults_are_the_papers():
    cfg = StudyConfig()
    assert cfg.profile.k == 8 and cfg.profile.temperature == 0.9
    assert cfg.profile.top_p == 1.0 and cfg.profile.top_k == 50
    assert (cfg.train.lora.r, cfg.train.lora.alpha, cfg.train.lora.dropout) == (32, 64, 0.05)
    assert cfg.model.max_pixels == 802_816
    assert cfg.train.methods == list(METHODS)


def test_overrides(cfg_file):
    cfg = load_config(
        cfg_file,
        [
            "profile.k=4",
            "train.methods=[sft,sft-m]",
            "train.lora.r=8",
            "profile.temperature=0.7",
            "train.lr=3e-4",
            "train.balance=true",
            "train.lora.target_modules=[q_proj,v_proj]",
        ],
    )
    assert cfg.profile.k == 4
    assert cfg.train.methods == ["sft", "sft-m"]
    assert cfg.train.lora.r == 8
    assert cfg.train.lora.alpha == 64  # sibling keys untouched
    assert cfg.profile.temperature == pytest.approx(0.7)
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.train.balance is True
    assert cfg.train.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.train.steps == 10  # from the file


def test_override_creates_missing_section(tmp_path):
    path = tmp_path / "bare.yaml"
    path.write_text("seed: 3\n")
    cfg = load_config(path, ["evaluate.batch_size=7"])
    assert cfg.evaluate.batch_size == 7 and cfg.seed == 3


def test_later_override_wins(cfg_file):
    assert load_config(cfg_file, ["profile.k=4", "profile.k=5"]).profile.k == 5


def test_parse_override():
    assert parse_override("profile.k=8") == (["profile", "k"], 8)
    assert parse_override(" train.methods = [sft, sft-e]") == (["train", "methods"], ["sft", "sft-e"])
    assert parse_override("run_dir=a=b") == (["run_dir"], "a=b")


@pytest.mark.parametrize("override", ["profile.k", "=3", "", " =x"])
def test_malformed_override(cfg_file, override):
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, [override])
    assert "section.key=value" in _one_line(err)


def test_override_value_not_yaml(cfg_file):
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, ["train.methods=[sft"])
    assert "train.methods" in _one_line(err)


def test_override_into_a_scalar(cfg_file):
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, ["seed.x=1"])
    assert "seed" in _one_line(err)


def test_unknown_key(cfg_file):
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, ["profile.kk=4"])
    message = _one_line(err)
    assert message.startswith("--set profile.kk=4: profile.kk:")


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lora:\n    rank: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "train.lora.rank" in _one_line(err)


def test_unknown_section(cfg_file):
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, ["ppo.beta=0.04"])
    assert "ppo" in _one_line(err)


def test_unknown_method(cfg_file):
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, ["train.methods=[sft,ppo]"])
    message = _one_line(err)
    assert "train.methods" in message and "ppo" in message


@pytest.mark.parametrize(
    "name, percent", [("sft-m+h5", 5.0), ("sft-m+h0", 0.0), ("sft-m+h12.5", 12.5), ("sft-m+h99", 99.0)]
)
def test_hard_mix_methods_are_methods(name, percent):
    assert hard_mix_percent(name) == percent
    assert is_method(name)


@pytest.mark.parametrize(
    "name", ["sft-m+h100", "sft-m+h", "sft-m+h-5", "sft-e+h5", "sft-m+h5x", "curriculum2"]
)
def test_malformed_method_names_are_rejected(cfg_file, name):
    assert not is_method(name)
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, [f"train.methods=[sft,{name}]"])
    assert "sft-m+h<x>" in _one_line(err)


def test_a_method_listed_twice_is_rejected(cfg_file):
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, ["train.methods=[sft,sft-m,sft]"])
    assert "twice" in _one_line(err)


def test_training_seeds_follow_the_seed(cfg_file):
    assert load_config(cfg_file, ["seed=7", "seeds=3"]).train_seeds == [7, 8, 9]
    assert load_config(cfg_file).train_seeds == [load_config(cfg_file).seed]
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, ["seeds=0"])
    assert "--set seeds=0" in _one_line(err)


@pytest.mark.parametrize(
    "override, where",
    [
        ("profile.k=0", "profile.k"),
        ("profile.k=many", "profile.k"),
        ("data.label_noise=1.5", "data.label_noise"),
        ("model.dtype=float64", "model.dtype"),
    ],
)
def test_invalid_values(cfg_file, override, where):
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, [override])
    assert where in _one_line(err)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("seed: 0\nprofile:\n  k: [8\n  temperature: 0.9\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = _one_line(err)
    assert str(path) in message and "line" in message and "YAML" in message


def test_invalid_yaml_line_number(tmp_path):
    path = tmp_path / "tab.yaml"
    path.write_text("seed: 0\nrun_dir: x\n\tprofile: 1\n")  # a tab cannot start a token: line 3
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "line 3" in _one_line(err)


def test_top_level_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- seed\n- 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "mapping" in _one_line(err)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = _one_line(err)
    assert str(path) in message and "not found" in message


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_dump_round_trips(cfg_file, tmp_path):
    cfg = load_config(
        cfg_file,
        [
            "train.methods=[sft-m,sft-em]",
            "train.lora.target_modules=[q_proj]",
            "train.extra={logging_steps: 5}",
            "coldstart.max_length=128",
            "model.dtype=bfloat16",
        ],
    )
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(dump_config(cfg))
    again = load_config(dumped)
    assert again == cfg
    assert again.train.extra == {"logging_steps": 5}
    assert dump_config(again) == dump_config(cfg)


def test_dump_of_defaults_round_trips(tmp_path):
    dumped = tmp_path / "defaults.yaml"
    dumped.write_text(dump_config(StudyConfig()))
    assert load_config(dumped) == StudyConfig()


def test_section_hash():
    base = StudyConfig()
    changed_profile = base.model_copy(update={"profile": base.profile.model_copy(update={"k": 4})})
    changed_train = base.model_copy(update={"train": base.train.model_copy(update={"steps": 1})})

    assert base.section_hash("profile") == StudyConfig().section_hash("profile")  # stable
    assert changed_profile.section_hash("profile") != base.section_hash("profile")
    assert changed_train.section_hash("profile") == base.section_hash("profile")
    assert changed_train.section_hash("train") != base.section_hash("train")
    assert changed_train.section_hash("profile", "model") == base.section_hash("profile", "model")
    assert len(base.section_hash("profile")) == 16


def test_section_hash_nested_and_scalars(cfg_file):
    a = load_config(cfg_file)
    b = load_config(cfg_file, ["train.lora.r=16"])
    c = load_config(cfg_file, ["seed=1"])
    assert a.section_hash("train") != b.section_hash("train")
    assert a.section_hash("seed") != c.section_hash("seed")
    assert a.section_hash("train") == c.section_hash("train")
    assert a.section_hash("profile") != a.section_hash("train")  # names are part of the payload


def test_default_study_runs_the_three_tasks_each_in_its_own_folder():
    cfg = load_config()
    assert cfg.task_names == ["classification", "grounding", "reasoning"]
    grounding = cfg.for_task("grounding")
    assert grounding.task == "grounding" and grounding.tasks == {}
    assert grounding.run_dir.endswith("grounding") and grounding.data.ood_splits == ["relational", "indirect"]
    assert grounding.profile.max_new_tokens == 24 and grounding.profile.k == cfg.profile.k  # others inherited
    assert cfg.for_task("classification").data.ood_splits == ["rendition", "adversarial"]
    reasoning = cfg.for_task("reasoning")
    assert reasoning.data.ood_splits == ["rephrased", "rendered"] and reasoning.model.max_pixels == 112 * 112
    assert reasoning.pretrain.reasoning.steps > 0 and cfg.for_task("grounding").pretrain.reasoning.steps == 0


def test_command_line_overrides_beat_the_file_in_every_task():
    cfg = load_config(None, ["data.n_train=48", "profile.max_new_tokens=9"])
    assert cfg.for_task("grounding").data.n_train == 48  # the file's grounding section says 1200
    assert cfg.for_task("grounding").profile.max_new_tokens == 9
    assert cfg.for_task("classification").profile.max_new_tokens == 9
    one = load_config(None, ["tasks.grounding.profile.max_new_tokens=30"])
    assert one.for_task("grounding").profile.max_new_tokens == 30
    assert one.for_task("classification").profile.max_new_tokens == 16


def test_one_task_study_uses_the_run_dir_itself():
    cfg = load_config(None, ["tasks={}", "run_dir=somewhere"])
    assert cfg.task_names == ["classification"] and cfg.for_task("classification").run_dir == "somewhere"
    with pytest.raises(ConfigError, match="not in this study"):
        cfg.for_task("grounding")


def test_a_bad_task_override_is_named():
    with pytest.raises(ConfigError, match=r"tasks\.grounding\.data\.n_train"):
        load_config(None, ["tasks.grounding.data.n_train=many"])
    with pytest.raises(ConfigError, match="not in this study"):
        load_config().for_task("detection")


@pytest.mark.parametrize("override", ["0=\x08", "a=\x1f", "profile.k=\x00"])
def test_control_characters_in_an_override_give_one_line(override):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert "\n" not in str(err.value) and "not valid YAML" in str(err.value)


def test_full_preset_extends_the_embedded_default():
    default, full = load_config(), load_config("full")
    assert full.seeds == 3 and full.run_dir == "runs/full" and full.data.n_test == 1000
    assert full.task_names == default.task_names
    for name in full.task_names:
        assert (
            "curriculum" in full.for_task(name).train.methods
            and "sft-m+h15" in full.for_task(name).train.methods
        )
    grounding = full.for_task("grounding")
    assert (
        grounding.data.n_test == 500
        and grounding.data.image_size == default.for_task("grounding").data.image_size
    )
    assert (
        full.train.steps == default.train.steps and full.grpo == default.grpo
    )  # only what it states differs


def test_extends_merges_under_the_file_and_refuses_cycles(tmp_path):
    parent = tmp_path / "parent.yaml"
    parent.write_text("extends: embedded\nseed: 3\ntrain: {steps: 7}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\ntrain: {lr: 0.5}\n")
    cfg = load_config(child)
    assert (cfg.seed, cfg.train.steps, cfg.train.lr, cfg.data.n_train) == (
        3,
        7,
        0.5,
        load_config().data.n_train,
    )
    parent.write_text("extends: child.yaml\n")
    with pytest.raises(ConfigError, match="makes a cycle"):
        load_config(child)
    child.write_text("extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml: config file not found"):
        load_config(child)


def test_unknown_key_in_a_file_names_the_file_not_an_override(tmp_path):
    bad = tmp_path / "bad_key.yaml"
    bad.write_text("trainnig: {steps: 3}\n")
    with pytest.raises(ConfigError, match=f"^{bad}: trainnig: Extra inputs"):
        load_config(bad, ["run_dir=/tmp/x"])
    with pytest.raises(ConfigError, match=r"^--set nosuch.key=1: nosuch: Extra inputs"):
        load_config(None, ["nosuch.key=1"])


@pytest.mark.parametrize(
    "override, bounds",
    [
        ("data.small=1.5", r"\[0, 1\]"),
        ("data.context=-0.1", r"\[0, 1\]"),
        ("data.novel_classes=5", r"\[0, 4\]"),
        ("profile.k=0", r"\[1, inf\)"),
        ("profile.temperature=0", r"\(0, inf\)"),
    ],
)
def test_a_dial_out_of_range_names_the_key_and_its_range(override, bounds):
    key = override.partition("=")[0]
    with pytest.raises(
        ConfigError, match=rf"^--set {re.escape(override)}: {re.escape(key)}: .*valid range {bounds}"
    ):
        load_config(None, [override])


def test_exclusive_noise_shares_above_one_are_refused_before_anything_is_drawn():
    from dcsft.data.splits import check_data

    with pytest.raises(ConfigError, match=r"data.label_noise \+ data.ambiguous: 0.7 \+ 0.5 is above 1"):
        check_data(load_config(None, ["data.label_noise=0.7", "data.ambiguous=0.5"]))


def test_grounding_hardness_shares_above_one_are_refused_before_anything_is_drawn():
    from dcsft.data.splits import check_data

    study = load_config(None, ["data.occluded=0.6", "data.twin=0.5"])
    with pytest.raises(
        ConfigError, match=r"data.small \+ data.occluded \+ data.twin: 0.15 \+ 0.6 \+ 0.5 is above 1"
    ):
        check_data(study.for_task("grounding"))
    check_data(study.for_task("classification"))  # the classification world has no such mix


def test_a_key_the_source_does_not_read_is_one_line_naming_its_keys():
    with pytest.raises(ConfigError) as err:
        load_config("configs/paper/imagenet_3b.yaml", ["data.n_train=5"])
    message = _one_line(err)
    assert message.startswith(
        "--set data.n_train=5: data.n_train: source paper does not read this key; its keys: "
    )
    assert "root, bad_images, max_test, folders, manifest" in message and "n_train," not in message
    with pytest.raises(
        ConfigError,
        match=r"data.image_size: source imagenet does not read this key; its "
        r"keys: seed, ood_splits, root, .*per_class",
    ):
        load_config(None, ["tasks={}", "data={source: imagenet, image_size: 84, per_class: {coldstart: 1}}"])


def test_switching_the_source_on_the_default_leaves_the_worlds_keys_behind(tmp_path):
    cfg = load_config(
        None, ["data.source=imagenet", "data.root=/data/imagenet", "data.per_class={coldstart: 4}"]
    )
    assert cfg.data.source == "imagenet" and cfg.data.root == "/data/imagenet"
    assert cfg.data.ood_splits == ["imagenet-r", "imagenet-a"]  # imagenet's own default, not the world's
    assert not hasattr(cfg.data, "image_size") and cfg.for_task("classification").data.source == "imagenet"
    assert not hasattr(cfg.for_task("grounding").data, "image_size")  # the grounding task's world keys too
    # a file that extends the default, and a task of its own, switch the same way
    (tmp_path / "records.yaml").write_text(
        "extends: embedded\ndata: {source: records, ood_splits: [d], "
        "files: {coldstart: a, train: b, test: c, d: d}}\n"
    )
    records = load_config(tmp_path / "records.yaml", ["tasks={}"])
    assert records.data.source == "records" and records.data.seed == 0 and records.data.files["train"] == "b"
    study = load_config(
        None, ["tasks.grounding.data={source: refcoco, files: {ref-l4: r.json, lisa-grounding: l.json}}"]
    )
    grounding = study.for_task("grounding")
    assert grounding.data.source == "refcoco" and grounding.data.ood_splits == ["ref-l4", "lisa-grounding"]
    assert study.for_task("classification").data.source == "embedded"


def test_the_embedded_defaults_keep_their_prepare_fingerprints():
    """The embedded source holds exactly the keys prepare's fingerprint always read."""
    from dcsft.data.sources.embedded import EmbeddedSource

    assert set(EmbeddedSource.model_fields) == {
        "source",
        "seed",
        "image_size",
        "n_coldstart",
        "n_train",
        "n_test",
        "label_noise",
        "ambiguous",
        "small",
        "context",
        "novel_classes",
        "occluded",
        "twin",
        "ood_splits",
    }


def test_sweeping_a_world_key_still_overrides_every_task():
    cfg = load_config(None, ["data.label_noise=0.1"])
    assert {cfg.for_task(name).data.label_noise for name in cfg.task_names} == {0.1}
