"""Build a tiny Qwen2.5-VL offline: tokenizer, processor and randomly initialised model.

Nothing here touches the network. The pieces are the real Qwen2.5-VL classes
(`Qwen2_5_VLForConditionalGeneration`, `Qwen2_5_VLProcessor`, the Qwen2-VL image processor,
Qwen's chat template and special tokens), only small, so that everything downstream runs
through exactly the code path a released checkpoint takes.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
)
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
from trl.chat_template_utils import qwen2_5_vl_chat_template

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
SYSTEM_PROMPT = "You are a helpful assistant."
PATCH_SIZE = 14
MERGE_SIZE = 2


def build_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    """Byte-level BPE (Qwen's scheme) trained on `corpus` until every corpus word is one token.

    The vocabulary target is far above what the corpus can fill, so BPE merges each word
    (with and without its leading-space marker) into a single token: a class name is then
    one token, which makes greedy answers and exact answer probabilities one step each.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4096,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Each word also at line start and after a space, as it appears in answers and prompts.
    words = sorted({w for line in corpus for w in line.split()})
    tokenizer.train_from_iterator(
        corpus + words + [" " + w for w in words] + ["\n" + w for w in words], trainer
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
        padding_side="left",
        chat_template=qwen2_5_vl_chat_template,
    )


def build_processor(
    tokenizer: PreTrainedTokenizerFast, min_pixels: int, max_pixels: int
) -> Qwen2_5_VLProcessor:
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=PATCH_SIZE, merge_size=MERGE_SIZE)
    video_processor = Qwen2VLVideoProcessor(size=size, patch_size=PATCH_SIZE, merge_size=MERGE_SIZE)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=qwen2_5_vl_chat_template,
    )


def build_config(
    tokenizer: PreTrainedTokenizerFast,
    vision_hidden: int,
    vision_depth: int,
    text_hidden: int,
    text_layers: int,
) -> Qwen2_5_VLConfig:
    ids = tokenizer.convert_tokens_to_ids
    text_heads = 2
    head_dim = text_hidden // text_heads
    # M-RoPE splits head_dim/2 rotary frequencies over (time, height, width); they must sum to it.
    half = head_dim // 2
    spatial = (
        half - half // 4
    ) // 2  # Qwen's 16/24/24 ratio: a quarter to time, the rest to height and width
    mrope_section = [half - 2 * spatial, spatial, spatial]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": text_hidden,
            "intermediate_size": 2 * text_hidden,
            "num_hidden_layers": text_layers,
            "num_attention_heads": text_heads,
            "num_key_value_heads": 1,
            "max_position_embeddings": 2048,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": mrope_section,
            },
            "bos_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": ids("<|endoftext|>"),
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": vision_depth,
            "hidden_size": vision_hidden,
            "intermediate_size": 2 * vision_hidden,
            "num_heads": 2,
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": MERGE_SIZE,
            "temporal_patch_size": 2,
            "window_size": 112,
            "out_hidden_size": text_hidden,
            "fullatt_block_indexes": [vision_depth - 1],
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    return config


def build_model(config: Qwen2_5_VLConfig, seed: int) -> Qwen2_5_VLForConditionalGeneration:
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.bos_token_id = config.text_config.bos_token_id
    return model
