"""Before a run: what this machine and launch can do, checked while it is still cheap to fail.

- `preflight(cfg, stages)`: everything a stage would otherwise find out only when it got there
  (vLLM or DeepSpeed not installed, half precision or flash attention without a GPU, a vLLM
  engine with a profiling method it cannot run, or with tensor parallelism inside a
  data-parallel launch) as one ConfigError line, before the first stage runs; returns notes.
- `dry_run(config_file)`: what `accelerate launch --config_file FILE -m dcsft ...` would set up
  (distributed type, processes, precision, the environment the processes get), validated by
  accelerate's own parser and plugins and, for DeepSpeed, the JSON's keys; nothing is launched,
  no GPU is needed. From a shell: `dcsft check-launch configs/accelerate/*.yaml`.

Several processes: `coldstart` and `train` run under `accelerate launch` with these configs (TRL's
trainers shard the batches); profile and evaluate run data-parallel under any launcher (see
dcsft.distributed); which stages run data-parallel is in dcsft.stages.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dcsft.config import StudyConfig
from dcsft.errors import ConfigError
from dcsft.rundir import RunDir
from dcsft.stages import NAMES, STAGES

MODEL_STAGES = {spec.name for spec in STAGES if spec.loads_model}
TRAINING_STAGES = {spec.name for spec in STAGES if spec.trains}
DEEPSPEED_MISSING = "deepspeed is not installed; pip install deepspeed on the GPU machine"


def deepspeed_requested(cfg: StudyConfig, stages: set[str]) -> str | None:
    """The setting that asks for DeepSpeed in these stages, if any."""
    if stages & TRAINING_STAGES and os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return "accelerate launch with a DeepSpeed config"
    if "train" in stages:
        if "deepspeed" in cfg.train.extra:
            return "train.extra.deepspeed"
        if "grpo" in cfg.train.methods and "deepspeed" in cfg.grpo.extra:
            return "grpo.extra.deepspeed"
    return None


def check_task(cfg: StudyConfig, stages: set[str], cuda: bool | None) -> list[str]:
    from dcsft.distributed import world_size
    from dcsft.models.loading import check_model
    from dcsft.models.vllm_engine import require_vllm

    notes = []
    if stages & MODEL_STAGES:
        check_model(cfg.model, cuda)
    if "profile" in stages and cfg.profile.engine == "vllm":
        require_vllm("profile.engine=vllm")
        if cfg.profile.method != "sample":
            raise ConfigError(
                f"profile.engine=vllm supports profile.method=sample only ({cfg.profile.method} "
                "reuses transformers' KV cache); use profile.engine=hf for it"
            )
    if "evaluate" in stages and cfg.evaluate.engine == "vllm":
        require_vllm("evaluate.engine=vllm")
    for stage in ("profile", "evaluate"):
        section = getattr(cfg, stage)
        parallel = section.engine_args.get("tensor_parallel_size", 1)
        if stage in stages and section.engine == "vllm" and world_size() > 1 and parallel != 1:
            raise ConfigError(
                f"{stage}.engine_args.tensor_parallel_size={parallel} under {world_size()} processes: "
                "each process runs its own vLLM engine on its own batches; use 1, or one process "
                "with tensor_parallel_size = the GPUs"
            )
    if "train" in stages and "grpo" in cfg.train.methods and cfg.grpo.use_vllm:
        require_vllm("grpo.use_vllm=true")
        if cfg.grpo.vllm_mode == "server":
            model = RunDir(cfg.run_dir).coldstart_model
            notes.append(
                f"grpo.vllm_mode=server: start `trl vllm-serve --model {model}` "
                "on its own GPU(s) before training"
            )
    asker = deepspeed_requested(cfg, stages)
    if asker and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"{asker}: {DEEPSPEED_MISSING}")
    for section in ("train", "grpo"):
        path = getattr(cfg, section).extra.get("deepspeed")
        if isinstance(path, str) and "train" in stages and not Path(path).is_file():
            raise ConfigError(f"{section}.extra.deepspeed={path}: no such DeepSpeed config file")
    return notes


def preflight(cfg: StudyConfig, stages: Iterable[str] | None = None, cuda: bool | None = None) -> list[str]:
    """Raise a ConfigError (one line) for what `stages` (default: all) of every task of the study
    could not do on this machine or launch; returns notes worth printing."""
    wanted = set(stages or NAMES)
    notes = []
    for name in cfg.task_names:
        notes += check_task(cfg.for_task(name), wanted, cuda)
    return list(dict.fromkeys(notes))


# --- accelerate launch, without launching ------------------------------------------------------

# DeepSpeed config keys (top level and zero_optimization) that dcsft's shipped JSON may use, and
# the "auto" values the HF Trainer fills in (transformers' HfTrainerDeepSpeedConfig).
DEEPSPEED_KEYS = {
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "fp16",
    "bf16",
    "amp",
    "zero_optimization",
    "optimizer",
    "scheduler",
    "steps_per_print",
    "wall_clock_breakdown",
    "zero_allow_untested_optimizer",
    "activation_checkpointing",
    "communication_data_type",
    "prescale_gradients",
    "gradient_predivide_factor",
    "memory_breakdown",
    "checkpoint",
    "data_types",
    "zero_force_ds_cpu_optimizer",
    "flops_profiler",
    "tensorboard",
    "wandb",
    "csv_monitor",
}
ZERO_KEYS = {
    "stage",
    "offload_optimizer",
    "offload_param",
    "allgather_partitions",
    "allgather_bucket_size",
    "overlap_comm",
    "reduce_scatter",
    "reduce_bucket_size",
    "contiguous_gradients",
    "round_robin_gradients",
    "sub_group_size",
    "load_from_fp32_weights",
    "elastic_checkpoint",
    "ignore_unused_parameters",
    "stage3_prefetch_bucket_size",
    "stage3_param_persistence_threshold",
    "stage3_max_live_parameters",
    "stage3_max_reuse_distance",
    "stage3_gather_16bit_weights_on_model_save",
    "zero_hpz_partition_size",
    "zero_quantized_weights",
    "zero_quantized_gradients",
    "mics_shard_size",
    "use_multi_rank_bucket_allreduce",
}
TRAINER_FILLS_AUTO = {
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "fp16.enabled",
    "bf16.enabled",
    "amp.enabled",
    "amp.opt_level",
    "optimizer.params.lr",
    "optimizer.params.betas",
    "optimizer.params.eps",
    "optimizer.params.weight_decay",
    "scheduler.params.warmup_min_lr",
    "scheduler.params.warmup_max_lr",
    "scheduler.params.warmup_num_steps",
    "scheduler.params.total_num_steps",
    "zero_optimization.reduce_bucket_size",
    "zero_optimization.stage3_prefetch_bucket_size",
    "zero_optimization.stage3_param_persistence_threshold",
}


def auto_paths(node: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in node.items():
        if isinstance(value, dict):
            paths += auto_paths(value, f"{prefix}{key}.")
        elif value == "auto":
            paths.append(prefix + key)
    return paths


def check_deepspeed_json(path: str | Path) -> dict:
    """The DeepSpeed config at `path`, checked: known keys, a ZeRO stage, and "auto" only where the
    HF Trainer fills it in. With deepspeed installed, its own ZeRO config model checks it too."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: DeepSpeed config file not found (launch from the repository root)"
        ) from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    unknown = sorted(set(config) - DEEPSPEED_KEYS) + sorted(
        f"zero_optimization.{k}" for k in set(config.get("zero_optimization", {})) - ZERO_KEYS
    )
    if unknown:
        raise ConfigError(f"{path}: unknown DeepSpeed key(s) {', '.join(unknown)}")
    stage = config.get("zero_optimization", {}).get("stage")
    if stage not in (0, 1, 2, 3):
        raise ConfigError(f"{path}: zero_optimization.stage must be 0-3, not {stage!r}")
    unfilled = [p for p in auto_paths(config) if p not in TRAINER_FILLS_AUTO]
    if unfilled:
        raise ConfigError(f'{path}: "auto" where the Trainer fills nothing in: {", ".join(unfilled)}')
    if importlib.util.find_spec("deepspeed") is not None:
        from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

        DeepSpeedZeroConfig(**{k: v for k, v in config["zero_optimization"].items() if v != "auto"})
    return config


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def dry_run(config_file: str | Path, command: tuple[str, ...] = ("-m", "dcsft", "train")) -> dict:
    """What `accelerate launch --config_file FILE COMMAND` would start, through accelerate's own
    argument parser, config loader and environment preparation, and the DeepSpeed / FSDP plugin
    each training process would then build from that environment. Launches nothing."""
    # _validate_launch_command is private to accelerate: checked on 1.7, 1.10 and 1.15 (README)
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    if not Path(config_file).is_file():
        raise ConfigError(f"{config_file}: accelerate config file not found")
    args = launch_command_parser().parse_args(["--config_file", str(config_file), *command])
    args, defaults, mixed_from_config = _validate_launch_command(args)
    summary = {
        "config_file": str(config_file),
        "distributed_type": getattr(defaults.distributed_type, "value", ""),
        "num_processes": args.num_processes,
        "num_machines": args.num_machines,
    }
    if args.use_deepspeed:  # as accelerate's launch_command does before deepspeed_launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mixed_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    elif args.use_fsdp or args.multi_gpu:
        env = prepare_multi_gpu_env(args)
    else:
        raise ConfigError(
            f"{config_file}: distributed_type {defaults.distributed_type} is not a multi-GPU launch"
        )
    added = {k: v for k, v in env.items() if os.environ.get(k) != v and k != "PYTHONPATH"}
    summary.update(mixed_precision=added.get("ACCELERATE_MIXED_PRECISION"), env=added)
    with environment(added):  # what each training process's TrainingArguments / Accelerator builds
        if args.use_deepspeed:
            ds_file = added.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
            ds_json = check_deepspeed_json(ds_file) if ds_file else None
            plugin = DeepSpeedPlugin()
            summary.update(zero_stage=plugin.zero_stage, deepspeed_config=ds_json)
            if ds_json is not None:  # bf16/fp16 "enabled": "auto" follow the Trainer's bf16 (on GPU)
                summary["mixed_precision"] = f"from {Path(ds_file).name}"
        elif args.use_fsdp:
            plugin = FullyShardedDataParallelPlugin()
            summary.update(fsdp_version=plugin.fsdp_version, state_dict_type=plugin.state_dict_type.name)
    return summary
