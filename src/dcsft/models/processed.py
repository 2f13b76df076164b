"""The processor's outputs for batches of image + question prompts, kept for the process.

Evaluation runs every model of a study (base, cold start, each method and seed) over the same
test batches, and the image processor and chat template were a quarter to two fifths of its time
(`benchmarks/study_speed.py`): a batch is processed once and later models reuse its tensors.

A batch's key is everything its tensors depend on: the processor's settings (image processor
config, tokenizer vocabulary and chat template, padding side), and per record its question and
its image file's path, size and modification time. A changed `max_pixels` or a rewritten image
is therefore a new key, never a stale entry. Entries are dropped oldest first beyond BUDGET
bytes; nothing is written to disk (an 84-px image's patches are 169 KB, a real-scale one's
about 5 MB, more than decoding it again costs).
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections import OrderedDict
from collections.abc import Callable

import torch

BUDGET = 2**30  # bytes of processed batches kept per process

_entries: OrderedDict[tuple, tuple[dict, int]] = OrderedDict()  # key -> (tensors, their bytes)
_processor_keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def processor_key(processor) -> str:
    """A hash of what a processor's outputs depend on (computed once per processor object)."""
    if processor not in _processor_keys:
        tokenizer = processor.tokenizer
        settings = [
            processor.image_processor.to_dict(),
            sorted(tokenizer.get_vocab().items()),
            tokenizer.padding_side,
            tokenizer.chat_template,
            getattr(processor, "chat_template", None),
        ]
        text = json.dumps(settings, sort_keys=True, default=str)
        _processor_keys[processor] = hashlib.sha256(text.encode()).hexdigest()
    return _processor_keys[processor]


def record_key(record: dict) -> tuple:
    stat = os.stat(record["image"])
    return record["problem"], str(record["image"]), stat.st_size, stat.st_mtime_ns


def tensor_bytes(tensors: dict) -> int:
    """Bytes held by the tensors among a dict's values."""
    return sum(v.numel() * v.element_size() for v in tensors.values() if isinstance(v, torch.Tensor))


def cached(processor, records: list[dict], process: Callable[[], dict]) -> dict:
    """process() for this batch of records, or the tensors it gave before for the same key."""
    key = (processor_key(processor), tuple(record_key(r) for r in records))
    if key in _entries:
        _entries.move_to_end(key)
        return _entries[key][0]
    inputs = process()
    _entries[key] = inputs, tensor_bytes(inputs)
    while len(_entries) > 1 and sum(size for _, size in _entries.values()) > BUDGET:
        _entries.popitem(last=False)
    return inputs
