"""The grounding verifier (box parsing, clipping, IoU) and box rescaling with Qwen's resize rule."""

import math
import random

import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from dcsft.data.resize import fit_image
from dcsft.tasks import grounding


def random_box(rng: random.Random) -> tuple[float, float, float, float]:
    x1, y1 = rng.uniform(-20, 200), rng.uniform(-20, 200)
    return x1, y1, x1 + rng.uniform(0.01, 150), y1 + rng.uniform(0.01, 150)


def test_iou_equals_torchvision_on_1000_random_pairs():
    rng = random.Random(0)
    pairs = [(random_box(rng), random_box(rng)) for _ in range(1000)]
    ours = torch.tensor([grounding.iou(a, b) for a, b in pairs], dtype=torch.float64)
    a = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    b = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    theirs = box_iou(a, b).diagonal()
    assert (ours - theirs).abs().max().item() <= 1e-6
    assert (ours > 0).sum() > 200 and (ours == 0).sum() > 100  # both overlapping and disjoint pairs checked


@pytest.mark.parametrize(
    "text, box",
    [
        ("[10, 20, 30, 40]", (10, 20, 30, 40)),
        ("[10,20,30,40]", (10, 20, 30, 40)),
        ("The box is [ 1.5 , 2.25,30.0, 40. ] here", (1.5, 2.25, 30.0, 40.0)),
        ("[.5, 1, 3, 4]", (0.5, 1, 3, 4)),
        (
            "[30, 20, 10, 40] then [1, 2, 3, 4]",
            (1, 2, 3, 4),
        ),  # x2 < x1 is not well-formed: the next box counts
        ("[1, 2, 3] [5, 6, 7, 8]", (5, 6, 7, 8)),
        ("[-5, 2, 30, 40]", (-5, 2, 30, 40)),
    ],
)
def test_parse_first_well_formed_box(text, box):
    assert grounding.parse_box(text) == box


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no box",
        "[1, 2, 3]",
        "[1, 2, 3, 4, 5]",
        "[3, 2, 1, 4]",
        "[1, 2, 1, 4]",
        "[nan, 2, 3, 4]",
        "[1e999, 2, 3, 4]",
        "(1, 2, 3, 4)",
        None,
        42,
    ],
)
def test_no_well_formed_box_is_unparsable_and_scores_zero(text):
    assert grounding.parse_box(text) is None
    assert grounding.Grounding().parse(text) is None
    assert grounding.score(text, "[1, 2, 3, 4]") == 0.0


def test_prediction_is_clipped_to_the_image_before_scoring():
    # Beyond the right edge: unclipped IoU 50 / 110 fails; clipped to the 100 px image it is exact.
    assert grounding.iou((50, 0, 160, 10), (50, 0, 100, 10)) < 0.5
    assert grounding.score("[50, 0, 160, 10]", "[50, 0, 100, 10]", image_size=(100, 100)) == 1.0
    assert grounding.score("[200, 0, 300, 10]", "[50, 0, 100, 10]", image_size=(100, 100)) == 0.0


def test_threshold_is_iou_one_half_inclusive():
    assert grounding.score("[0, 0, 10, 10]", "[0, 0, 10, 20]") == 1.0  # IoU exactly 0.5
    assert grounding.score("[0, 0, 10, 10]", "[0, 0, 10, 21]") == 0.0


def test_reward_uses_the_size_column_and_chat_completions():
    completions = [[{"role": "assistant", "content": "[50, 0, 160, 10]"}], "nothing"]
    task = grounding.Grounding()
    assert task.reward(completions, solution=["[50, 0, 100, 10]"] * 2, size=[[100, 100], [100, 100]]) == [
        1.0,
        0.0,
    ]
    assert task.reward(completions, solution=["[50, 0, 100, 10]"] * 2) == [0.0, 0.0]


@pytest.mark.parametrize(
    "box, problem",
    [
        ([1, 2, 3], "4 numbers"),
        ("1,2,3,4", "4 numbers"),
        ([1, 2, 3, float("nan")], "finite"),
        ([5, 2, 3, 4], "zero or negative area"),
        ([1, 2, 1, 4], "zero or negative area"),
        ([-1, 2, 3, 4], "outside"),
        ([1, 2, 101, 4], "outside"),
        ([1, 2, True, 4], "finite"),
    ],
)
def test_bad_data_boxes_are_named(box, problem):
    assert problem in grounding.box_problem(box, (100, 100))


def test_format_box_round_trips_through_parse():
    assert grounding.parse_box(grounding.format_box((10.4, 20.6, 30.5, 40.49))) == (10, 21, 30, 40)


@pytest.mark.parametrize("size", [(168, 168), (640, 480), (1200, 1600), (333, 999), (3000, 2000)])
def test_box_follows_the_resize_and_maps_back(size):
    """A box labelled on the original keeps covering the same content in the model's frame, and
    the inverse factors bring it back exactly."""
    image = Image.new("RGB", size)
    fitted, factors = fit_image(image, 3136, 802_816 if max(size) > 300 else 7056)
    box = (0.1 * size[0], 0.2 * size[1], 0.7 * size[0], 0.9 * size[1])
    scaled = grounding.scale_box(box, factors)
    assert scaled[2] <= fitted.size[0] + 1e-9 and scaled[3] <= fitted.size[1] + 1e-9
    assert math.isclose(scaled[0] / fitted.size[0], 0.1) and math.isclose(scaled[3] / fitted.size[1], 0.9)
    back = grounding.scale_box(scaled, (1 / factors[0], 1 / factors[1]))
    assert all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(back, box))


def test_scoring_in_the_original_frame_maps_the_prediction_back():
    """A 168 px scene seen at 84 px (factor 1/2): a prediction one model pixel off is two original
    pixels off, and both frames agree on correctness when the box is right."""
    record = {
        "solution": "[10, 10, 30, 30]",
        "meta": {
            "size": [84, 84],
            "scale": [0.5, 0.5],
            "orig_size": [168, 168],
            "orig_box": [20, 20, 60, 60],
        },
    }
    assert grounding.score_record("[11, 11, 31, 31]", record) == 1.0
    assert grounding.score_record("[11, 11, 31, 31]", record, frame="original") == 1.0
    assert grounding.score_record("[20, 20, 40, 40]", record, frame="original") == 0.0
    assert (
        grounding.score_record("[70, 70, 100, 100]", record, frame="original") == 0.0
    )  # clipped to the image
    assert grounding.score_record("nothing", record, frame="original") == 0.0


def test_bad_boxes_in_data_are_skipped_naming_the_record(tmp_path):
    import json

    from dcsft.data.records import load_records

    Image.new("RGB", (84, 84)).save(tmp_path / "a.png")
    good = {"problem": grounding.prompt("the star"), "image": "a.png", "meta": {"size": [84, 84]}}
    solutions = [
        "[10, 10, 30, 30]",
        "[30, 10, 10, 30]",
        "[10, 10, 10, 30]",
        "[-5, 10, 30, 30]",
        "[10, 10, 90, 30]",
        "[10, 10, 30]",
        "[nan, 1, 2, 3]",
        "star",
    ]
    (tmp_path / "g.json").write_text(json.dumps([{**good, "solution": s} for s in solutions]))
    loaded = load_records(tmp_path / "g.json", check=grounding.record_problem)
    assert [r["solution"] for r in loaded.records] == ["[10, 10, 30, 30]"]
    reasons = [skip.line() for skip in loaded.skipped]
    assert len(reasons) == 7 and all(line.startswith(f"{tmp_path / 'g.json'}: record ") for line in reasons)
    assert "zero or negative area" in reasons[0] and "zero or negative area" in reasons[1]
    assert "outside the 84x84 image" in reasons[2] and "outside" in reasons[3]
    assert all("is not a box" in line for line in reasons[4:])
