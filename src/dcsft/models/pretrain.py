"""Pretrain the embedded base model: the stand-in for "Qwen2.5-VL as released".

No pretrained VLM can be downloaded here, so the tiny Qwen2.5-VL is taught the shape world
in every rendering style before the study starts, on a pool of images disjoint from every
study split (its own seed stream). Two phases, because a tiny vision tower learns shapes
far faster against a linear head than through the language model (measured, see
shared notes): (1) vision tower + linear class head; (2) the whole VLM on instructions
(object name in several phrasings, colour, caption naming object, colour and style) with
loss on the answer only. The study's prompt is one of the object-name phrasings, as an
instruction-tuned release has seen such questions; the cold start then adapts the model
to the study's image style.

Phase 3 (`pretrain_grounding`) continues from the phase-2 base: referring expressions of the
scene world in every style and grammar, answered with a box in the pixels of the image the
model sees, mixed with replay of phase 2's tasks so that the base keeps its object names.
The tokenizer stays the phase-2 one: coordinates are written digit by digit (as Qwen2.5's
tokenizer does) and grounding words it has not seen are spelled in byte pieces.

Phase 4, the reasoning task's base, is dcsft.models.pretrain_reasoning.

A plain torch loop, not the HF Trainer: batches are drawn from an in-memory pool with
per-step task sampling, and the phase-1 linear head is not part of the model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dcsft.config import PretrainConfig
from dcsft.data import scenes, world
from dcsft.data.resize import fit_image
from dcsft.models.embedded import SYSTEM_PROMPT, build_config, build_model, build_processor, build_tokenizer
from dcsft.tasks import grounding
from dcsft.tasks.classification import PROMPT

NAME_QUESTIONS = (
    PROMPT,
    "What object is shown in the image?",
    "Name the object in the image.",
    "What is this?",
)
COLOUR_QUESTION = "What colour is the object?"
CAPTION_QUESTIONS = ("Describe the image.", "Write a short caption for the image.")
# Phase-2 task mix: object name, colour, caption.
TASK_WEIGHTS = {"name": 0.5, "colour": 0.15, "caption": 0.35}
# Pretraining sees every style; the study's ID split is photo, its OOD splits the others.
STYLE_WEIGHTS = {"photo": 0.4, "rendition": 0.4, "adversarial": 0.2}
MIN_PIXELS = 3136
# Phase 3 sees every scene style and grammar; the study trains on photo scenes with short expressions.
SCENE_STYLE_WEIGHTS = {"photo": 0.6, "drawing": 0.4}
GRAMMAR_WEIGHTS = {"short": 0.5, "relational": 0.25, "indirect": 0.25}


def vocabulary() -> list[str]:
    """Every text the embedded model can meet: the tokenizer is trained on exactly this."""
    # Caption templates use a fixed set of words; a few seeded draws per substyle show them all.
    captions = {
        world.caption(
            world.draw_sample(world.sample_rng(0, "vocabulary", i), style, size=28, substyle=sub)[1]
        )
        for style in world.STYLES
        for sub in world.SUBSTYLES[style]
        for i in range(24)
    }
    return [
        SYSTEM_PROMPT,
        "system user assistant",
        *NAME_QUESTIONS,
        COLOUR_QUESTION,
        *CAPTION_QUESTIONS,
        " ".join(world.CLASSES),
        " ".join(world.COLOURS),
        *sorted(captions),
    ]


@dataclass
class Pool:
    images: np.ndarray  # (n, size, size, 3) uint8
    metas: list[dict]


def draw_pool(seed: int, name: str, n: int, size: int, progress: Callable[[int], None] | None = None) -> Pool:
    styles = list(STYLE_WEIGHTS)
    weights = np.array(list(STYLE_WEIGHTS.values()))
    style_rng = np.random.default_rng([seed, 7])
    images, metas = np.empty((n, size, size, 3), np.uint8), []
    for i in range(n):
        style = styles[style_rng.choice(len(styles), p=weights / weights.sum())]
        image, meta = world.draw_pool_item(seed, name, i, style, size=size)
        images[i] = np.asarray(image)
        metas.append(meta)
        if progress:
            progress(1)
    return Pool(images, metas)


def lr_at(step: int, total: int, peak: float, warmup: float = 0.05) -> float:
    warm = max(1, int(total * warmup))
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


class Batcher:
    """Turns pool items into model inputs; token ids are cached per (question, answer)."""

    def __init__(self, processor, size: int):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token_id = self.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        tokens_per_image = (size // 14) ** 2 // 4
        self._image_tokens = "<|image_pad|>" * tokens_per_image
        self._prompt_cache: dict[str, list[int]] = {}
        self._answer_cache: dict[str, list[int]] = {}

    def prompt_ids(self, question: str) -> list[int]:
        if question not in self._prompt_cache:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
            text = text.replace("<|image_pad|>", self._image_tokens)
            self._prompt_cache[question] = self.tokenizer(text)["input_ids"]
        return self._prompt_cache[question]

    def answer_ids(self, answer: str) -> list[int]:
        if answer not in self._answer_cache:
            # Exactly what the chat template puts after an assistant answer (TRL trains on it too).
            self._answer_cache[answer] = self.tokenizer(answer + "<|im_end|>\n")["input_ids"]
        return self._answer_cache[answer]

    def pixels(self, images: np.ndarray) -> dict[str, torch.Tensor]:
        out = self.processor.image_processor(images=list(images), return_tensors="pt")
        return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}

    def text_batch(self, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        seqs = [(self.prompt_ids(q), self.answer_ids(a)) for q, a in pairs]
        length = max(len(p) + len(a) for p, a in seqs)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(seqs), length), pad)
        labels = torch.full((len(seqs), length), -100)
        mask = torch.zeros((len(seqs), length), dtype=torch.long)
        for row, (p, a) in enumerate(seqs):
            input_ids[row, : len(p) + len(a)] = torch.tensor(p + a)
            labels[row, len(p) : len(p) + len(a)] = torch.tensor(a)
            mask[row, : len(p) + len(a)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "labels": labels,
            "mm_token_type_ids": (input_ids == self.image_token_id).int(),
        }


def task_pair(rng: np.random.Generator, meta: dict) -> tuple[str, str]:
    task = rng.choice(list(TASK_WEIGHTS), p=list(TASK_WEIGHTS.values()))
    if task == "name":
        return NAME_QUESTIONS[rng.integers(len(NAME_QUESTIONS))], meta["drawn"]
    if task == "colour":
        return COLOUR_QUESTION, meta["colour"]
    return CAPTION_QUESTIONS[rng.integers(len(CAPTION_QUESTIONS))], world.caption(meta)


def vision_features(model, pixels: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each image's merged visual tokens side by side: (batch, tokens x text_hidden). Keeping
    the layout matters: a head on mean-pooled tokens stayed at chance for 500 steps."""
    tokens = model.model.visual(pixels["pixel_values"], grid_thw=pixels["image_grid_thw"]).pooler_output
    return tokens.reshape(len(pixels["image_grid_thw"]), -1)


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.0)


def train_vision(
    model,
    batcher: Batcher,
    pool: Pool,
    cfg: PretrainConfig,
    rng: np.random.Generator,
    tick: Callable[[dict], None],
) -> torch.nn.Module:
    """Phase 1; returns the linear head (not part of the model) for measuring the phase."""
    features = model.config.text_config.hidden_size * (cfg.image_size // 28) ** 2
    head = torch.nn.Sequential(torch.nn.LayerNorm(features), torch.nn.Linear(features, len(world.CLASSES)))
    params = list(model.model.visual.parameters()) + list(head.parameters())
    optimizer = make_optimizer(params, cfg.lr)
    class_index = {c: i for i, c in enumerate(world.CLASSES)}
    for step in range(cfg.vision_steps):
        idx = rng.integers(len(pool.metas), size=cfg.batch_size)
        targets = torch.tensor([class_index[pool.metas[i]["drawn"]] for i in idx])
        logits = head(vision_features(model, batcher.pixels(pool.images[idx])))
        loss = F.cross_entropy(logits, targets)
        step_update(optimizer, params, loss, lr_at(step, cfg.vision_steps, cfg.lr))
        tick({"phase": "vision", "step": step, "loss": loss.item()})
    return head


def train_vlm(
    model,
    batcher: Batcher,
    pool: Pool,
    cfg: PretrainConfig,
    rng: np.random.Generator,
    tick: Callable[[dict], None],
) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    vision = {id(p) for p in model.model.visual.parameters()}
    # A fresh language model's early gradients would wash out what phase 1 taught the vision tower.
    optimizer = make_optimizer(
        [
            {"params": [p for p in params if id(p) in vision], "scale": cfg.vlm_vision_lr_scale},
            {"params": [p for p in params if id(p) not in vision], "scale": 1.0},
        ],
        cfg.lr,
    )
    for step in range(cfg.vlm_steps):
        idx = rng.integers(len(pool.metas), size=cfg.batch_size)
        batch = batcher.text_batch([task_pair(rng, pool.metas[i]) for i in idx])
        loss = model(**batch, **batcher.pixels(pool.images[idx])).loss
        step_update(optimizer, params, loss, lr_at(step, cfg.vlm_steps, cfg.lr))
        tick({"phase": "vlm", "step": step, "loss": loss.item()})


def step_update(optimizer: torch.optim.Optimizer, params, loss: torch.Tensor, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("scale", 1.0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()


def by_style(pool: Pool, hits: list[bool]) -> dict[str, float]:
    styles: dict[str, list[bool]] = {}
    for meta, hit in zip(pool.metas, hits):
        styles.setdefault(meta["style"], []).append(hit)
    return {style: round(100 * float(np.mean(h)), 1) for style, h in sorted(styles.items())}


@torch.no_grad()
def head_accuracy(
    model, head: torch.nn.Module, batcher: Batcher, pool: Pool, batch_size: int = 64
) -> dict[str, float]:
    """Phase-1 accuracy of the vision tower + linear head per style."""
    model.eval()
    hits = []
    for start in range(0, len(pool.metas), batch_size):
        idx = np.arange(start, min(start + batch_size, len(pool.metas)))
        predicted = head(vision_features(model, batcher.pixels(pool.images[idx]))).argmax(-1).tolist()
        hits += [world.CLASSES[p] == pool.metas[i]["drawn"] for i, p in zip(idx, predicted)]
    model.train()
    return by_style(pool, hits)


@torch.no_grad()
def name_accuracy(
    model, batcher: Batcher, pool: Pool, question: str = PROMPT, batch_size: int = 64
) -> dict[str, float]:
    """First-token argmax accuracy of the object name per style (each class name is one token)."""
    model.eval()
    hits = []
    prompt = batcher.prompt_ids(question)
    answer_first = {c: batcher.answer_ids(c)[0] for c in world.CLASSES}
    for start in range(0, len(pool.metas), batch_size):
        idx = np.arange(start, min(start + batch_size, len(pool.metas)))
        input_ids = torch.tensor([prompt] * len(idx))
        out = model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            mm_token_type_ids=(input_ids == batcher.image_token_id).int(),
            **batcher.pixels(pool.images[idx]),
        )
        predicted = out.logits[:, -1].argmax(-1).tolist()
        hits += [token == answer_first[pool.metas[i]["drawn"]] for i, token in zip(idx, predicted)]
    model.train()
    return by_style(pool, hits)


def build_base(cfg: PretrainConfig, max_pixels: int):
    tokenizer = build_tokenizer(vocabulary())
    processor = build_processor(tokenizer, MIN_PIXELS, max_pixels)
    config = build_config(tokenizer, cfg.vision_hidden, cfg.vision_depth, cfg.text_hidden, cfg.text_layers)
    return build_model(config, cfg.seed), processor


def pretrain(
    cfg: PretrainConfig,
    progress: Callable[[dict], None] = lambda _: None,
    pool_progress: Callable[[int], None] | None = None,
):
    """Train a base model; returns (model, processor, stats)."""
    torch.manual_seed(cfg.seed)
    max_pixels = cfg.image_size * cfg.image_size
    model, processor = build_base(cfg, max_pixels)
    batcher = Batcher(processor, cfg.image_size)
    started = time.time()
    pool = draw_pool(cfg.seed, "pretrain", cfg.pool_size, cfg.image_size, pool_progress)
    heldout = draw_pool(cfg.seed, "pretrain-heldout", 600, cfg.image_size)
    rng = np.random.default_rng([cfg.seed, 1])
    model.train()
    head = train_vision(model, batcher, pool, cfg, rng, progress)
    vision_accuracy = head_accuracy(model, head, batcher, heldout)
    train_vlm(model, batcher, pool, cfg, rng, progress)
    stats = {
        "seconds": round(time.time() - started, 1),
        "heldout_vision_head_accuracy": vision_accuracy,
        "heldout_name_accuracy": name_accuracy(model, batcher, heldout),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return model.eval(), processor, stats


# ---------------------------------------------------------------- phase 3: grounding


def pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    return names[rng.choice(len(names), p=np.array(list(weights.values())) / sum(weights.values()))]


def draw_scene_pool(
    seed: int,
    name: str,
    n: int,
    canvas: int,
    size: int,
    styles: dict[str, float],
    grammars: dict[str, float],
    progress: Callable[[int], None] | None = None,
) -> Pool:
    """Scenes resized to the model's `size` x `size` frame, boxes rescaled with them."""
    rng = np.random.default_rng([seed, 11])
    images, metas = np.empty((n, size, size, 3), np.uint8), []
    for i in range(n):
        image, meta = scenes.draw_scene_item(
            seed, name, i, pick(rng, styles), pick(rng, grammars), size=canvas
        )
        fitted, factors = fit_image(image, MIN_PIXELS, size * size)
        images[i] = np.asarray(fitted)
        metas.append({**meta, "box": grounding.scale_box(meta["box"], factors), "size": list(fitted.size)})
        if progress:
            progress(1)
    return Pool(images, metas)


def grounding_pair(meta: dict) -> tuple[str, str]:
    return grounding.prompt(meta["expression"]), grounding.format_box(meta["box"])


def single_object_pair(rng: np.random.Generator, meta: dict) -> tuple[str, str]:
    """Locate the labelled object of a phase-2 image (a second object, if any, is another class)."""
    if rng.random() < 0.3 and "distractor" not in meta and "other" not in meta:
        expression = "the object"
    elif rng.random() < 0.5 or meta["style"] == "rendition":
        expression = f"the {meta['drawn']}"
    else:
        expression = f"the {meta['colour']} {meta['drawn']}"
    return grounding.prompt(expression), grounding.format_box(meta["box"])


def interleave_mrope(model) -> list[int]:
    """Give image rows and columns every other rotary frequency (as Qwen3-VL's interleaved
    M-RoPE does), through Qwen2.5-VL's own `mrope_section` (chunks cycle time, height, width).

    Why: with consecutive sections a 32-dim head leaves the width axis only the six lowest
    frequencies (0.003 to 0.0002 rad per position), too slow to tell three token columns
    apart. Text tokens have equal time, height and width positions, so their rotation (and
    what phases 1-2 learnt from it) does not change."""
    half = (
        model.config.text_config.head_dim // 2
        if getattr(model.config.text_config, "head_dim", None)
        else (model.config.text_config.hidden_size // model.config.text_config.num_attention_heads // 2)
    )
    sections = [0, 1, 1] * (half // 2) + [0, 1] * (half % 2)
    model.config.text_config.rope_parameters["mrope_section"] = sections
    model.model.language_model.rotary_emb.mrope_section = sections  # held there from transformers 5.17
    return sections


def train_grounding(
    model,
    batcher: Batcher,
    scene_pool: Pool,
    shape_pool: Pool,
    cfg: PretrainConfig,
    rng: np.random.Generator,
    tick: Callable[[dict], None],
) -> None:
    g = cfg.grounding
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, g.lr)
    for step in range(g.steps):
        u = rng.random()
        task = "scenes" if u < g.scenes else "single" if u < g.scenes + g.single else "replay"
        pool = scene_pool if task == "scenes" else shape_pool
        idx = rng.integers(len(pool.metas), size=g.batch_size)
        make_pair = {
            "scenes": lambda m: grounding_pair(m),
            "single": lambda m: single_object_pair(rng, m),
            "replay": lambda m: task_pair(rng, m),
        }[task]
        batch, images = batcher.text_batch([make_pair(pool.metas[i]) for i in idx]), pool.images[idx]
        loss = model(**batch, **batcher.pixels(images)).loss
        step_update(optimizer, params, loss, lr_at(step, g.steps, g.lr))
        tick({"phase": task, "step": step, "loss": loss.item()})


@torch.no_grad()
def grounding_accuracy(model, processor, pool: Pool, batch_size: int = 64) -> dict[str, float]:
    """Greedy IoU >= 0.5 accuracy per grammar, through generate as the study decodes."""
    from dcsft.models.generate import prompt_text

    model.eval()
    hits: dict[str, list[bool]] = {}
    for start in range(0, len(pool.metas), batch_size):
        metas = pool.metas[start : start + batch_size]
        inputs = processor(
            text=[prompt_text(processor, grounding.prompt(m["expression"])) for m in metas],
            images=list(pool.images[start : start + batch_size]),
            return_tensors="pt",
            padding=True,
        )
        out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
        responses = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        for meta, response in zip(metas, responses):
            solution = grounding.format_box(meta["box"])
            hits.setdefault(meta["grammar"], []).append(
                bool(grounding.score(response, solution, tuple(meta["size"])))
            )
    return {grammar: round(100 * float(np.mean(h)), 1) for grammar, h in sorted(hits.items())}


def load_parent(parent: str, seed: int, side: int):
    """The base a later phase continues from, in a frame of `side` x `side`; torch seeded first."""
    from dcsft.config import ModelConfig
    from dcsft.models.loading import load_model, load_processor

    torch.manual_seed(seed)
    frame = ModelConfig(min_pixels=MIN_PIXELS, max_pixels=side**2)
    return load_model(parent, frame), load_processor(parent, frame)


def replay_pools(cfg: PretrainConfig, pool_size: int) -> tuple[Pool, Pool]:
    """A later phase's replay of phase 2 (at most `pool_size` images) and the held-out names it
    must keep."""
    replay = draw_pool(cfg.seed, "pretrain", min(cfg.pool_size, pool_size), cfg.image_size)
    return replay, draw_pool(cfg.seed, "pretrain-heldout", 600, cfg.image_size)


def phase_stats(started: float, model, batcher: Batcher, shapes_heldout: Pool, **measured) -> dict:
    """pretrain.json's record of a later phase: wall time, what it measured, and the names kept."""
    return {
        "seconds": round(time.time() - started, 1),
        **measured,
        "heldout_name_accuracy": name_accuracy(model, batcher, shapes_heldout),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def pretrain_grounding(
    parent: str,
    cfg: PretrainConfig,
    progress: Callable[[dict], None] = lambda _: None,
    pool_progress: Callable[[int], None] | None = None,
):
    """Phase 3 from the phase-2 base in `parent`; returns (model, processor, stats)."""
    g = cfg.grounding
    model, processor = load_parent(parent, g.seed, cfg.image_size)
    interleave_mrope(model)
    batcher = Batcher(processor, cfg.image_size)
    started = time.time()
    scene_pool = draw_scene_pool(
        g.seed,
        "pretrain-scenes",
        g.pool_size,
        g.canvas,
        cfg.image_size,
        SCENE_STYLE_WEIGHTS,
        GRAMMAR_WEIGHTS,
        pool_progress,
    )
    shape_pool, shapes_heldout = replay_pools(cfg, g.pool_size)
    heldout = draw_scene_pool(
        g.seed, "pretrain-scenes-heldout", 600, g.canvas, cfg.image_size, {"photo": 1.0}, GRAMMAR_WEIGHTS
    )
    model.train()
    train_grounding(model, batcher, scene_pool, shape_pool, cfg, np.random.default_rng([g.seed, 3]), progress)
    accuracy = grounding_accuracy(model, processor, heldout)
    stats = phase_stats(started, model, batcher, shapes_heldout, heldout_grounding_accuracy=accuracy)
    return model.eval(), processor, stats
