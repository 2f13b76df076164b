"""The sweep's grid: values read as YAML, a grid from repeated --over, and bad input in one line."""

from pathlib import Path

import pytest

from dcsft.errors import ConfigError
from dcsft.sweep import grid, point_configs, point_name


def test_values_are_read_as_yaml_and_repeated_keys_make_a_grid():
    assert grid(["data.label_noise=0,0.05,0.2"]) == [{"data.label_noise": v} for v in (0, 0.05, 0.2)]
    points = grid(["data.label_noise=0,0.1", "train.methods=[sft,sft-m],[sft]"])
    assert len(points) == 4 and points[1] == {"data.label_noise": 0, "train.methods": ["sft"]}
    assert point_name({"data.label_noise": 0.1, "train.lr": "1e-3"}) == "data.label_noise=0.1,train.lr=1e-3"


@pytest.mark.parametrize(
    "overs, message",
    [
        ([], "at least one --over"),
        (["data.label_noise"], "is not of the form"),
        (["data.label_noise="], "no empty value"),
        (["data.label_noise=0.1,0.1"], "a value is listed twice"),
        (["data.label_noise=0", "data.label_noise=1"], "names a key twice"),
    ],
)
def test_a_bad_grid_is_one_line(overs, message):
    with pytest.raises(ConfigError, match=message):
        grid(overs)


@pytest.mark.parametrize(
    "over, message",
    [
        (
            "nosuch.key=1,2",
            "sweep point nosuch.key=1: --set nosuch.key=1: nosuch: Extra inputs are not permitted",
        ),
        (
            "data.label_noise=0,2",
            "--set data.label_noise=2: data.label_noise: Input should be less than or equal to 1",
        ),
        ("train.methods=[sft],[nonsense]", "unknown method"),
    ],
)
def test_every_point_is_checked_before_any_work(tmp_path, over, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        point_configs(None, [], tmp_path / "sw", grid([over]))
    assert not (tmp_path / "sw").exists()


def test_points_get_their_own_run_directories(tmp_path):
    configs = point_configs("full", ["seeds=2"], tmp_path, grid(["data.label_noise=0,0.1"]))
    assert [Path(c.run_dir).name for c in configs] == ["data.label_noise=0", "data.label_noise=0.1"]
    assert [c.data.label_noise for c in configs] == [0, 0.1] and configs[0].seeds == 2
