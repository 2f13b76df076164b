"""Phase 4 (`pretrain_reasoning`, the reasoning task's base only) continues from the phase-3 base:
multiple-choice questions of the reasoning world (dcsft.data.reasoning_world) in both styles and
template sets, asked with the reasoning task's prompt and answered with the option's letter,
the same questions answered directly (the option's text), and replay of phase 2's tasks; its
items are drawn at the reasoning frame (112 px), the replayed ones at the base's 84 px.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from dcsft.config import PretrainConfig, ReasoningPretrainConfig
from dcsft.models.pretrain import (
    Batcher,
    Pool,
    load_parent,
    lr_at,
    make_optimizer,
    phase_stats,
    replay_pools,
    step_update,
    task_pair,
)

PHASE4_TASKS = ("choice", "direct", "select")  # in the order of their shares (ReasoningPretrainConfig)
SELECT = "Which option is {}?"  # the `select` task's question: the answer named, its letter asked


def reasoning_prompts() -> tuple[str, ...]:
    """The multiple-choice phrasings phase 4 asks in: the reasoning task's `paper` prompt (the
    study's default) first, then the world's own; the R1 prompt is left out (its answers are
    tagged, and the world has no reasoning to put in a think block)."""
    from dcsft.data import reasoning_world
    from dcsft.tasks.reasoning import PAPER_PROMPT

    return (PAPER_PROMPT, reasoning_world.PROMPT)


def draw_reasoning_pool(
    seed: int, name: str, n: int, size: int, progress: Callable[[int], None] | None = None
) -> Pool:
    """Items of every style and template set (half each, alternating in blocks of four)."""
    from dcsft.data import reasoning_world as rw

    images, metas = np.empty((n, size, size, 3), np.uint8), []
    for i in range(n):
        style = rw.STYLES[(i // 4) % 2]
        templates = rw.TEMPLATE_SETS[(i // 8) % 2]
        image, meta = rw.draw_item(seed, f"{name}-{style}-{templates}", i, style, templates, size=size)
        images[i] = np.asarray(image)
        metas.append(meta)
        if progress:
            progress(1)
    return Pool(images, metas)


def choice_pair(rng: np.random.Generator, meta: dict, prompts: tuple[str, ...]) -> tuple[str, str]:
    from dcsft.data import reasoning_world as rw

    return rw.problem_text(meta, prompts[rng.integers(len(prompts))]), meta["answer"]


def phase4_task(r: ReasoningPretrainConfig, u: float) -> str:
    """The task of a step whose uniform draw is `u`: by the shares, in PHASE4_TASKS' order, else replay."""
    bounds = np.cumsum([getattr(r, task) for task in PHASE4_TASKS])
    return (*PHASE4_TASKS, "replay")[int(np.searchsorted(bounds, u, side="right"))]


def phase4_pair(task: str, rng: np.random.Generator, meta: dict, prompts: tuple[str, ...]) -> tuple[str, str]:
    """(prompt, answer) of one phase-4 example of `task` (PHASE4_TASKS, or `replay` of phase 2's)."""
    if task == "choice":
        return choice_pair(rng, meta, prompts)
    if task == "direct":
        return meta["question"], meta["answer_text"]
    if task == "select":
        return choice_pair(rng, {**meta, "question": SELECT.format(meta["answer_text"])}, prompts)
    return task_pair(rng, meta)


def train_reasoning(
    model,
    batchers: tuple[Batcher, Batcher],
    item_pool: Pool,
    shape_pool: Pool,
    cfg: PretrainConfig,
    rng: np.random.Generator,
    tick: Callable[[dict], None],
) -> None:
    r = cfg.reasoning
    prompts = reasoning_prompts()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, r.lr)
    for step in range(r.steps):
        task = phase4_task(r, rng.random())
        pool, batcher = (shape_pool, batchers[1]) if task == "replay" else (item_pool, batchers[0])
        idx = rng.integers(len(pool.metas), size=r.batch_size)
        batch = batcher.text_batch([phase4_pair(task, rng, pool.metas[i], prompts) for i in idx])
        loss = model(**batch, **batcher.pixels(pool.images[idx])).loss
        step_update(optimizer, params, loss, lr_at(step, r.steps, r.lr))
        tick({"phase": task, "step": step, "loss": loss.item()})


@torch.no_grad()
def choice_accuracy(
    model, batcher: Batcher, pool: Pool, prompt: str, batch_size: int = 64
) -> dict[str, dict]:
    """First-token argmax accuracy of the answer letter (each letter is one token), per style and
    template set, and per skill within each."""
    from dcsft.data import reasoning_world as rw

    model.eval()
    letters = {batcher.answer_ids(letter)[0]: letter for letter in rw.LETTERS}
    hits: dict[str, dict[str, list[bool]]] = {}
    for start in range(0, len(pool.metas), batch_size):
        metas = pool.metas[start : start + batch_size]
        prompts = [batcher.prompt_ids(rw.problem_text(m, prompt)) for m in metas]
        length = max(map(len, prompts))
        pad = batcher.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (length - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (length - len(p)) + [1] * len(p) for p in prompts])
        out = model(
            input_ids=input_ids,
            attention_mask=mask,
            mm_token_type_ids=(input_ids == batcher.image_token_id).int(),
            **batcher.pixels(pool.images[start : start + batch_size]),
        )
        for meta, token in zip(metas, out.logits[:, -1].argmax(-1).tolist()):
            split = f"{meta['style']}/{meta['templates']}"
            for key in ("all", meta["skill"]):
                hits.setdefault(split, {}).setdefault(key, []).append(letters.get(token) == meta["answer"])
    model.train()
    return {
        split: {key: round(100 * float(np.mean(h)), 1) for key, h in sorted(skills.items())}
        for split, skills in sorted(hits.items())
    }


def pretrain_reasoning(
    parent: str,
    cfg: PretrainConfig,
    progress: Callable[[dict], None] = lambda _: None,
    pool_progress: Callable[[int], None] | None = None,
):
    """Phase 4 from the grounding base in `parent`; returns (model, processor, stats)."""
    r = cfg.reasoning
    model, processor = load_parent(parent, r.seed, r.image_size)
    batchers = (Batcher(processor, r.image_size), Batcher(processor, cfg.image_size))
    started = time.time()
    item_pool = draw_reasoning_pool(r.seed, "pretrain-reasoning", r.pool_size, r.image_size, pool_progress)
    shape_pool, shapes_heldout = replay_pools(cfg, r.pool_size)
    heldout = draw_reasoning_pool(r.seed, "pretrain-reasoning-heldout", 800, r.image_size)
    prompt = reasoning_prompts()[0]
    before = choice_accuracy(model, batchers[0], heldout, prompt)
    model.train()
    train_reasoning(model, batchers, item_pool, shape_pool, cfg, np.random.default_rng([r.seed, 5]), progress)
    stats = phase_stats(
        started,
        model,
        batchers[1],
        shapes_heldout,
        prompt=prompt,
        heldout_choice_accuracy_before=before,
        heldout_choice_accuracy=choice_accuracy(model, batchers[0], heldout, prompt),
    )
    return model.eval(), processor, stats
