"""Load any Qwen-VL-family model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) and its processor from a local
folder or a hub id.

The embedded base and every stage's checkpoint go through this same function as a released
checkpoint would; only the folder differs. `check_model` turns settings this machine cannot run
(half precision or flash attention without a CUDA GPU, flash attention without its package)
into one line before anything is loaded; `freeze_vision` freezes the vision tower for training.
How each family writes grounding boxes, and `model.box_format: auto`, is dcsft.conventions'
(read from config.json without loading anything).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from dcsft.config import ModelConfig
from dcsft.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# transformers' attention implementations; a hub kernel ("kernels-community/...") also passes.
ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
FLASH_PACKAGES = {
    "flash_attention_2": ("flash_attn", "flash-attn"),
    "flash_attention_3": ("flash_attn_interface", "flash-attn 3 (hopper build)"),
}
# Parameter-name parts of a VLM's vision tower, and of the aligner inside it that stays trainable
# (Qwen2/2.5-VL: visual.merger; Qwen3-VL: visual.merger and visual.deepstack_merger_list).
VISION_TOWERS = ("visual", "vision_tower", "vision_model")
ALIGNERS = ("merger", "multi_modal_projector")


def check_model(cfg: ModelConfig, cuda: bool | None = None) -> None:
    """A ConfigError (one line) for a dtype or attention implementation this machine cannot run.

    Half precision without a CUDA GPU is refused rather than silently run in float32: stage
    fingerprints record the requested dtype, so a float32 CPU result would later pass for a
    bfloat16 one, and the Trainer would train pure-bf16 weights on CPU without mixed precision."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cfg.dtype != "float32" and not cuda:
        raise ConfigError(
            f"model.dtype={cfg.dtype} needs a CUDA GPU and none is visible; "
            "use --set model.dtype=float32 on CPU"
        )
    if cfg.dtype == "bfloat16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("model.dtype=bfloat16: this GPU has no bfloat16 support; use float16")
    attn = cfg.attn_implementation
    if attn not in ATTENTION and "/" not in attn:
        raise ConfigError(f"model.attn_implementation={attn}: unknown; use one of {', '.join(ATTENTION)}")
    if attn in FLASH_PACKAGES:
        module, package = FLASH_PACKAGES[attn]
        if not cuda:
            raise ConfigError(
                f"model.attn_implementation={attn} needs a CUDA GPU and none is visible; use sdpa"
            )
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"model.attn_implementation={attn}: {package} is not installed "
                f"(pip install flash-attn --no-build-isolation), or use sdpa"
            )
        if cfg.dtype == "float32":
            raise ConfigError(
                f"model.attn_implementation={attn} runs in bfloat16 or float16 only; set model.dtype=bfloat16"
            )


def load_processor(source: str | Path, cfg: ModelConfig):
    size = {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    processor = AutoProcessor.from_pretrained(str(source), size=size)
    processor.tokenizer.padding_side = "left"  # batched generation needs left padding
    return processor


def load_model(source: str | Path, cfg: ModelConfig, adapter: str | Path | None = None):
    """The model in eval mode; with `adapter`, a LoRA adapter merged into it."""
    check_model(cfg)
    torch.set_num_threads(cfg.threads)
    model = AutoModelForImageTextToText.from_pretrained(
        str(source), dtype=DTYPES[cfg.dtype], attn_implementation=cfg.attn_implementation
    )
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if (
        torch.cuda.is_available()
    ):  # profiling and evaluation generate on the GPU (the Trainer moves its own model)
        model = model.to("cuda")
    return model.eval()


def is_vision_tower(name: str) -> bool:
    """Whether parameter or module `name` belongs to the vision tower (patch embedding and
    blocks), not to its aligner (the merger that maps vision features into the LM)."""
    parts = name.split(".")
    return any(p in VISION_TOWERS for p in parts) and not any(a in p for p in parts for a in ALIGNERS)


def freeze_vision(model) -> int:
    """Freeze the vision tower's parameters (LoRA adapters on it included); the aligner and the
    language model keep their state. Returns the number of parameters frozen."""
    frozen = [p for name, p in model.named_parameters() if is_vision_tower(name)]
    if not frozen:
        raise ConfigError(
            f"train.freeze_vision: {type(model).__name__} has no vision tower parameters "
            f"(looked for {', '.join(VISION_TOWERS)})"
        )
    for p in frozen:
        p.requires_grad_(False)
    return sum(p.numel() for p in frozen)


# LoRA targets to leave out when the vision tower is frozen (peft's exclude_modules, a full-match regex).
VISION_LORA_EXCLUDE = rf"(.*\.)?({'|'.join(VISION_TOWERS)})\.(?!(.*\.)?\w*({'|'.join(ALIGNERS)})).*"
