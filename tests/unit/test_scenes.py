"""The embedded grounding world: seeded scenes whose expressions single out the boxed object."""

from collections import Counter

import pytest

from dcsft.data import scenes

N = 60


def draw(style: str, grammar: str, n: int = N, **noise):
    return [
        scenes.draw_scene_item(0, f"test-{style}-{grammar}", i, style, grammar, **noise) for i in range(n)
    ]


def target_colour_class(meta):
    target = next(o for o in meta["objects"] if o["box"] == meta["box"])
    return target["colour"], target["class"]


def test_same_index_same_scene_and_pools_differ():
    a, meta_a = scenes.draw_scene_item(3, "p", 7, "photo", "short")
    b, meta_b = scenes.draw_scene_item(3, "p", 7, "photo", "short")
    c, _ = scenes.draw_scene_item(3, "q", 7, "photo", "short")
    assert a.tobytes() == b.tobytes() and meta_a == meta_b
    assert a.tobytes() != c.tobytes()


@pytest.mark.parametrize(
    "style, grammar", [("photo", "short"), ("photo", "relational"), ("drawing", "indirect")]
)
def test_boxes_lie_in_the_canvas_and_the_target_is_an_object(style, grammar):
    for image, meta in draw(style, grammar):
        assert image.size == (126, 126) and meta["size"] == [126, 126]
        assert 2 <= len(meta["objects"]) <= 4
        assert meta["box"] == meta["objects"][0]["box"]  # no label noise asked for
        for obj in meta["objects"]:
            x1, y1, x2, y2 = obj["box"]
            assert 0 <= x1 < x2 <= 126 and 0 <= y1 < y2 <= 126


def test_short_expressions_name_the_target_uniquely():
    """A class-only or colour+class expression matches no other object."""
    checked = 0
    for _, meta in draw("photo", "short", 120):
        words = meta["expression"].split()
        colour, cls = target_colour_class(meta)
        assert words[0] == "the" and cls in words
        if len(words) == 2:
            assert sum(o["class"] == cls for o in meta["objects"]) == 1
            checked += 1
        elif len(words) == 3 and words[1] == colour:
            assert sum(o["class"] == cls and o["colour"] == colour for o in meta["objects"]) == 1
            checked += 1
    assert checked > 60


def test_grammars_differ_in_length_and_form():
    short = [m["expression"] for _, m in draw("photo", "short")]
    relational = [m["expression"] for _, m in draw("photo", "relational")]
    indirect = [m["expression"] for _, m in draw("drawing", "indirect")]
    mean_words = lambda texts: sum(len(t.split()) for t in texts) / len(texts)  # noqa: E731
    assert mean_words(relational) > mean_words(short) + 2
    assert all(any(rel in t for rel in scenes.RELATIONS) for t in relational)
    assert all("object" in t for t in indirect)


def test_hardness_and_noise_rates():
    metas = [m for _, m in draw("photo", "short", 400, label_noise=0.1, ambiguous=0.1)]
    hardness = Counter(m["hardness"] for m in metas if m["noise"] is None)
    noise = Counter(m["noise"] for m in metas)
    assert 20 <= noise["mislabeled"] <= 60 and 20 <= noise["ambiguous"] <= 60
    for kind in ("tiny", "occluded", "twin"):
        assert hardness[kind] >= 25  # 15% of about 320
    for m in metas:
        if m["noise"] == "mislabeled":
            assert m["box"] != m["objects"][0]["box"] and m["box"] in [o["box"] for o in m["objects"]]
        if m["noise"] == "ambiguous":  # the expression fits the target and its twin
            colour, cls = target_colour_class(m)
            fits = [
                o
                for o in m["objects"]
                if o["class"] == cls and (colour in m["expression"]) <= (o["colour"] == colour)
            ]
            assert len(fits) >= 2
        if m["hardness"] == "occluded":
            assert 0.2 <= m["occlusion"] <= 0.5


def test_unknown_style_or_grammar_is_named():
    with pytest.raises(ValueError, match="unknown scene style"):
        scenes.draw_scene_item(0, "p", 0, "sketch", "short")
    with pytest.raises(ValueError, match="unknown grammar"):
        scenes.draw_scene_item(0, "p", 0, "photo", "long")


def test_hardness_dials_set_the_mix_and_kinds_name_it():
    mix = scenes.hardness_mix(tiny=0.5, occluded=0.0, twin=0.25)
    assert mix == {None: 0.25, "tiny": 0.5, "occluded": 0.0, "twin": 0.25}
    metas = [m for _, m in draw("photo", "short", 200, hardness=mix)]
    counts = Counter(m["hardness"] for m in metas)
    assert counts["occluded"] == 0 and 75 <= counts["tiny"] <= 125 and 30 <= counts["twin"] <= 70
    assert all(m["kinds"] == ([m["hardness"]] if m["hardness"] else []) for m in metas)


@pytest.mark.parametrize("shares", [(0.5, 0.4, 0.2), (-0.1, 0.0, 0.0), (1.5, 0.0, 0.0)])
def test_hardness_shares_outside_their_range_are_refused(shares):
    with pytest.raises(ValueError, match="hardness shares must each be in"):
        scenes.hardness_mix(*shares)
