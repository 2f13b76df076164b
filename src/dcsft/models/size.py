"""A model's size and architecture without loading it (from its safetensors headers, its
config.json, or the published numbers of the hub models dcsft knows), and the formulas of the
memory its training and inference take: what `dcsft plan` estimates with."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dcsft.conventions import FAMILY_BOX_FORMATS

# Activation bytes per token x hidden x layer, bf16, no recomputation (Korthikanti et al. 2022,
# without the attention scores).
ACTIVATION_BYTES = 34
HUB_MODELS = {  # parameters and the architecture numbers the memory estimate needs (the models' config.json)
    "Qwen/Qwen2.5-VL-3B-Instruct": dict(
        params=3.75e9,
        hidden=2048,
        layers=36,
        heads=16,
        kv_heads=2,
        intermediate=11008,
        vocab=151936,
        v_hidden=1280,
        v_depth=32,
        v_intermediate=3420,
    ),
    "Qwen/Qwen2.5-VL-7B-Instruct": dict(
        params=8.29e9,
        hidden=3584,
        layers=28,
        heads=28,
        kv_heads=4,
        intermediate=18944,
        vocab=152064,
        v_hidden=1280,
        v_depth=32,
        v_intermediate=3420,
    ),
}


@dataclass
class ModelInfo:
    source: str
    params: float | None
    arch: dict
    how: str


def safetensors_params(folder: Path) -> int | None:
    """Exact parameter count from the safetensors headers (no weights are read)."""
    index = folder / "model.safetensors.index.json"
    files = (
        sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
        if index.is_file()
        else sorted(folder.glob("*.safetensors"))
    )
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def arch_of(config: dict) -> dict:
    text = config.get("text_config", config)
    vision = config.get("vision_config", {})
    arch = dict(
        hidden=text.get("hidden_size"),
        layers=text.get("num_hidden_layers"),
        heads=text.get("num_attention_heads"),
        kv_heads=text.get("num_key_value_heads"),
        head_dim=text.get("head_dim"),
        intermediate=text.get("intermediate_size"),
        vocab=text.get("vocab_size") or config.get("vocab_size"),
        # Qwen2-VL's vision config says embed_dim and mlp_ratio where later families say hidden_size
        # and intermediate_size
        v_hidden=vision.get("hidden_size") or vision.get("embed_dim"),
        v_depth=vision.get("depth"),
        v_intermediate=vision.get("intermediate_size") or vision_mlp(vision),
    )
    arch["kv_heads"] = arch["kv_heads"] or arch["heads"]
    return arch


def vision_mlp(vision: dict) -> int | None:
    """The vision MLP's width from Qwen2-VL's embed_dim x mlp_ratio."""
    if vision.get("embed_dim") and vision.get("mlp_ratio"):
        return int(vision["embed_dim"] * vision["mlp_ratio"])
    return None


def config_params(arch: dict, config: dict) -> float | None:
    """Parameters from config.json alone (used without safetensors): embeddings, attention, MLP,
    vision blocks; norms and biases left out."""
    try:
        h, layers, inter, vocab = arch["hidden"], arch["layers"], arch["intermediate"], arch["vocab"]
        kv = h // arch["heads"] * arch["kv_heads"]
        text = layers * (2 * h * h + 2 * h * kv + 3 * h * inter) + vocab * h
        if not config.get(
            "tie_word_embeddings", config.get("text_config", {}).get("tie_word_embeddings", False)
        ):
            text += vocab * h
        vision = (
            (arch["v_depth"] or 0)
            * (4 * arch["v_hidden"] ** 2 + 3 * arch["v_hidden"] * arch["v_intermediate"])
            if arch["v_hidden"]
            else 0
        )
        return float(text + vision)
    except (TypeError, KeyError, ZeroDivisionError):
        return None


def lora_params(lora, arch: dict) -> float:
    """Adapter parameters: r x (in + out) per adapted linear layer (all-linear: every linear
    of the language model and the vision tower; a list: the language model's named ones)."""
    r, a = lora.r, arch
    h, inter = a["hidden"], a["intermediate"]
    kv = h // a["heads"] * a["kv_heads"]
    text = {
        "q_proj": h + h,
        "k_proj": h + kv,
        "v_proj": h + kv,
        "o_proj": h + h,
        "gate_proj": h + inter,
        "up_proj": h + inter,
        "down_proj": inter + h,
    }
    targets = lora.target_modules
    per_layer = (
        sum(text.values()) if targets == "all-linear" else sum(v for k, v in text.items() if k in targets)
    )
    total = a["layers"] * per_layer
    if targets == "all-linear" and a.get("v_hidden"):
        d, vi = a["v_hidden"], a["v_intermediate"]
        total += a["v_depth"] * (d + 3 * d + d + d + 2 * (d + vi) + vi + d)
    return float(r * total)


def activations(arch: dict, tokens: float) -> float:
    return tokens * arch["hidden"] * arch["layers"] * ACTIVATION_BYTES + tokens * arch["vocab"] * 4


def head_dim(arch: dict) -> int:
    """The attention head's width: config.json's head_dim where it says one (Qwen3-VL-4B: 128, not
    hidden 2560 / 32 heads), else hidden_size / num_attention_heads (Qwen2-VL, Qwen2.5-VL)."""
    return arch.get("head_dim") or arch["hidden"] // arch["heads"]


def kv_bytes_per_token(arch: dict, value_bytes: int) -> int:
    """KV-cache bytes per token of one sequence: 2 (K and V) x layers x kv_heads x head_dim x bytes
    per value (the model's dtype), what transformers' DynamicCache holds (test_generation_settings)."""
    return 2 * arch["layers"] * arch["kv_heads"] * head_dim(arch) * value_bytes


def kv_cache(arch: dict, tokens: float, weight_bytes: int) -> float:
    """KV-cache bytes of `tokens` = sequence length x sequences in flight."""
    return tokens * kv_bytes_per_token(arch, weight_bytes)


class Notes(Protocol):
    """Where inspect_model writes what it finds (dcsft plan's findings)."""

    problems: list[str]  # what would stop the study
    warnings: list[str]


def inspect_model(base: str, pretrain, out: Notes) -> ModelInfo:
    """The size of `model.base` (the embedded base of the `pretrain` config, a local folder or a
    known hub id), with what stands in the way noted in `out`."""
    if base == "embedded":
        from dcsft.models.base import PACKAGED, embedded_key, find_built

        folder = find_built(embedded_key(pretrain))
        if folder is None:
            out.warnings.append(
                "model.base embedded: no built base for this pretrain config; the first stage that "
                "needs it pretrains it once (see `dcsft pretrain`); sizes below are the packaged one's"
            )
            folder = PACKAGED
        return local_model(Path(folder), f"embedded ({folder})", out)
    if base in HUB_MODELS:
        known = dict(HUB_MODELS[base])
        params = known.pop("params")
        return ModelInfo(base, params, known, "the published size of this hub model (not downloaded here)")
    folder = Path(base).expanduser()
    if folder.is_dir():
        return local_model(folder, str(folder.absolute()), out)
    if base.startswith(("/", ".", "~")) or folder.exists() or base.count("/") != 1:
        out.problems.append(
            f"model.base {base}: no such folder (a local model folder, a hub id org/name, or embedded)"
        )
    else:
        out.warnings.append(
            f"model.base {base}: a hub id dcsft does not know the size of; it is downloaded at the "
            f"first stage that loads it (memory not estimated)"
        )
    return ModelInfo(base, None, {}, "unknown")


def local_model(folder: Path, label: str, out: Notes) -> ModelInfo:
    config_file = folder / "config.json"
    if not config_file.is_file():
        out.problems.append(f"model.base {folder}: no config.json (not a save_pretrained folder)")
        return ModelInfo(label, None, {}, "unknown")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        out.problems.append(f"{config_file}: not valid JSON ({err})")
        return ModelInfo(label, None, {}, "unknown")
    arch = arch_of(config)
    if config.get("model_type") not in FAMILY_BOX_FORMATS:
        out.warnings.append(
            f"{config_file}: model_type {config.get('model_type')!r}, dcsft expects a Qwen-VL "
            f"({', '.join(FAMILY_BOX_FORMATS)})"
        )
    try:
        exact = safetensors_params(folder)
    except (OSError, ValueError, KeyError, struct.error) as err:
        out.warnings.append(
            f"{folder}: safetensors headers unreadable ({type(err).__name__}); size from config.json"
        )
        exact = None
    if exact is not None:
        return ModelInfo(label, float(exact), arch, "counted from the safetensors headers")
    return ModelInfo(label, config_params(arch, config), arch, "estimated from config.json")
