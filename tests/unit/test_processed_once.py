"""Inputs processed once: SFT batches cut from one pass of TRL's collator equal TRL's own
batches tensor for tensor, and cached prompt batches equal freshly processed ones, except that
a processor with other settings or a rewritten image never gets the cached tensors."""

import copy
import os
import random

import pytest
import torch
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from dcsft.config import StudyConfig
from dcsft.data import scenes, world
from dcsft.models import processed
from dcsft.models.base import PACKAGED_GROUNDING
from dcsft.models.generate import prompt_inputs
from dcsft.models.loading import load_processor
from dcsft.tasks import classification, grounding
from dcsft.train import batches
from dcsft.train.batches import ProcessedOnce, example_key
from dcsft.train.sft import to_dataset

MODEL_CFG = StudyConfig().model.model_copy(update={"max_pixels": 7056, "min_pixels": 3136})


@pytest.fixture(scope="module")
def processor():
    return load_processor(PACKAGED_GROUNDING, MODEL_CFG)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Shapes (one-word answers) and scenes (boxes of about 17 tokens): rows of several lengths."""
    folder = tmp_path_factory.mktemp("images")
    rows = []
    for index in range(40):
        if index % 2:
            image, meta = world.draw_pool_item(0, "test-batches", index, "photo", size=84)
            problem, solution = classification.PROMPT, meta["label"]
        else:
            image, meta = scenes.draw_scene_item(0, "test-batches", index, "photo", "short", size=84)
            problem, solution = grounding.prompt(meta["expression"]), grounding.format_box(meta["box"])
        path = folder / f"{index}.png"
        image.save(path)
        rows.append({"id": f"r{index}", "problem": problem, "solution": solution, "image": str(path)})
    return rows


def processed_once(processor, records):
    collator = DataCollatorForVisionLanguageModeling(processor=processor, completion_only_loss=True)
    undecoded, decoded = to_dataset(records, decode_images=False), to_dataset(records)
    keyed = [(example_key(row), example) for row, example in zip(undecoded, decoded)]
    return collator, undecoded, decoded, ProcessedOnce.build(collator, keyed)


def test_batches_equal_trls_collator_tensor_for_tensor(processor, records):
    collator, undecoded, decoded, once = processed_once(processor, records)
    draw = random.Random(0)
    for _ in range(20):
        picked = [draw.randrange(len(records)) for _ in range(8)]  # repeats included, as epochs give them
        expected = collator([copy.deepcopy(decoded[i]) for i in picked])
        got = once([undecoded[i] for i in picked])
        assert set(got) == set(expected)
        for key, tensor in expected.items():
            assert got[key].dtype == tensor.dtype and torch.equal(got[key], tensor), key
    # the padding was exercised
    assert (expected["labels"] == -100).any() and (expected["attention_mask"] == 0).any()


def test_rows_past_the_memory_budget_keep_trls_collator(processor, records, monkeypatch):
    monkeypatch.setattr(batches, "MEMORY_BUDGET", 1000)
    assert processed_once(processor, records)[3] is None


def test_cached_prompt_batch_equals_a_fresh_one(processor, records):
    batch = records[:6]
    first = prompt_inputs(processor, batch)
    processed._entries.clear()
    fresh = prompt_inputs(processor, batch)
    again = prompt_inputs(processor, batch)
    for key in fresh:
        assert torch.equal(first[key], fresh[key]) and torch.equal(again[key], fresh[key]), key
    again["input_ids"][:] = 0  # what a caller does with its batch does not reach the cache
    assert torch.equal(prompt_inputs(processor, batch)["input_ids"], fresh["input_ids"])


def test_other_processor_settings_never_get_the_cached_tensors(processor, records):
    batch = records[:4]
    default = prompt_inputs(processor, batch)
    # a lower max_pixels resizes the 84-px images to 56 px: fewer patches, fewer image tokens
    lower = load_processor(
        PACKAGED_GROUNDING, MODEL_CFG.model_copy(update={"min_pixels": 784, "max_pixels": 3136})
    )
    smaller = prompt_inputs(lower, batch)
    assert smaller["pixel_values"].shape[0] < default["pixel_values"].shape[0]
    assert smaller["input_ids"].shape[1] < default["input_ids"].shape[1]


def test_a_rewritten_image_is_processed_again(processor, records, tmp_path):
    path = tmp_path / "image.png"
    world.draw_pool_item(0, "test-batches", 1, "photo", size=84)[0].save(path)
    record = {**records[1], "image": str(path)}
    before = prompt_inputs(processor, [record])
    world.draw_pool_item(0, "test-batches", 2, "rendition", size=84)[0].save(path)
    os.utime(path, ns=(1, 1))  # a different modification time even on a coarse clock
    after = prompt_inputs(processor, [record])
    assert not torch.equal(before["pixel_values"], after["pixel_values"])
