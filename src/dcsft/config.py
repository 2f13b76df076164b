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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from dcsft.errors import ConfigError

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
    # torch threads per process on CPU. One: a small model's operations gain nothing from more, and
    # a second thread spinning beside another busy process slows a stage up to 30x (measured); a
    # study uses the cores by running its units in worker processes instead (`jobs`).
    threads: int = Field(1, ge=1)


class DataConfig(Section):
    """Where the splits come from (dcsft.data.splits says which key each source reads). Splits
    by role: coldstart, train, test (the ID split; in the run directory it keeps the task's
    name, photo / refs) and each of ood_splits. Paths are relative to `root` unless absolute."""

    # embedded: the drawn worlds; imagenet: ImageNet-style folders; paper: the paper's exact ImageNet
    # splits (shipped manifest); refcoco: RefCOCO (+ OOD files); records: one record file per split
    source: Literal["embedded", "imagenet", "paper", "refcoco", "records"] = "embedded"
    seed: int = 0  # draws of every source (embedded images, classes, per-class samples, subsets)
    image_size: int = 84  # embedded
    n_coldstart: int = 100  # embedded; refcoco: drawn from refcoco_splits.coldstart
    n_train: int = 600  # embedded; refcoco: drawn from refcoco_splits.train (images disjoint)
    n_test: int = 300  # embedded: per evaluation split (real sources: whole splits, see max_test)
    # embedded: the hard-sample kinds real data has, each a share (README, "Hard samples of the
    # kinds real data has", gives each default's source). Training split only: label_noise (wrong
    # label or box), ambiguous (classification: several objects or heavy occlusion; grounding: an
    # expression that fits two objects).
    label_noise: float = Field(0.06, ge=0, le=1)
    ambiguous: float = Field(0.05, ge=0, le=1)
    # Every split of the ID distribution (cold start, train, ID test). small: classification a small
    # or low-contrast object, grounding a tiny target; context (classification): the background is
    # the class's habitat, and in `adversarial` another class's; occluded, twin (grounding): a
    # partly hidden target, a near-duplicate distractor. small + occluded + twin at most 1.
    small: float = Field(0.1, ge=0, le=1)
    context: float = Field(0.5, ge=0, le=1)
    occluded: float = Field(0.15, ge=0, le=1)
    twin: float = Field(0.15, ge=0, le=1)
    novel_classes: int = Field(1, ge=0, le=4)  # classification: classes the base never saw (world.NOVEL_CLASSES)
    ood_splits: list[str] = ["rendition", "adversarial"]
    root: str | None = None  # dataset root of every real source
    folders: dict[str, str] = {}  # imagenet / paper: image folder per role (train, test, OOD name); default ROOT/train, ROOT/val, ROOT/<name>
    labels: dict[str, str] = {}  # imagenet: labels file of a flat folder per role (test: `<file> <wnid>` lines or LOC_val_solution.csv)
    files: dict[str, str] = {}  # records: the file of each role; refcoco: the file of each OOD split (problem/solution/image or ms-swift)
    names: str | None = None  # imagenet: wnid -> one-word name map (default: the paper's, shipped with dcsft)
    classes: int | list[str] | Literal["paper"] | None = None  # imagenet: all folders, n named ones drawn with seed, wnids, or the paper's 100
    per_class: dict[str, int] = {}  # imagenet: images per class per role (coldstart, train, test) drawn with seed; absent: all
    ood_classes: Literal["named", "train", "all"] = "named"  # imagenet OOD classes: those the name map names, the training ones, or all
    manifest: str | None = None  # paper: the manifest of the exact splits (default: shipped with dcsft)
    refcoco_layout: Literal["classic", "parquet"] = "classic"
    refcoco_refs: str = "refcoco/refs(unc).p"  # classic: the refer toolkit's data/ layout under root
    refcoco_instances: str = "refcoco/instances.json"
    refcoco_images: str = "images/mscoco/images/train2014"  # classic: COCO train2014; parquet: folder of image paths
    refcoco_parquet: list[str] = []  # parquet: files or glob patterns
    refcoco_splits: dict[str, str] = {"coldstart": "train", "train": "train", "test": "val"}  # role -> RefCOCO split
    one_sentence_per_ref: bool = False  # refcoco: only each ref's first expression
    max_test: int | None = Field(None, ge=1)  # real sources: at most this many per evaluation split (seeded draw)
    bad_images: Literal["skip", "error"] = "skip"  # an undecodable image or bad box: counted skip, or a one-line error


class GroundingPretrainConfig(Section):
    """Phase 3 of the embedded base: localisation (referring expressions -> boxes), continued from
    the phase-2 base with classification replay (see models/pretrain.py). steps 0: no phase 3."""

    steps: int = Field(32000, ge=0)
    batch_size: int = 16
    lr: float = 1e-3
    # Step shares: scenes (referring expressions), single objects (the one object of a phase-2
    # image located: where reading positions is learnt), the rest replays phase 2's tasks.
    scenes: float = Field(0.5, ge=0, le=1)
    single: float = Field(0.35, ge=0, le=1)
    pool_size: int = 24000
    canvas: int = 126  # scenes are drawn at this side and resized to the base's image_size
    seed: int = 0

    @model_validator(mode="after")
    def _shares(self) -> "GroundingPretrainConfig":
        if self.scenes + self.single > 1:
            raise ValueError(f"scenes + single must be at most 1, got {self.scenes} + {self.single}")
        return self


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
    grounding: GroundingPretrainConfig = GroundingPretrainConfig()


class ColdStartConfig(Section):
    lr: float = 1e-5
    epochs: float = 1.0
    warmup_ratio: float = 0.1
    batch_size: int = 4
    grad_accum: int = Field(1, ge=1)
    max_length: int | None = None
    extra: dict[str, Any] = {}  # passed through to TRL's SFTConfig, e.g. {gradient_checkpointing: true} on a GPU
    save_steps: int | None = Field(10, ge=1)  # checkpoint every n steps (None: never); a rerun resumes


# Settings that change how a stage is run, not what it produces: left out of its fingerprint.
NOT_IN_FINGERPRINT = {"save_steps", "threads"}


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
    # `adaptive` only: a sample whose first n draws are all correct (all wrong) is settled easy
    # (hard) without the rest. 0: never, buckets keep `sample`'s distribution. n > 0 trades a
    # measured bucket error for fewer draws (README, "Profiling methods").
    adaptive_settle: int = Field(0, ge=0)
    # hf: transformers' generate (any device); vllm: vLLM on a CUDA machine (method `sample` only)
    engine: Literal["hf", "vllm"] = "hf"
    engine_args: dict[str, Any] = {}  # vllm: passed to vllm.LLM, e.g. tensor_parallel_size, gpu_memory_utilization

    @model_validator(mode="after")
    def _settle_within_k(self) -> "ProfileConfig":
        if self.adaptive_settle > self.k:
            raise ValueError(f"adaptive_settle ({self.adaptive_settle}) must be at most k ({self.k}); 0 turns it off")
        return self


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
    # Freeze the vision tower (not the aligner) in the cold start, SFT and GRPO; paper: trainable.
    freeze_vision: bool = False

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
    use_vllm: bool = False  # generate the completions with vLLM through TRL (CUDA machine, pip install vllm)
    # colocate: vLLM inside the training processes; server: a separate `trl vllm-serve` process
    vllm_mode: Literal["colocate", "server"] = "colocate"


class EvaluateConfig(Section):
    batch_size: int = 32
    max_new_tokens: int = 128
    # grounding: score boxes in the resized frame the model sees, or mapped back to the original image
    frame: Literal["model", "original"] = "model"
    engine: Literal["hf", "vllm"] = "hf"  # as profile.engine; an adapter is merged before vLLM loads the model
    engine_args: dict[str, Any] = {}  # vllm: passed to vllm.LLM


class StudyConfig(Section):
    run_dir: str = "runs/default"
    seed: int = 0
    seeds: int = Field(1, ge=1)  # training runs per method, with seeds seed, seed+1, ...; tables show mean ± std
    task: Literal["classification", "grounding"] = "classification"
    # Several tasks in one study: name -> overrides of the sections above; each task runs in
    # run_dir/<name>/ (empty: the one `task`, in run_dir itself).
    tasks: dict[str, dict[str, Any]] = {}
    # Worker processes of `dcsft study` (dcsft.workers): its units (a task's data stages, each
    # training run, each model's evaluation, each report) run side by side. None: the CPU cores
    # this process may use over model.threads; 1 (no workers) on a GPU or under a launcher.
    jobs: int | None = Field(None, ge=1)
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    pretrain: PretrainConfig = PretrainConfig()
    coldstart: ColdStartConfig = ColdStartConfig()
    profile: ProfileConfig = ProfileConfig()
    train: TrainConfig = TrainConfig()
    grpo: GrpoConfig = GrpoConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks) or [self.task]

    def for_task(self, name: str) -> "StudyConfig":
        """The single-task config of one of `tasks`: its overrides applied, its own run dir."""
        if not self.tasks:
            if name != self.task:
                raise ConfigError(f"task {name!r} is not in this study (it runs {self.task!r})")
            return self
        if name not in self.tasks:
            raise ConfigError(f"task {name!r} is not in this study; tasks: {', '.join(self.tasks)}")
        data = merge(self.model_dump(exclude={"tasks"}), self.tasks[name])
        data.update(task=name, run_dir=str(Path(self.run_dir) / name))
        try:
            return StudyConfig.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"tasks.{name}.{where}: {first['msg']}") from None

    @property
    def train_seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def section_hash(self, *names: str) -> str:
        """Stable hash of some config sections, used to tell a finished stage from a stale one."""
        values = {name: getattr(self, name) for name in names}
        payload = {name: v.model_dump() if isinstance(v, BaseModel) else v for name, v in values.items()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


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
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


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
    return merge(read_yaml(parent_path, (*chain, path.resolve())), data)


BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def valid_range(loc: tuple) -> str | None:
    """The interval a numeric key's Field bounds allow, e.g. "[0, 1]" or "(0, inf)"; None if unknown."""
    model, info = StudyConfig, None
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    bounds = {kind: getattr(m, kind) for m in info.metadata for kind in ("ge", "gt", "le", "lt") if hasattr(m, kind)}
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}" if "gt" in bounds else "(-inf"
    high = f"{bounds['le']}]" if "le" in bounds else f"{bounds['lt']})" if "lt" in bounds else "inf)"
    return f"{low}, {high}"


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> StudyConfig:
    path = config_path(path)
    data = read_yaml(path)
    for override in overrides:
        keys, value = parse_override(override)
        apply_override(data, keys, value)
        # A command-line override beats the file, a task's own sections included; to change
        # one task only, override tasks.<name>.<key>.
        for task_overrides in (data.get("tasks") or {}).values() if keys[0] != "tasks" else ():
            if isinstance(task_overrides, dict) and has_path(task_overrides, keys):
                apply_override(task_overrides, keys, value)
    try:
        config = StudyConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        keys = [o.partition("=")[0].strip() for o in overrides]  # an override names the key, or a section of it
        overridden = [o for o, k in zip(overrides, keys) if where.startswith(k) or k.startswith(f"{where}.")]
        source = f"--set {overridden[-1]}" if overridden else str(path)
        bounds = valid_range(first["loc"]) if first["type"] in BOUND_ERRORS else None
        valid = f"; valid range {bounds}" if bounds else ""
        raise ConfigError(f"{source}: {where}: {first['msg']}{valid} ({len(err.errors())} problem(s) in all)") from None
    for name in config.tasks:
        try:
            config.for_task(name)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    return config


def dump_config(config: StudyConfig) -> str:
    return yaml.safe_dump(config.model_dump(), sort_keys=False)
