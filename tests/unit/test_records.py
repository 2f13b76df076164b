"""Records in the authors' formats: good records kept with absolute image paths, bad ones
skipped with a reason naming the record, unusable files a one-line DataError."""

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from dcsft.data.records import Skip, from_sft, load_records, read_json_list, to_sft
from dcsft.errors import DataError

CLASSES = ["star", "circle", "moon"]


def _png_bytes(size=(8, 8), colour=(200, 20, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(_png_bytes())
    (images / "b.png").write_bytes(_png_bytes(colour=(0, 0, 255)))
    (images / "empty.png").write_bytes(b"")
    (images / "corrupt.png").write_bytes(b"this is not an image at all")
    (images / "truncated.png").write_bytes(_png_bytes(size=(64, 64))[:60])
    return tmp_path


def _write(path: Path, records) -> Path:
    path.write_text(json.dumps(records))
    return path


def _record(image="images/a.png", solution="star", **extra) -> dict:
    return {
        "problem": "Please provide the object name in the image.",
        "solution": solution,
        "image": image,
        **extra,
    }


def test_good_records_get_absolute_paths(data_dir):
    absolute = str(data_dir / "images" / "b.png")
    path = _write(
        data_dir / "train.json",
        [_record(), _record(image=absolute, solution="Moon", id="x7", meta={"noise": None})],
    )
    loaded = load_records(path, CLASSES)
    assert loaded.skipped == []
    assert len(loaded.records) == 2
    first, second = loaded.records
    assert Path(first["image"]).is_absolute()
    assert Path(first["image"]) == data_dir / "images" / "a.png"
    assert Path(first["image"]).exists()
    assert second["image"] == absolute
    # ids: kept when given, else derived from the file name and index.
    assert first["id"] == "train-0"
    assert second["id"] == "x7"
    # Other fields pass through untouched.
    assert second["solution"] == "Moon" and second["meta"] == {"noise": None}
    assert first["problem"] == _record()["problem"]


def test_relative_paths_resolve_against_the_json_folder_not_the_cwd(data_dir, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    sub = data_dir / "records"
    sub.mkdir()
    path = _write(sub / "test.json", [_record(image="../images/a.png")])
    loaded = load_records(path)
    assert loaded.skipped == []
    assert Path(loaded.records[0]["image"]).resolve() == (data_dir / "images" / "a.png").resolve()
    assert Path(loaded.records[0]["image"]).is_absolute()


def test_without_classes_any_label_is_kept(data_dir):
    path = _write(data_dir / "r.json", [_record(solution="goose")])
    assert len(load_records(path).records) == 1


@pytest.mark.parametrize(
    "bad, reason_words",
    [
        (_record(image="images/missing.png"), ["not found", "missing.png"]),
        (_record(image="images/empty.png"), ["cannot be decoded", "empty.png"]),
        (_record(image="images/corrupt.png"), ["cannot be decoded", "corrupt.png"]),
        (_record(image="images/truncated.png"), ["cannot be decoded", "truncated.png"]),
        ({"problem": "p", "image": "images/a.png"}, ["missing", "solution"]),
        ({"solution": "star"}, ["missing", "problem", "image"]),
        (_record(solution=3), ["solution", "text"]),
        (_record(image=["images/a.png"]), ["image", "text"]),
        (_record(solution="goose"), ["goose", "3 classes"]),
        (["problem", "star", "images/a.png"], ["list"]),
        ("just a string", ["str"]),
        (None, ["NoneType"]),
    ],
)
def test_bad_records_are_skipped_with_a_reason(data_dir, bad, reason_words):
    path = _write(data_dir / "train.json", [_record(), bad, _record(solution="circle")])
    loaded = load_records(path, CLASSES)
    assert [r["solution"] for r in loaded.records] == ["star", "circle"]
    assert [r["id"] for r in loaded.records] == ["train-0", "train-2"]  # indices are the file's
    assert len(loaded.skipped) == 1
    skip = loaded.skipped[0]
    assert skip.index == 1
    assert skip.file == str(path)
    for word in reason_words:
        assert word in skip.reason
    line = skip.line()
    assert "train.json" in line and "record 1" in line and "\n" not in line


def test_header_only_check_skips_unopenable_images_but_does_not_decode(data_dir):
    """Stages after prepare read records with decode=False: missing and non-image files are
    still skipped, an image whose pixel data is cut off (only a full decode finds it) is not."""
    names = ["a.png", "missing.png", "corrupt.png", "truncated.png"]
    path = _write(data_dir / "train.json", [_record(image=f"images/{n}") for n in names])
    kept = [Path(r["image"]).name for r in load_records(path, CLASSES, decode=False).records]
    assert kept == ["a.png", "truncated.png"]
    assert [Path(r["image"]).name for r in load_records(path, CLASSES).records] == ["a.png"]


def test_label_check_is_case_and_space_insensitive(data_dir):
    path = _write(data_dir / "r.json", [_record(solution=" STAR "), _record(solution="Circle")])
    loaded = load_records(path, ["Star", "circle"])
    assert loaded.skipped == [] and len(loaded.records) == 2


def test_every_bad_record_is_counted(data_dir):
    records = [
        _record(image="images/missing.png"),
        _record(),
        7,
        _record(solution="goose"),
        _record(image="images/corrupt.png"),
    ]
    loaded = load_records(_write(data_dir / "mix.json", records), CLASSES)
    assert [s.index for s in loaded.skipped] == [0, 2, 3, 4]
    assert len(loaded.records) == 1


def test_skip_line():
    skip = Skip("/data/train.json", 4, "img-9", "image not found: x.png")
    assert skip.line() == "/data/train.json: record 4 (img-9): image not found: x.png"
    assert Skip("train.json", 0, None, "why").line() == "train.json: record 0: why"


def test_skip_carries_record_id(data_dir):
    path = _write(data_dir / "r.json", [_record(image="images/missing.png", id="sample-42")])
    skip = load_records(path).skipped[0]
    assert skip.record_id == "sample-42"
    assert "(sample-42)" in skip.line() and "record 0" in skip.line()


def _data_error(path) -> str:
    with pytest.raises(DataError) as err:
        load_records(path)
    message = str(err.value)
    assert message and "\n" not in message
    assert str(path) in message
    return message


def test_file_not_found(tmp_path):
    assert "not found" in _data_error(tmp_path / "nope.json")


def test_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"problem": "p",\n  "solution": }\n]\n')
    message = _data_error(path)
    assert "line 3" in message and "JSON" in message


def test_object_instead_of_list(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text(json.dumps({"records": [_record()]}))
    message = _data_error(path)
    assert "list" in message and "dict" in message


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"problem": "caf\u00e9"}]'.encode("latin-1"))
    assert "UTF-8" in _data_error(path)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_empty_list(tmp_path):
    path = _write(tmp_path / "none.json", [])
    loaded = load_records(path)
    assert loaded.records == [] and loaded.skipped == []
    assert read_json_list(path) == []


def test_to_sft_is_ms_swift_shape():
    record = {
        "problem": "Please provide the object name.",
        "solution": "star",
        "image": "/abs/a.png",
        "id": "t-1",
        "meta": {"noise": None},
    }
    sft = to_sft(record)
    assert sft == {
        "messages": [
            {"role": "user", "content": "<image>Please provide the object name."},
            {"role": "assistant", "content": "star"},
        ],
        "images": ["/abs/a.png"],
    }
    assert sft["messages"][0]["content"].startswith("<image>")
    assert sft["messages"][0]["content"].count("<image>") == len(sft["images"]) == 1
    assert json.loads(json.dumps(sft)) == sft  # a JSONL line as is


def test_sft_round_trip():
    record = {"problem": "What is this?", "solution": "Moon", "image": "/abs/b.png"}
    assert from_sft(to_sft(record)) == record
    sft = to_sft(record)
    assert to_sft(from_sft(sft)) == sft


def test_from_sft_reads_a_plain_swift_record():
    swift = {
        "messages": [
            {"role": "user", "content": "<image>Name it."},
            {"role": "assistant", "content": "heart"},
        ],
        "images": ["x.png"],
    }
    assert from_sft(swift) == {"problem": "Name it.", "solution": "heart", "image": "x.png"}
