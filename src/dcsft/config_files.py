"""Reading a study config's YAML files and `--set` overrides into one dict, before dcsft.config
validates it: presets by name, `extends:` chains, YAML read as YAML, overrides applied key by key,
and switching `data.source` dropping the previous source's keys."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dcsft.data.sources import CONFIGS, DEFAULT_SOURCE, keys_of
from dcsft.errors import ConfigError


def default_config_path() -> Path:
    return Path(str(resources.files("dcsft") / "configs" / "embedded.yaml"))


def yaml_problem(err: yaml.YAMLError) -> str:
    """The YAML error on one line: a reader error (control characters) has no `problem` and a
    multi-line message."""
    return " ".join(str(getattr(err, "problem", None) or err).split())


def parse_override(override: str) -> tuple[list[str], Any]:
    """`profile.k=8` -> (["profile", "k"], 8); the value is read as YAML so lists and numbers work."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not of the form section.key=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {override!r}: value is not valid YAML ({yaml_problem(err)})") from None
    return key.strip().split("."), value


def merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` applied recursively (sections merged, values replaced)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def stated_source(layer: dict) -> Any:
    """The data.source a config layer (a file, a task's overrides) states, else None."""
    data = layer.get("data")
    return data.get("source") if isinstance(data, dict) else None


def switch_source(config: dict, source: Any) -> dict:
    """`config` made ready for a layer that sets data.source to another source: the data keys
    the new source does not read are dropped, from the study's data section and each task's
    (written for the old source); the keys both read carry over. So `--set data.source=imagenet`
    on the embedded default leaves the world's keys behind, and a key the new source does not
    read is an error only where it is set along with the new source or after it."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    if source not in CONFIGS or source == data.get("source", DEFAULT_SOURCE):
        return config
    keys = set(keys_of(source))
    out = {**config, "data": {k: v for k, v in data.items() if k in keys}}
    if isinstance(config.get("tasks"), dict):
        out["tasks"] = {name: task_for_source(task, keys) for name, task in config["tasks"].items()}
    return out


def task_for_source(task: Any, keys: set[str]) -> Any:
    """A task's overrides with the data keys outside `keys` dropped (unless it names its own source)."""
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict) or "source" in data:
        return task
    return {**task, "data": {k: v for k, v in data.items() if k in keys}}


def layered(base: dict, layer: dict) -> dict:
    """`layer` merged over `base`, a change of data.source first applied to `base` (switch_source)."""
    return merge(switch_source(base, stated_source(layer)), layer)


def has_path(data: dict, path: list[str]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def apply_override(data: dict, path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {'.'.join(path)}: {part!r} is not a section")
        node = child
    node[path[-1]] = value


def preset_path(name: str) -> Path:
    """A packaged config by name (`embedded`, `full`): dcsft/configs/<name>.yaml."""
    return Path(str(resources.files("dcsft") / "configs" / f"{name}.yaml"))


def config_path(path: str | Path | None) -> Path:
    """The config file meant: a file, else a packaged preset's name, else the default."""
    if not path:
        return default_config_path()
    path = Path(path)
    if not path.exists() and path.suffix == "" and preset_path(path.name).exists():
        return preset_path(path.name)
    return path


def read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A config file's mapping, with the file it `extends` (a preset name or a path relative to
    it) merged underneath, so that a preset states only what differs from its parent."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({yaml_problem(err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{path}: extends: expected a preset name or a config file path, got {parent!r}")
    parent_path = preset_path(parent) if preset_path(parent).exists() else path.parent / parent
    if parent_path.resolve() in chain:
        raise ConfigError(f"{path}: extends {parent!r} makes a cycle")
    return layered(read_yaml(parent_path, (*chain, path.resolve())), data)


def overrides_layer(parsed: list[tuple[list[str], Any]]) -> dict:
    """The command line's overrides as one config layer (the last of a key wins)."""
    layer: dict = {}
    for keys, value in parsed:
        apply_override(layer, keys, value)
    return layer
