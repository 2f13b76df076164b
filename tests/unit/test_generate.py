"""Token accounting of generation: a response's length stops at its first end-of-turn token."""

import torch

from dcsft.models.generate import generated_lengths


def test_generated_lengths_stop_at_the_first_stop_token():
    pad, eot, other_stop = 0, 9, 8
    rows = torch.tensor(
        [
            [5, 6, eot, pad, pad],
            [5, eot, eot, pad, pad],
            [5, 6, 7, 7, 7],
            [other_stop, pad, pad, pad, pad],
            [eot, 5, 5, 5, 5],
        ]
    )
    assert generated_lengths(rows, {eot, other_stop}) == [3, 2, 5, 1, 1]


def test_generated_lengths_without_stop_ids_count_everything():
    assert generated_lengths(torch.tensor([[1, 2, 3]]), set()) == [3]
