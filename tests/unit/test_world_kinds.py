"""The shape world's hard-sample kinds and novel classes: each dial does what it says, and with
every dial at 0 the world draws exactly what the embedded base was pretrained on."""

import numpy as np
import pytest

from dcsft.data.world import (
    CLASSES,
    HABITATS,
    NOVEL_CLASSES,
    SMALL_KINDS,
    SUBSTYLES,
    draw_pool_item,
    draw_sample,
    sample_rng,
    study_classes,
)

STUDY = study_classes(4)


def _border_mean(img) -> np.ndarray:
    """Mean colour of the outermost 4 px ring (objects keep clear of it in these layouts)."""
    a = np.asarray(img, dtype=np.float64)
    ring = np.concatenate(
        [a[:4].reshape(-1, 3), a[-4:].reshape(-1, 3), a[:, :4].reshape(-1, 3), a[:, -4:].reshape(-1, 3)]
    )
    return ring.mean(0)


def test_study_classes_extend_the_base_classes():
    assert study_classes(0) == CLASSES
    assert study_classes(2) == CLASSES + NOVEL_CLASSES[:2]
    assert not set(NOVEL_CLASSES) & set(CLASSES)
    assert set(HABITATS) == set(CLASSES) | set(NOVEL_CLASSES)
    for bad in (-1, len(NOVEL_CLASSES) + 1):
        with pytest.raises(ValueError, match="novel classes must be in"):
            study_classes(bad)


def test_novel_classes_are_balanced_and_marked_in_every_style():
    for style in SUBSTYLES:
        metas = [draw_pool_item(0, "kinds", i, style, classes=STUDY)[1] for i in range(len(STUDY))]
        assert [m["drawn"] for m in metas] == list(STUDY)
        assert [("novel" in m["kinds"]) for m in metas] == [c in NOVEL_CLASSES for c in STUDY]


def test_context_puts_the_class_habitat_behind_photos_only():
    for i in range(24):
        _, photo = draw_pool_item(1, "ctx", i, "photo", context=1.0, classes=STUDY)
        _, adversarial = draw_pool_item(1, "ctx", i, "adversarial", context=1.0, classes=STUDY)
        _, rendition = draw_pool_item(1, "ctx", i, "rendition", context=1.0, classes=STUDY)
        if photo["substyle"] != "lowcontrast":
            assert photo["backdrop"] == photo["drawn"] and "context" in photo["kinds"]
        if adversarial["substyle"] != "lowcontrast":  # the shortcut broken: another class's habitat
            assert adversarial["backdrop"] not in (None, adversarial["drawn"])
            assert "context-swap" in adversarial["kinds"]
        assert rendition["backdrop"] is None and not {"context", "context-swap"} & set(rendition["kinds"])


def test_a_habitat_background_is_near_its_colour_and_a_random_one_is_not():
    near, far = [], []
    for i in range(40):
        image, meta = draw_sample(
            sample_rng(2, "bg", i), "photo", label="star", substyle="blotches", context=1.0
        )
        near.append(np.linalg.norm(_border_mean(image) - HABITATS["star"]))
        image, _ = draw_sample(sample_rng(2, "bg", i), "photo", label="star", substyle="blotches")
        far.append(np.linalg.norm(_border_mean(image) - HABITATS["star"]))
    assert np.median(near) < 40 < np.median(far)


def test_small_share_draws_small_or_low_contrast_photos():
    metas = [draw_pool_item(3, "small", i, "photo", small=1.0, classes=STUDY)[1] for i in range(40)]
    assert {m["substyle"] for m in metas} == set(SMALL_KINDS)
    assert all(m["substyle"] in m["kinds"] for m in metas)
    share = np.mean(
        [draw_pool_item(3, "small", i, "photo", small=0.25)[1]["substyle"] in SMALL_KINDS for i in range(400)]
    )
    assert 0.18 < share < 0.32


def test_dials_at_zero_leave_no_kind_but_noise():
    for i in range(60):
        _, meta = draw_pool_item(4, "plain", i, "photo", label_noise=0.2, ambiguous=0.2)
        assert meta["kinds"] == ([meta["noise"]] if meta["noise"] else [])
        assert meta["backdrop"] is None


def test_a_mislabeled_novel_image_gets_a_study_class():
    labels = {
        draw_pool_item(5, "noise", i, "photo", label_noise=1.0, classes=STUDY)[1]["label"] for i in range(280)
    }
    assert labels == set(STUDY)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(small=1.5), "small must be in"),
        (dict(context=-0.2), "context must be in"),
        (dict(label="bolt"), "unknown label"),  # a novel class needs classes that include it
    ],
)
def test_invalid_dials_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        draw_sample(np.random.default_rng(0), "photo", **kwargs)
