"""One typed config for the whole study, loaded from YAML, with `--set a.b=value` overrides.

The packaged default (`dcsft/configs/embedded.yaml`) is the embedded study that runs on a
laptop CPU; `configs/paper/*.yaml` hold the paper's real-scale settings. Every key has a
default here, so a YAML file only states what differs.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

METHODS = ("sft", "sft-e", "sft-m", "sft-h", "sft-em", "curriculum", "grpo")
# The paper's hard-fraction ablation: medium plus hard samples making up x% of the mix, e.g. sft-m+h5.
HARD_MIX = re.compile(r"sft-m\+h(\d+(?:\.\d+)?)")


def hard_mix_percent(method: str) -> float | None:
    """x for a method named sft-m+h<x>, else None."""
    match = HARD_MIX.fullmatch(method)
    return float(match.group(1)) if match else None


def is_method(name: str) -> bool:
    percent = hard_mix_percent(name)
    return name in METHODS or (percent is not None and percent < 100)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(Section):
    base: str = "embedded"  # "embedded", a local folder, or a hub id
    min_pixels: int = 3136
    max_pixels: int = 802_816  # paper: 896 x 896
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: str = "sdpa"
    threads: int = 2  # torch intra-op threads on CPU


class DataConfig(Section):
    source: Literal["embedded"] = "embedded"
    seed: int = 0
    image_size: int = 84
    n_coldstart: int = 100
    n_train: int = 600
    n_test: int = 300  # per evaluation split
    label_noise: float = Field(0.05, ge=0, le=1)
    ambiguous: float = Field(0.05, ge=0, le=1)
    ood_splits: list[str] = ["rendition", "adversarial"]


class PretrainConfig(Section):
    """The embedded base model: a stand-in for "Qwen2.5-VL as released" (see models/pretrain.py)."""

    image_size: int = 84
    vision_hidden: int = 64
    vision_depth: int = 2
    text_hidden: int = 64
    text_layers: int = 2
    vision_steps: int = 12000
    vlm_steps: int = 10000
    batch_size: int = 16
    lr: float = 1e-3
    vlm_vision_lr_scale: float = 0.2  # phase 2: the vision tower learns at this fraction of lr
    pool_size: int = 40000
    seed: int = 0


class ColdStartConfig(Section):
    lr: float = 1e-5
    epochs: float = 1.0
    warmup_ratio: float = 0.1
    batch_size: int = 4
    max_length: int | None = None
    save_steps: int | None = Field(10, ge=1)  # checkpoint every n steps (None: never); a rerun resumes


# Settings that change how a stage is run, not what it produces: left out of its fingerprint.
NOT_IN_FINGERPRINT = {"save_steps"}


class ProfileConfig(Section):
    # sample: k sampled responses (the paper's way); adaptive: sample in rounds, stop a sample once
    # it is medium; exact: P(correct) from one teacher-forced pass (finite-answer verifiers only).
    method: Literal["sample", "adaptive", "exact"] = "sample"
    k: int = Field(8, ge=1)
    temperature: float = Field(0.9, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(50, ge=0)
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(4, ge=1)
    shared_prefill: bool = True  # encode each prompt once and draw the k responses from its cache
    adaptive_round: int = Field(2, ge=1)  # responses per sample per round of `adaptive`


class LoraConfig(Section):
    r: int = 32
    alpha: int = 64
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


class TrainConfig(Section):
    methods: list[str] = list(METHODS)
    steps: int = 600
    batch_size: int = 1
    grad_accum: int = 2
    lr: float = 1e-5
    warmup_ratio: float = 0.1
    balance: bool = False  # subsample every subset to the smallest bucket (the paper's difficulty study)
    save_steps: int | None = Field(100, ge=1)  # checkpoint every n steps (None: never); a rerun resumes
    lora: LoraConfig = LoraConfig()
    extra: dict[str, Any] = {}  # passed through to TRL's SFTConfig

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        unknown = sorted(m for m in set(methods) if not is_method(m))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)} and sft-m+h<x> (x% hard, x < 100)")
        if len(set(methods)) != len(methods):
            raise ValueError(f"a method is listed twice in {methods}")
        return methods


class GrpoConfig(Section):
    """The `grpo` method: TRL's GRPOTrainer from the cold start, LoRA as in `train.lora`."""

    steps: int = 75  # paper: 1 epoch of 9,600 prompts at 128 prompts per step
    prompts_per_step: int = 16
    grad_accum: int = 8
    num_generations: int = 8
    temperature: float = 0.9
    beta: float = 0.04
    max_completion_length: int = 128
    lr: float = 1e-5
    warmup_ratio: float = 0.0
    save_steps: int | None = Field(50, ge=1)  # checkpoint every n steps (None: never); a rerun resumes
    extra: dict[str, Any] = {}  # passed through to TRL's GRPOConfig


class EvaluateConfig(Section):
    batch_size: int = 32
    max_new_tokens: int = 128


class StudyConfig(Section):
    run_dir: str = "runs/default"
    seed: int = 0
    seeds: int = Field(1, ge=1)  # training runs per method, with seeds seed, seed+1, ...; tables show mean ± std
    task: Literal["classification"] = "classification"
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    pretrain: PretrainConfig = PretrainConfig()
    coldstart: ColdStartConfig = ColdStartConfig()
    profile: ProfileConfig = ProfileConfig()
    train: TrainConfig = TrainConfig()
    grpo: GrpoConfig = GrpoConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @property
    def train_seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def section_hash(self, *names: str) -> str:
        """Stable hash of some config sections, used to tell a finished stage from a stale one."""
        values = {name: getattr(self, name) for name in names}
        payload = {name: v.model_dump() if isinstance(v, BaseModel) else v for name, v in values.items()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message is one line for the user."""


def default_config_path() -> Path:
    return Path(str(resources.files("dcsft") / "configs" / "embedded.yaml"))


def parse_override(override: str) -> tuple[list[str], Any]:
    """`profile.k=8` -> (["profile", "k"], 8); the value is read as YAML so lists and numbers work."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not of the form section.key=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {override!r}: value is not valid YAML ({getattr(err, 'problem', None) or err})") from None
    return key.strip().split("."), value


def apply_override(data: dict, path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {'.'.join(path)}: {part!r} is not a section")
        node = child
    node[path[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> StudyConfig:
    path = Path(path) if path else default_config_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    for override in overrides:
        apply_override(data, *parse_override(override))
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        overridden = [o for o in overrides if where.startswith(o.partition("=")[0].strip())]
        source = f"--set {overridden[-1]}" if overridden else str(path)
        raise ConfigError(f"{source}: {where}: {first['msg']} ({len(err.errors())} problem(s) in all)") from None


def dump_config(config: StudyConfig) -> str:
    return yaml.safe_dump(config.model_dump(), sort_keys=False)
