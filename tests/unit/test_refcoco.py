"""RefCOCO loaders: the classic refer layout (refs pickle + instances.json + COCO images) and
Hugging Face parquet exports give the same grounding records for the same data; every bad
ref is a counted Skip with its reason; unreadable files are one-line DataErrors; parquet image
bytes are cached once and reused."""

import io
import json
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dcsft.data import refcoco, refcoco_parquet
from dcsft.data.refcoco import load_refcoco_classic
from dcsft.data.refcoco_parquet import load_refcoco_parquet
from dcsft.errors import DataError
from dcsft.tasks import grounding

SIZES = {1: (64, 48), 2: (50, 40)}  # image id -> (width, height); 3 is corrupt, 4 is missing
CORRUPT = b"this is not an image"
NAN = float("nan")

# (ref_id, split, image_id, ann_id, category_id, bbox xywh, sentences)
GOOD = [
    (10, "train", 1, 100, 1, [4, 6, 20, 10], ["man on left", "left guy"]),
    (11, "val", 1, 101, 18, [30.5, 8.25, 33.0, 39.75], ["the dog"]),
    (12, "testA", 2, 102, 1, [30, 20, 20.6, 20.5], ["right box"]),  # 0.6 / 0.5 px over: clipped
    (13, "train", 2, 103, 3, [10, 10, 15, 15], ["top", "", "middle  thing "]),
]
BAD = [  # (ref, why it is skipped)
    ((20, "train", 1, 104, 1, [5, 5, 0, 10], ["zero width"]), "zero or negative width"),
    ((21, "train", 1, 105, 1, [5, 5, 10, -3], ["negative height"]), "zero or negative width"),
    ((22, "train", 1, 106, 1, [NAN, 5, 10, 10], ["nan"]), "not a finite number"),
    ((23, "train", 1, 107, 1, [1, 2, 3, 4, 5], ["five numbers"]), "must be 4 numbers"),
    ((24, "train", 1, 108, 1, [50, 10, 19, 10], ["far out"]), "more than 1 px outside the 64x48 image"),
    ((26, "train", 3, 109, 1, [1, 1, 5, 5], ["corrupt image"]), "cannot be decoded"),
    ((27, "train", 4, 110, 1, [1, 1, 5, 5], ["missing image"]), "not found"),
]
NOT_IN_INSTANCES = (25, "train", 1, 999, 1, None, ["dangling"])
EXPECTED_TRAIN_IDS = ["refcoco-train-10-0", "refcoco-train-10-1", "refcoco-train-13-0", "refcoco-train-13-2"]


def _file_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def _jpeg(size, colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _image_bytes(image_id: int) -> bytes | None:
    if image_id in SIZES:
        return _jpeg(SIZES[image_id], colour=(40 * image_id, 90, 120))
    return CORRUPT if image_id == 3 else None


@pytest.fixture(scope="module")
def classic(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("classic")
    images = root / "train2014"
    images.mkdir()
    for image_id in (1, 2, 3):
        (images / _file_name(image_id)).write_bytes(_image_bytes(image_id))
    refs = [
        {
            "ref_id": r,
            "split": s,
            "image_id": i,
            "ann_id": a,
            "category_id": c,
            "file_name": _file_name(i).replace(".jpg", f"_{a}.jpg"),
            "sentences": [{"sent": t, "raw": t.upper(), "tokens": t.split()} for t in sents],
        }
        for r, s, i, a, c, _, sents in GOOD + [ref for ref, _ in BAD] + [NOT_IN_INSTANCES]
    ]
    anns = [
        {"id": a, "image_id": i, "category_id": c, "bbox": box, "area": 1.0, "iscrowd": 0}
        for r, s, i, a, c, box, _ in GOOD + [ref for ref, _ in BAD]
    ]
    coco_images = [
        {"id": i, "file_name": _file_name(i), "width": 64 if i != 2 else 50, "height": 48 if i != 2 else 40}
        for i in (1, 2, 3, 4)
    ]
    refs_path, instances = root / "refs(unc).p", root / "instances.json"
    refs_path.write_bytes(pickle.dumps(refs))
    instances.write_text(json.dumps({"images": coco_images, "annotations": anns, "categories": []}))
    return {"refs": refs_path, "instances": instances, "images": images}


def _load_classic(classic, split, **kwargs):
    return load_refcoco_classic(classic["refs"], classic["instances"], classic["images"], split, **kwargs)


def _jxu_table() -> pa.Table:
    """The same refs as a jxu124-style parquet with HF image structs (bytes + path)."""
    sentence = pa.struct([("raw", pa.string()), ("sent", pa.string())])
    schema = pa.schema(
        [
            ("ref_id", pa.int64()),
            ("ann_id", pa.int64()),
            ("image_id", pa.int64()),
            ("category_id", pa.int64()),
            ("split", pa.string()),
            ("file_name", pa.string()),
            ("sentences", pa.list_(sentence)),
            ("bbox", pa.list_(pa.float64())),
            ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ]
    )
    rows = [
        {
            "ref_id": r,
            "ann_id": a,
            "image_id": i,
            "category_id": c,
            "split": s,
            "file_name": _file_name(i),
            "bbox": box,
            "sentences": [{"sent": t, "raw": t.upper()} for t in sents],
            "image": {"bytes": _image_bytes(i), "path": _file_name(i)},
        }
        for r, s, i, a, c, box, sents in GOOD + [ref for ref, _ in BAD]
    ]
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture(scope="module")
def jxu_parquet(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hf") / "refcoco.parquet"
    pq.write_table(_jxu_table(), path)
    return path


def _without_image(records):
    return [{k: v for k, v in r.items() if k != "image"} for r in records]


# ---------------------------------------------------------------- classic layout


def test_classic_records_boxes_ids_and_expressions(classic):
    loaded = _load_classic(classic, "train")
    assert [r["id"] for r in loaded.records] == EXPECTED_TRAIN_IDS
    by_id = {r["id"]: r for r in loaded.records}
    first = by_id["refcoco-train-10-1"]
    assert first["problem"] == grounding.prompt("left guy")
    assert first["solution"] == "[4, 6, 24, 16]"
    assert first["meta"] == {
        "expression": "left guy",
        "box": [4.0, 6.0, 24.0, 16.0],
        "size": [64, 48],
        "ref_id": 10,
        "ann_id": 100,
        "image_id": 1,
        "category_id": 1,
        "split": "train",
    }
    image = Path(first["image"])
    assert image.is_absolute() and image == (classic["images"] / _file_name(1)).absolute()
    # the empty sentence 1 of ref 13 is dropped, its neighbours keep their own indices
    assert by_id["refcoco-train-13-2"]["meta"]["expression"] == "middle thing"
    assert by_id["refcoco-train-13-2"]["meta"]["box"] == [10.0, 10.0, 25.0, 25.0]
    assert by_id["refcoco-train-13-0"]["meta"]["size"] == [50, 40]
    for record in loaded.records:  # the answer is a box the verifier reads back as the truth
        assert grounding.score(record["solution"], record["solution"], tuple(record["meta"]["size"])) == 1.0


def test_classic_fractional_box_and_clipping_within_one_pixel(classic):
    (val,) = _load_classic(classic, "val").records
    assert val["meta"]["box"] == [30.5, 8.25, 63.5, 48.0]
    assert val["solution"] == grounding.format_box([30.5, 8.25, 63.5, 48.0])
    (clipped,) = _load_classic(classic, "testA").records
    assert clipped["meta"]["box"] == [30.0, 20.0, 50.0, 40.0]  # 50.6 x 40.5 in a 50x40 image
    assert grounding.box_problem(clipped["meta"]["box"], (50, 40)) is None


def test_classic_split_filter(classic):
    assert {r["meta"]["split"] for r in _load_classic(classic, "val").records} == {"val"}
    assert _load_classic(classic, "testB").records == []
    assert _load_classic(classic, "testB").skipped == []  # other splits are left out, not skipped
    everything = _load_classic(classic, None)
    assert {r["meta"]["split"] for r in everything.records} == {"train", "val", "testA"}
    assert len(everything.records) == 6


def test_classic_skips_every_bad_case_with_its_reason(classic):
    skipped = _load_classic(classic, "train").skipped
    reasons = {s.record_id: s.reason for s in skipped}
    assert len(skipped) == len(BAD) + 2  # + dangling ann_id + the empty sentence
    for (ref, *_), why in BAD:
        assert why in reasons[f"ref_id {ref}"], reasons[f"ref_id {ref}"]
    assert "ann_id 999 is not in instances.json" in reasons["ref_id 25"]
    assert "empty" in reasons["refcoco-train-13-1"]
    refs_index = {ref[0]: i for i, ref in enumerate(GOOD + [ref for ref, _ in BAD] + [NOT_IN_INSTANCES])}
    for skip in skipped:
        assert skip.file == str(classic["refs"])
        ref_id = int(skip.record_id.split()[-1]) if skip.record_id.startswith("ref_id") else 13
        assert skip.index == refs_index[ref_id]
        assert skip.line().startswith(f"{classic['refs']}: record {skip.index}")


def test_classic_one_sentence_per_ref(classic):
    loaded = _load_classic(classic, "train", one_sentence_per_ref=True)
    assert [r["id"] for r in loaded.records] == ["refcoco-train-10-0", "refcoco-train-13-0"]


def test_classic_size_mismatch_and_file_name_fallback(tmp_path, classic):
    refs = [
        {
            "ref_id": 1,
            "split": "val",
            "image_id": 1,
            "ann_id": 100,
            "category_id": 1,
            "sentences": [{"sent": "a"}],
        },
        {
            "ref_id": 2,
            "split": "val",
            "image_id": 2,
            "ann_id": 103,
            "category_id": 3,
            "file_name": "COCO_train2014_000000000002_103.jpg",
            "sentences": [{"raw": "only raw"}],
        },
    ]
    instances = {
        "images": [{"id": 1, "file_name": _file_name(1), "width": 640, "height": 480}],
        "annotations": [
            {"id": 100, "image_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 103, "image_id": 2, "bbox": [1, 1, 5, 5]},
        ],
    }
    (tmp_path / "refs.p").write_bytes(pickle.dumps(refs))
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    loaded = load_refcoco_classic(tmp_path / "refs.p", tmp_path / "instances.json", classic["images"], "val")
    assert "640x480" in loaded.skipped[0].reason and "64x48" in loaded.skipped[0].reason
    (record,) = loaded.records  # image 2 is not in instances.json: found by the ref's file_name
    assert record["image"] == str((classic["images"] / _file_name(2)).absolute())
    assert record["meta"]["expression"] == "only raw" and record["meta"]["size"] == [50, 40]


def test_malformed_refs_are_skipped_not_crashed_on(tmp_path, classic):
    refs = [
        "not a dict",
        {"ref_id": 1, "split": "val", "image_id": 1, "ann_id": [100], "sentences": ["x"]},
        {"ref_id": 2, "split": "val", "image_id": 1, "ann_id": 100},
        {"ref_id": 3, "split": "val", "image_id": 1, "ann_id": 100, "sentences": []},
        {"ref_id": 4, "split": "val", "image_id": 2, "ann_id": 100, "sentences": ["x"]},
    ]
    (tmp_path / "refs.p").write_bytes(pickle.dumps(refs))
    loaded = load_refcoco_classic(tmp_path / "refs.p", classic["instances"], classic["images"], "val")
    assert loaded.records == []
    assert [s.reason for s in loaded.skipped] == [
        "expected a ref dict, found str",
        "ann_id [100] is not in instances.json",
        "ref lacks sentences",
        "ref has no sentences",
        "ann_id 100 belongs to image 1, the ref says 2",
    ]


def test_python2_refs_pickle_with_utf8_text(tmp_path):
    # protocol 0 as Python 2 wrote it: str values are bytes (here UTF-8 "café")
    path = tmp_path / "refs.p"
    path.write_bytes(b"(lp0\n(dp1\nS'ref_id'\np2\nI7\nsS'sent'\np3\nS'caf\\xc3\\xa9'\np4\nsa.")
    assert refcoco.read_refs(path) == [{"ref_id": 7, "sent": "café"}]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        (b"this is not a pickle", "not a readable refs pickle"),
        (pickle.dumps({"ref_id": 1}), "expected a pickled list of refs, found dict"),
        (pickle.dumps([Path("x")]), "only plain data"),  # a class reference: refused, never run
    ],
)
def test_unreadable_refs_file_is_one_line_data_error(tmp_path, classic, content, message):
    path = tmp_path / "refs(unc).p"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_refcoco_classic(path, classic["instances"], classic["images"], "train")
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        ("{not json", "not valid JSON"),
        (json.dumps({"images": []}), "'annotations'"),
    ],
)
def test_unreadable_instances_file_is_one_line_data_error(tmp_path, classic, content, message):
    path = tmp_path / "instances.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as err:
        load_refcoco_classic(classic["refs"], path, classic["images"], "train")
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- parquet layout


def test_parquet_gives_the_classic_records(classic, jxu_parquet, tmp_path):
    for split in (None, "train", "val", "testA"):
        from_parquet = load_refcoco_parquet([jxu_parquet], tmp_path / "cache", split)
        from_classic = _load_classic(classic, split)
        assert _without_image(from_parquet.records) == _without_image(from_classic.records)
        # the same skips, but for the dangling ann_id, which only the classic layout can have
        assert len(from_parquet.skipped) == len(from_classic.skipped) - (split in (None, "train"))
    for record in from_parquet.records:
        image = Path(record["image"])
        assert image.parent == (tmp_path / "cache").absolute()
        with Image.open(image) as im:
            assert list(im.size) == record["meta"]["size"]


def test_parquet_skips_every_bad_case_with_its_reason(jxu_parquet, tmp_path):
    loaded = load_refcoco_parquet([jxu_parquet], tmp_path / "cache", "train")
    assert [r["id"] for r in loaded.records] == EXPECTED_TRAIN_IDS
    reasons = {s.record_id: s.reason for s in loaded.skipped}
    assert len(loaded.skipped) == len(BAD) + 1
    for (ref, *_), why in BAD:
        assert why in reasons[f"ref_id {ref}"], reasons[f"ref_id {ref}"]
    assert all(s.file == str(jxu_parquet) for s in loaded.skipped)
    assert {s.index for s in loaded.skipped if s.record_id == "ref_id 22"} == {6}  # the row number
    assert len(list((tmp_path / "cache").iterdir())) == 2  # undecodable bytes are never cached


def test_parquet_image_cache_is_written_once_and_reused(jxu_parquet, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_refcoco_parquet([jxu_parquet], cache, None)
    files = sorted(cache.iterdir())
    assert len(files) == 2 and not [f for f in files if f.name.startswith(".")]  # no temp files left
    assert len({r["image"] for r in first.records}) == 2  # refs on one image share one file
    stats = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}

    replaced = []
    monkeypatch.setattr(refcoco_parquet.os, "replace", lambda *a: replaced.append(a))
    second = load_refcoco_parquet([jxu_parquet], cache, None)
    assert replaced == []
    assert [r["image"] for r in second.records] == [r["image"] for r in first.records]
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in sorted(cache.iterdir())} == stats


def test_parquet_lmms_lab_layout_split_from_file_name(tmp_path):
    # lmms-lab/RefCOCO: question_id, answer (list of str), float32 bbox, no split column
    schema = pa.schema(
        [
            ("question_id", pa.string()),
            ("question", pa.string()),
            ("answer", pa.list_(pa.string())),
            ("bbox", pa.list_(pa.float32())),
            ("segmentation", pa.list_(pa.float32())),
            ("file_name", pa.string()),
            ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ]
    )
    rows = [
        {
            "question_id": "q1",
            "question": "caption it",
            "answer": ["red one", " the  red one"],
            "bbox": [4.13, 6.27, 20.11, 10.05],
            "segmentation": [],
            "file_name": _file_name(1),
            "image": {"bytes": _image_bytes(1), "path": None},
        }
    ]
    path = tmp_path / "val-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    loaded = load_refcoco_parquet([path], tmp_path / "cache", "val")
    assert loaded.skipped == []
    assert [r["id"] for r in loaded.records] == ["refcoco-val-q1-0", "refcoco-val-q1-1"]
    meta = loaded.records[1]["meta"]
    # float32 columns give COCO's two-decimal numbers back
    assert meta["box"] == [4.13, 6.27, 24.24, 16.32]
    assert meta["expression"] == "the red one"
    assert (meta["ref_id"], meta["ann_id"], meta["image_id"], meta["category_id"]) == ("q1", None, 1, None)
    assert load_refcoco_parquet([path], tmp_path / "cache", "testA").records == []


def test_parquet_path_only_images_and_plain_sentence_lists(classic, tmp_path):
    # jxu124 without bytes: an image_path column relative to an image root, sentences as strings
    rows = [
        {
            "ref_id": 5,
            "split": "val",
            "sentences": ["a thing"],
            "bbox": [1.0, 2.0, 3.0, 4.0],
            "image_path": _file_name(2),
        },
        {
            "ref_id": 6,
            "split": "val",
            "sentences": ["gone"],
            "bbox": [1.0, 2.0, 3.0, 4.0],
            "image_path": _file_name(4),
        },
    ]
    path = tmp_path / "refcoco_val.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    loaded = load_refcoco_parquet([path], tmp_path / "cache", "val", image_root=classic["images"])
    (record,) = loaded.records
    assert record["image"] == str((classic["images"] / _file_name(2)).absolute())
    assert record["meta"]["box"] == [1.0, 2.0, 4.0, 6.0] and record["meta"]["size"] == [50, 40]
    assert "image not found" in loaded.skipped[0].reason and loaded.skipped[0].record_id == "ref_id 6"
    assert not (tmp_path / "cache").exists()  # nothing to cache


def test_parquet_missing_column_names_file_and_columns(tmp_path):
    path = tmp_path / "val-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist([{"bbox": [1.0, 2.0, 3.0, 4.0], "answer": ["x"]}]), path)
    with pytest.raises(DataError) as err:
        load_refcoco_parquet([path], tmp_path / "cache", None)
    message = str(err.value)
    assert str(path) in message and "an image" in message and "columns found: bbox, answer" in message
    assert "\n" not in message


def test_parquet_split_asked_from_a_file_that_does_not_say_it(tmp_path):
    path = tmp_path / "refcoco.parquet"
    rows = [
        {
            "ref_id": 1,
            "answer": ["x"],
            "bbox": [1.0, 2.0, 3.0, 4.0],
            "image": {"bytes": _image_bytes(1), "path": None},
        }
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DataError, match="split=None"):
        load_refcoco_parquet([path], tmp_path / "cache", "val")
    (record,) = load_refcoco_parquet([path], tmp_path / "cache", None).records
    assert record["id"] == "refcoco-unknown-1-0"


@pytest.mark.parametrize(
    "content, message", [(None, "file not found"), (b"PAR1 but not really", "not a readable parquet file")]
)
def test_unreadable_parquet_is_one_line_data_error(tmp_path, content, message):
    path = tmp_path / "val-00000-of-00001.parquet"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_refcoco_parquet([path], tmp_path / "cache", None)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_box_rounding_to_zero_pixels_is_skipped(tmp_path):
    rows = [
        {
            "ref_id": 1,
            "split": "val",
            "answer": ["sliver"],
            "bbox": [10.1, 5.0, 0.3, 10.0],
            "image": {"bytes": _image_bytes(1), "path": None},
        }
    ]
    path = tmp_path / "refcoco.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    loaded = load_refcoco_parquet([path], tmp_path / "cache", "val")
    assert loaded.records == [] and "whole pixels" in loaded.skipped[0].reason
