"""The embedded classification world: determinism, balance, noise model, validation, visibility."""

import numpy as np
import pytest

from dcsft.data.world import (
    CLASSES,
    COLOURS,
    STYLES,
    SUBSTYLES,
    caption,
    draw_pool_item,
    draw_sample,
    sample_rng,
)


def _bytes(img) -> bytes:
    return img.tobytes()


def test_constants():
    assert CLASSES == (
        "circle",
        "square",
        "triangle",
        "star",
        "cross",
        "heart",
        "diamond",
        "arrow",
        "moon",
        "house",
    )
    assert STYLES == ("photo", "rendition", "adversarial")
    assert set(SUBSTYLES) == set(STYLES)
    assert len(COLOURS) == 12 and all(" " not in name for name in COLOURS)


@pytest.mark.parametrize("style", STYLES)
def test_pool_items_are_deterministic(style):
    for index in range(5):
        a, meta_a = draw_pool_item(3, "train", index, style, label_noise=0.2, ambiguous=0.2)
        b, meta_b = draw_pool_item(3, "train", index, style, label_noise=0.2, ambiguous=0.2)
        assert _bytes(a) == _bytes(b)
        assert meta_a == meta_b


def test_pool_name_hash_is_stable_across_processes():
    # Pinned values: a salted hash() of the pool name would change them in every new process.
    assert sample_rng(0, "train", 0).integers(1 << 30) == 714871145
    assert sample_rng(7, "eval-r", 3).integers(1 << 30) == 871721155


def test_pools_seeds_and_indices_give_different_images():
    base = _bytes(draw_pool_item(0, "train", 4, "photo")[0])
    assert base != _bytes(draw_pool_item(0, "eval", 4, "photo")[0])
    assert base != _bytes(draw_pool_item(1, "train", 4, "photo")[0])
    assert base != _bytes(draw_pool_item(0, "train", 14, "photo")[0])  # same class, next round


def test_pool_labels_are_balanced():
    labels = [draw_pool_item(0, "train", i, "rendition")[1]["label"] for i in range(30)]
    assert labels == list(CLASSES) * 3


@pytest.mark.parametrize("size", [84, 48])
def test_image_size_and_mode(size):
    for style in STYLES:
        img, _ = draw_sample(np.random.default_rng(0), style, size=size)
        assert img.size == (size, size)
        assert img.mode == "RGB"


@pytest.mark.parametrize("style", STYLES)
def test_every_class_and_substyle_draws_a_visible_object(style):
    rng = np.random.default_rng(11)
    for substyle in SUBSTYLES[style]:
        for cls in CLASSES:
            img, meta = draw_sample(rng, style, label=cls, substyle=substyle)
            assert meta["label"] == meta["drawn"] == cls
            assert (meta["style"], meta["substyle"], meta["noise"]) == (style, substyle, None)
            assert meta["colour"] in COLOURS
            # An object on a plain or textured background: far from a uniform image.
            assert np.asarray(img, dtype=np.float32).std() > 8, (substyle, cls)


def test_photo_object_stands_out_from_background():
    # Photo backgrounds are chosen far from the object colour (which covers > 5% of the image), so some
    # channel spans a wide range between the object and the background.
    for i in range(30):
        img, _ = draw_pool_item(5, "vis", i, "photo")
        rgb = np.asarray(img, dtype=np.float32).reshape(-1, 3)
        spread = np.percentile(rgb, 97, axis=0) - np.percentile(rgb, 3, axis=0)
        assert spread.max() > 50, i


def test_random_substyle_is_recorded():
    seen = {draw_sample(np.random.default_rng(i), "adversarial")[1]["substyle"] for i in range(60)}
    assert seen == set(SUBSTYLES["adversarial"])


def test_label_noise_one_always_mislabels_and_zero_never():
    rng = np.random.default_rng(1)
    for _ in range(40):
        _, meta = draw_sample(rng, "photo", label_noise=1.0)
        assert meta["noise"] == "mislabeled"
        assert meta["label"] in CLASSES and meta["label"] != meta["drawn"]
    for _ in range(40):
        _, meta = draw_sample(rng, "adversarial", label_noise=0.0)
        assert meta["noise"] is None and meta["label"] == meta["drawn"]


def test_mislabeling_leaves_the_image_unchanged():
    for seed in range(5):
        clean, _ = draw_sample(np.random.default_rng(seed), "rendition", label="star")
        noisy, meta = draw_sample(np.random.default_rng(seed), "rendition", label="star", label_noise=1.0)
        assert meta["drawn"] == "star" and meta["label"] != "star"
        assert _bytes(clean) == _bytes(noisy)


def test_ambiguous_rate_and_kinds():
    metas = [draw_pool_item(2, "amb", i, "photo", ambiguous=0.25)[1] for i in range(400)]
    ambiguous = [m for m in metas if m["noise"] == "ambiguous"]
    assert 0.17 < len(ambiguous) / len(metas) < 0.33
    assert all(m["label"] == m["drawn"] for m in metas)
    kinds = {m["ambiguity"] for m in ambiguous}
    assert kinds == {"occluder", "pair"}
    for m in ambiguous:
        if m["ambiguity"] == "pair":
            assert m["other"] in CLASSES and m["other"] != m["drawn"]
        else:
            assert 0.58 <= m["occlusion"] <= 0.82


def test_occluded_substyle_hides_a_quarter_to_half():
    rng = np.random.default_rng(4)
    for cls in CLASSES * 2:
        _, meta = draw_sample(rng, "adversarial", label=cls, substyle="occluded")
        assert 0.23 <= meta["occlusion"] <= 0.47, meta


def test_distractor_is_another_class():
    rng = np.random.default_rng(6)
    for cls in CLASSES:
        _, meta = draw_sample(rng, "adversarial", label=cls, substyle="distractor")
        assert meta["distractor"] in CLASSES and meta["distractor"] != cls


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(style="painting"), "photo, rendition, adversarial"),
        (dict(style="photo", substyle="sketch"), "blotches, stripes"),
        (dict(style="photo", label="dog"), "circle"),
        (dict(style="photo", label_noise=1.5), "label_noise"),
        (dict(style="photo", ambiguous=-0.1), "ambiguous"),
        (dict(style="photo", label_noise=0.6, ambiguous=0.6), "at most 1"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        draw_sample(np.random.default_rng(0), **kwargs)


def test_caption_names_class_and_colour():
    rng = np.random.default_rng(9)
    for style in STYLES:
        for substyle in SUBSTYLES[style]:
            for cls in CLASSES:
                _, meta = draw_sample(rng, style, label=cls, substyle=substyle, label_noise=0.5)
                text = caption(meta)
                assert meta["drawn"] in text
                if substyle != "sketch":  # pencil sketches show no colour
                    assert meta["colour"] in text
                assert " a a" not in f" {text}" and " a o" not in f" {text}" and " a e" not in f" {text}"


def test_caption_examples():
    assert (
        caption(dict(drawn="star", colour="red", style="photo", substyle="stripes"))
        == "a red star in a photo"
    )
    assert caption(dict(drawn="heart", colour="blue", style="rendition", substyle="outline")) == (
        "a blue heart drawn as an outline"
    )
    assert (
        caption(dict(drawn="house", colour="black", style="rendition", substyle="sketch"))
        == "a sketch of a house"
    )
    assert caption(dict(drawn="moon", colour="green", style="rendition", substyle="cartoon")) == (
        "a cartoon of a green moon"
    )
    assert caption(dict(drawn="arrow", colour="orange", style="adversarial", substyle="clutter")) == (
        "an orange arrow in clutter"
    )


def test_sample_rng_streams_are_independent():
    a = sample_rng(0, "train", 0).random(4)
    assert np.array_equal(a, sample_rng(0, "train", 0).random(4))
    for other in (sample_rng(0, "train", 1), sample_rng(0, "eval", 0), sample_rng(1, "train", 0)):
        assert not np.array_equal(a, other.random(4))
