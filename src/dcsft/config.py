"""One typed config for the whole study, loaded from YAML, with `--set a.b=value` overrides.

The packaged default (`dcsft/configs/embedded.yaml`) is the embedded study that runs on a
laptop CPU; `configs/paper/*.yaml` hold the paper's real-scale settings. Every key has a
default here, so a YAML file only states what differs.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dcsft.config_files import (
    apply_override,
    config_path,
    has_path,
    layered,
    overrides_layer,
    parse_override,
    read_yaml,
    stated_source,
    switch_source,
)
from dcsft.conventions import template_problem
from dcsft.data.sources import CONFIGS, DEFAULT_SOURCE, DataConfig, keys_of
from dcsft.errors import ConfigError
from dcsft.tasks import TaskNotFound, get_task

METHODS = ("sft", "sft-e", "sft-m", "sft-h", "sft-em", "curriculum", "grpo")
# Known methods that are not the paper's, so not trained unless listed in train.methods. sft-window:
# the samples whose pass rate lies strictly inside curate.window, whatever curate.rule is.
EXTRA_METHODS = ("sft-window",)
# The paper's hard-fraction ablation: medium plus hard samples making up x% of the mix, e.g. sft-m+h5.
HARD_MIX = re.compile(r"sft-m\+h(\d+(?:\.\d+)?)")


def hard_mix_percent(method: str) -> float | None:
    """x for a method named sft-m+h<x>, else None."""
    match = HARD_MIX.fullmatch(method)
    return float(match.group(1)) if match else None


def is_method(name: str) -> bool:
    percent = hard_mix_percent(name)
    return name in METHODS or name in EXTRA_METHODS or (percent is not None and percent < 100)


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
    # grounding: the frame of boxes in answers, targets and scoring (dcsft.conventions): auto (from
    # the base's model_type: Qwen2.5-VL absolute, Qwen2-VL and Qwen3-VL relative1000), absolute
    # (pixels of the resized image), relative1000 (0-1000 grid relative to the image)
    box_format: Literal["auto", "absolute", "relative1000"] = "auto"


class PhaseConfig(Section):
    """What the later pretraining phases (3 and 4) share. Each splits its steps by its shares
    (`SHARES`, at most 1 together); the steps left over replay phase 2's tasks."""

    SHARES: ClassVar[tuple[str, ...]]
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0

    @model_validator(mode="after")
    def _shares(self) -> PhaseConfig:
        shares = [getattr(self, name) for name in self.SHARES]
        if sum(shares) > 1:
            got = " + ".join(map(str, shares))
            raise ValueError(f"{' + '.join(self.SHARES)} must be at most 1, got {got}")
        return self


class GroundingPretrainConfig(PhaseConfig):
    """Phase 3 of the embedded base: localisation (referring expressions -> boxes), continued from
    the phase-2 base with classification replay (see models/pretrain.py). steps 0: no phase 3."""

    SHARES = ("scenes", "single")
    steps: int = Field(32000, ge=0)
    # Step shares: scenes (referring expressions), single objects (the one object of a phase-2
    # image located: where reading positions is learnt).
    scenes: float = Field(0.5, ge=0, le=1)
    single: float = Field(0.35, ge=0, le=1)
    pool_size: int = 24000
    canvas: int = 126  # scenes are drawn at this side and resized to the base's image_size


class ReasoningPretrainConfig(PhaseConfig):
    """Phase 4 of the embedded base: multiple-choice reasoning over drawn scenes (counting, comparing,
    charts, arithmetic; dcsft.data.reasoning_world), continued from the grounding base with replay of
    phase 2's tasks (see models/pretrain.py). steps 0: no phase 4 (every other task's base)."""

    SHARES = ("choice", "direct", "select")
    steps: int = Field(0, ge=0)
    # Step shares: lettered multiple-choice questions, the same questions answered directly (the
    # option's text), and the same options with a question that names the answer ("Which option
    # is red?"): picking the letter of a given text, the half of multiple choice that needs no
    # seeing, which a released VLM knows.
    choice: float = Field(0.3, ge=0, le=1)
    direct: float = Field(0.3, ge=0, le=1)
    select: float = Field(0.3, ge=0, le=1)
    pool_size: int = 12000
    image_size: int = 112  # the reasoning frame: 16 visual tokens


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
    reasoning: ReasoningPretrainConfig = ReasoningPretrainConfig()


class ColdStartConfig(Section):
    lr: float = 1e-5
    epochs: float = 1.0
    warmup_ratio: float = 0.1
    batch_size: int = 4
    grad_accum: int = Field(1, ge=1)
    max_length: int | None = None
    extra: dict[
        str, Any
    ] = {}  # passed through to TRL's SFTConfig, e.g. {gradient_checkpointing: true} on a GPU
    save_steps: int | None = Field(10, ge=1)  # checkpoint every n steps (None: never); a rerun resumes


# Settings that change how a stage is run, not what it produces: left out of its fingerprint.
# box_format enters, resolved, prepare's fingerprint (which every later stage's carries) instead.
NOT_IN_FINGERPRINT = {"save_steps", "threads", "box_format"}


class ProfileConfig(Section):
    # sample: k sampled responses (the paper's way); adaptive: sample in rounds, stop a sample once
    # it is medium; exact: P(correct) from one teacher-forced pass (finite-answer verifiers only);
    # loss: the gold answer's mean token log-probability from one teacher-forced pass (any task),
    # bucketed by quantiles matched to a sampled calibration subset (`loss_calibration`).
    method: Literal["sample", "adaptive", "exact", "loss"] = "sample"
    k: int = Field(8, ge=1)
    temperature: float = Field(0.9, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(50, ge=0)
    max_new_tokens: int = Field(128, ge=1)
    # transformers' and vLLM's repetition_penalty: the logit of every token already in the sequence,
    # prompt included, is divided by it (multiplied when negative). None: the model's own, from its
    # generation_config.json (Qwen2-VL / Qwen2.5-VL Instruct ones say 1.05; the embedded base sets
    # none), as every run did before this setting; 1.0: off. Paper: the model's here, 1.1 in its
    # reasoning evaluation (evaluate.repetition_penalty). In the fingerprint only when set.
    repetition_penalty: float | None = Field(None, gt=0)
    batch_size: int = Field(4, ge=1)
    shared_prefill: bool = True  # encode each prompt once and draw the k responses from its cache
    adaptive_round: int = Field(2, ge=1)  # responses per sample per round of `adaptive`
    # `adaptive` only: a sample whose first n draws are all correct (all wrong) is settled easy
    # (hard) without the rest. 0: never, buckets keep `sample`'s distribution. n > 0 trades a
    # measured bucket error for fewer draws (README, "Profiling methods").
    adaptive_settle: int = Field(0, ge=0)
    # `loss` only: how many training samples (seeded) are also profiled with `sample` (k draws each).
    # Their easy / medium / hard shares (all-or-none) set the quantile thresholds on the loss score
    # of the others: the lowest scores are hard, the highest easy, in those shares. 64 costs 4% of
    # `sample` on the default 1,600 samples; a share's standard error is about sqrt(s(1-s)/64),
    # 6 points at s = 0.37 (README, "Profiling methods").
    loss_calibration: int = Field(64, ge=1)
    # hf: transformers' generate (any device); vllm: vLLM on a CUDA machine (method `sample` only)
    engine: Literal["hf", "vllm"] = "hf"
    engine_args: dict[
        str, Any
    ] = {}  # vllm: passed to vllm.LLM, e.g. tensor_parallel_size, gpu_memory_utilization

    @model_validator(mode="after")
    def _settle_within_k(self) -> ProfileConfig:
        if self.adaptive_settle > self.k:
            raise ValueError(
                f"adaptive_settle ({self.adaptive_settle}) must be at most k ({self.k}); 0 turns it off"
            )
        return self


class CurateConfig(Section):
    """How curate puts each profiled sample in a bucket (README, "Bucketing rules"). A profile row
    that names its own `bucket` (profile method `loss`) keeps it whatever the rule."""

    # all-or-none: the paper's; easy = all k draws correct, hard = none, medium = the rest.
    # window: by the pass rate p; medium if low < p < high (open-r1's 0.1 < p < 0.9 filter), hard
    # if p <= low, easy if p >= high.
    # graded: by the k scores in [0, 1] (a row's `scores`, else its 0/1 `correct`): a sample whose
    # scores' population std is at most min_spread gives GRPO no advantage, so it is settled, easy
    # if their mean is >= 0.5 else hard; the rest are medium. Binary scores, min_spread 0: all-or-none.
    rule: Literal["all-or-none", "window", "graded"] = "all-or-none"
    # [low, high] with 0 <= low < high <= 1: rule `window`'s pass-rate bounds, and the samples of
    # the method sft-window (low < p < high) under any rule
    window: list[float] = [0.1, 0.9]
    # rule `graded`: the largest population std of a sample's k scores that still counts as settled
    # (0: only samples whose k scores are all equal); 0.5 is the most k scores in [0, 1] can spread
    min_spread: float = Field(0.0, ge=0, le=0.5)

    @field_validator("window")
    @classmethod
    def _window_inside_unit_interval(cls, window: list[float]) -> list[float]:
        if len(window) != 2 or not 0 <= window[0] < window[1] <= 1:
            raise ValueError(f"expected [low, high] with 0 <= low < high <= 1, got {window}")
        return window


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
            raise ValueError(
                f"unknown method(s) {unknown}; known: {[*METHODS, *EXTRA_METHODS]} and sft-m+h<x> "
                "(x% hard, x < 100)"
            )
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


class PromptsConfig(Section):
    """How each task asks, and how grounding answers write boxes (dcsft.conventions). A prompt
    is a preset name or the template itself: classification `paper`; grounding `paper` or `qwen`
    (the Qwen2.5-VL cookbook's), a template holding {expression}; reasoning `paper` (the letter or
    the number) or `r1` (<think></think> then <answer></answer>), a template holding {question}
    and {options}."""

    classification: str = "paper"
    grounding: str = "paper"
    reasoning: str = "paper"
    # plain [x1, y1, x2, y2] (the paper's), bbox_2d ([{"bbox_2d": [...], "label": ...}], Qwen2.5-VL's
    # and Qwen3-VL's JSON) or box_tokens (Qwen2-VL's <|box_start|>(x1,y1),(x2,y2)<|box_end|>)
    answer_format: Literal["plain", "bbox_2d", "box_tokens"] = "plain"

    @model_validator(mode="after")
    def _templates_hold_their_placeholders(self) -> PromptsConfig:
        for task in ("classification", "grounding", "reasoning"):
            bad = template_problem(task, getattr(self, task))
            if bad:
                raise ValueError(f"prompts.{task}: {bad}")
        return self


class EvaluateConfig(Section):
    batch_size: int = 32
    max_new_tokens: int = 128
    # as profile.repetition_penalty, for the greedy answers; paper: 1.1 in its reasoning evaluation
    repetition_penalty: float | None = Field(None, gt=0)
    # grounding: score boxes in the resized frame the model sees, or mapped back to the original image
    frame: Literal["model", "original"] = "model"
    # as profile.engine; an adapter is merged before vLLM loads the model
    engine: Literal["hf", "vllm"] = "hf"
    engine_args: dict[str, Any] = {}  # vllm: passed to vllm.LLM


class StudyConfig(Section):
    run_dir: str = "runs/default"
    seed: int = 0
    seeds: int = Field(
        1, ge=1
    )  # training runs per method, with seeds seed, seed+1, ...; tables show mean ± std
    # classification, grounding, a Task class or TRL-style reward by import path
    # (mypkg.tasks:Counting), or a `dcsft.tasks` entry point (dcsft.tasks)
    task: str = "classification"
    # The classification verifier's rule (dcsft.tasks.classification), for profiling, evaluation
    # and the GRPO reward alike: `paper` as the paper states it, `authors` as the authors' released
    # code (`strip().strip('.')`) to compare number for number with their files. Grounding ignores it.
    verifier: Literal["paper", "authors"] = "paper"
    # Several tasks in one study: name -> overrides of the sections above; each task runs in
    # run_dir/<name>/ (empty: the one `task`, in run_dir itself).
    tasks: dict[str, dict[str, Any]] = {}
    # Worker processes of `dcsft study` (dcsft.workers): its units (a task's data stages, each
    # training run, each model's evaluation, each report) run side by side. None: the CPU cores
    # this process may use over model.threads; 1 (no workers) on a GPU or under a launcher.
    jobs: int | None = Field(None, ge=1)
    model: ModelConfig = ModelConfig()
    data: DataConfig = CONFIGS[DEFAULT_SOURCE]()  # one source's keys (dcsft.data.sources), by data.source
    pretrain: PretrainConfig = PretrainConfig()
    coldstart: ColdStartConfig = ColdStartConfig()
    profile: ProfileConfig = ProfileConfig()
    curate: CurateConfig = CurateConfig()
    train: TrainConfig = TrainConfig()
    grpo: GrpoConfig = GrpoConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    prompts: PromptsConfig = PromptsConfig()

    @field_validator("task")
    @classmethod
    def _task_exists(cls, task: str) -> str:
        try:
            get_task(task)
        except TaskNotFound as err:
            raise ValueError(str(err)) from None
        return task

    @field_validator("data", mode="before")
    @classmethod
    def _source_defaults_to_embedded(cls, data: Any) -> Any:
        return {"source": DEFAULT_SOURCE, **data} if isinstance(data, dict) else data

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks) or [self.task]

    def for_task(self, name: str) -> StudyConfig:
        """The single-task config of one of `tasks`: its overrides applied, its own run dir."""
        if not self.tasks:
            if name != self.task:
                raise ConfigError(f"task {name!r} is not in this study (it runs {self.task!r})")
            return self
        if name not in self.tasks:
            raise ConfigError(f"task {name!r} is not in this study; tasks: {', '.join(self.tasks)}")
        # the data keys set, not their defaults: a task that names another source gets that source's defaults
        study = {**self.model_dump(exclude={"tasks"}), "data": self.data.model_dump(exclude_unset=True)}
        data = layered(study, self.tasks[name])
        data.update(task=name, run_dir=str(Path(self.run_dir) / name))
        try:
            return StudyConfig.model_validate(data)
        except ValidationError as err:
            raise ConfigError(f"tasks.{name}.{problem(err.errors()[0])}") from None

    @property
    def train_seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def section_hash(self, *names: str) -> str:
        """Stable hash of some config sections, used to tell a finished stage from a stale one."""
        values = {name: getattr(self, name) for name in names}
        payload = {name: v.model_dump() if isinstance(v, BaseModel) else v for name, v in values.items()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def key_of(loc: tuple) -> tuple[list, str | None]:
    """A pydantic error's location as config keys, and the data source it is in: pydantic puts
    the source's name (the union's tag) after `data`."""
    keys = list(loc)
    if keys[:1] == ["data"] and len(keys) > 1 and keys[1] in CONFIGS:
        return [keys[0], *keys[2:]], keys[1]
    return keys, None


def problem(first: dict) -> str:
    """`key: what is wrong` of a pydantic error; a validator's message that names its keys stands alone."""
    keys, source = key_of(first["loc"])
    where = ".".join(str(k) for k in keys)
    if first["type"] == "extra_forbidden" and source:
        message = f"source {source} does not read this key; its keys: {', '.join(keys_of(source))}"
    elif first["type"] == "value_error":
        message = str(first["ctx"]["error"])
    else:
        message = first["msg"]
    bounds = valid_range(first["loc"]) if first["type"] in BOUND_ERRORS else None
    message += f"; valid range {bounds}" if bounds else ""
    return message if message.startswith(f"{where}.") else f"{where}: {message}"


def valid_range(loc: tuple) -> str | None:
    """The interval a numeric key's Field bounds allow, e.g. "[0, 1]" or "(0, inf)"; None if unknown."""
    keys, source = key_of(loc)
    model, info = StudyConfig, None
    for part in keys:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        info = fields[part]
        model = CONFIGS[source] if part == "data" and source else info.annotation
    bounds = {
        kind: getattr(m, kind) for m in info.metadata for kind in ("ge", "gt", "le", "lt") if hasattr(m, kind)
    }
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}" if "gt" in bounds else "(-inf"
    high = f"{bounds['le']}]" if "le" in bounds else f"{bounds['lt']})" if "lt" in bounds else "inf)"
    return f"{low}, {high}"


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> StudyConfig:
    path = config_path(path)
    data = read_yaml(path)
    parsed = [parse_override(override) for override in overrides]
    data = switch_source(data, stated_source(overrides_layer(parsed)))
    for keys, value in parsed:
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
        where = ".".join(str(k) for k in key_of(first["loc"])[0])
        keys = [
            o.partition("=")[0].strip() for o in overrides
        ]  # an override names the key, or a section of it
        overridden = [o for o, k in zip(overrides, keys) if where.startswith(k) or k.startswith(f"{where}.")]
        source = f"--set {overridden[-1]}" if overridden else str(path)
        raise ConfigError(f"{source}: {problem(first)} ({len(err.errors())} problem(s) in all)") from None
    for name in config.tasks:
        try:
            config.for_task(name)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    return config


def dump_config(config: StudyConfig) -> str:
    return yaml.safe_dump(config.model_dump(), sort_keys=False)
