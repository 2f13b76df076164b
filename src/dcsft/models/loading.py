"""Load any Qwen2.5-VL-family model and its processor from a local folder or a hub id.

The embedded base and every stage's checkpoint go through this same function as a released
checkpoint would; only the folder differs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from dcsft.config import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_processor(source: str | Path, cfg: ModelConfig):
    size = {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    processor = AutoProcessor.from_pretrained(str(source), size=size)
    processor.tokenizer.padding_side = "left"  # batched generation needs left padding
    return processor


def load_model(source: str | Path, cfg: ModelConfig, adapter: str | Path | None = None):
    """The model in eval mode; with `adapter`, a LoRA adapter merged into it."""
    torch.set_num_threads(cfg.threads)
    model = AutoModelForImageTextToText.from_pretrained(
        str(source), dtype=DTYPES[cfg.dtype], attn_implementation=cfg.attn_implementation)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.eval()
