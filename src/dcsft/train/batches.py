"""Training batches cut from one pass of TRL's own collator over the training set.

TRL's vision collator decodes each image, runs the image processor and applies the chat
template at every step: a fifth of an embedded SFT step (`benchmarks/study_speed.py`). Those
outputs depend only on the record, so `ProcessedOnce` runs that same collator once over every
distinct record, keeps each record's row (its tokens, loss labels, multimodal token types,
pixel patches and grid), and builds a batch by right-padding rows as TRL's flush-left does:
the batches are equal, tensor for tensor, to TRL's (tests/unit/test_processed_once.py).

Kept in memory for the training run only, not on disk: at 84 px an image's patches are 169 KB
(270 MB for the default training split), at real scale about 5 MB, so a record set whose rows
would pass MEMORY_BUDGET keeps TRL's collator as it is (a real-scale run hides collation behind
`dataloader_num_workers` in `train.extra` instead).
"""

from __future__ import annotations

import copy
import json

import torch

from dcsft.models.processed import tensor_bytes

MEMORY_BUDGET = 2 * 2**30  # bytes of processed rows kept for one training run
CHUNK = 64  # records per collator call while processing
TEXT_KEYS = ("input_ids", "attention_mask", "labels", "mm_token_type_ids", "token_type_ids")


def example_key(example: dict) -> str:
    """A record's identity as the Trainer hands it over: its images, prompt and completion."""
    parts = [example.get("images"), example["prompt"], example["completion"]]
    return json.dumps(parts, sort_keys=True, default=str)


def split_rows(batch: dict, examples: list[dict]) -> list[dict]:
    """The collator's batch cut back into one unpadded row per example."""
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    patches = batch["image_grid_thw"].prod(dim=1).tolist() if "image_grid_thw" in batch else []
    rows, image, patch = [], 0, 0
    for i, (example, length) in enumerate(zip(examples, lengths)):
        row = {key: batch[key][i, :length] for key in TEXT_KEYS if key in batch}
        images = len(example.get("images") or [])
        if images:
            size = sum(patches[image : image + images])
            row["pixel_values"] = batch["pixel_values"][patch : patch + size]
            row["image_grid_thw"] = batch["image_grid_thw"][image : image + images]
            image, patch = image + images, patch + size
        rows.append(row)
    return rows


def pad_right(rows: list[torch.Tensor], value: int) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=value)


class ProcessedOnce:
    """A collator that hands the Trainer batches assembled from rows `collator` made ahead of time."""

    def __init__(self, rows: dict[str, dict]):
        self.rows = rows

    @classmethod
    def build(cls, collator, keyed: list[tuple[str, dict]]) -> ProcessedOnce | None:
        """Process every distinct example (decoded images, keyed by example_key of its undecoded
        row) once; None if their rows would pass MEMORY_BUDGET."""
        distinct = list(dict(keyed).items())
        rows: dict[str, dict] = {}
        held = 0  # bytes of the rows made so far
        for start in range(0, len(distinct), CHUNK):
            chunk = distinct[start : start + CHUNK]
            copies = [copy.deepcopy(e) for _, e in chunk]  # the collator edits the examples it is given
            made = split_rows(collator(copies), [e for _, e in chunk])
            rows.update((key, row) for (key, _), row in zip(chunk, made))
            held += sum(tensor_bytes(row) for row in made)
            if held / len(rows) * len(distinct) > MEMORY_BUDGET:
                return None
        return cls(rows)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        rows = [self.rows[example_key(e)] for e in examples]
        batch = {
            key: pad_right([r[key] for r in rows], -100 if key == "labels" else 0)
            for key in TEXT_KEYS
            if key in rows[0]
        }
        if "pixel_values" in rows[0]:
            batch["pixel_values"] = torch.cat([r["pixel_values"] for r in rows])
            batch["image_grid_thw"] = torch.cat([r["image_grid_thw"] for r in rows])
        return batch
