"""ImageNet-style folders read into records: layouts, name maps, class and per-class
sampling with a seed, and one-line errors for bad input; plus the record-file formats."""

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from dcsft.data.formats import export_records, import_records
from dcsft.data.imagenet import NAMES_FILE, load_split, read_name_map, read_val_labels
from dcsft.data.paper import NAMES as PAPER_NAMES
from dcsft.data.records import Skip, read_json, to_sft
from dcsft.errors import DataError
from dcsft.tasks.classification import PROMPT

NAMES = {"n01000001": "goose", "n01000002": "sundial", "n01000003": "warthog"}


def jpeg_bytes(colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_image(path: Path, data: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes() if data is None else data)
    return path


def class_tree(root: Path, counts: dict[str, int], suffix=".JPEG") -> Path:
    for wnid, n in counts.items():
        for i in range(n):
            write_image(root / wnid / f"{wnid}_{i}{suffix}")
    return root


@pytest.fixture
def train(tmp_path) -> Path:
    return class_tree(tmp_path / "train", {"n01000001": 4, "n01000002": 3, "n01000003": 5})


def test_class_folders_become_records_in_the_authors_format(train):
    loaded = load_split(train, "train", names=NAMES)
    assert loaded.skipped == []
    assert len(loaded.records) == 12
    first = loaded.records[0]
    assert first == {
        "id": "train/n01000001/n01000001_0.JPEG",
        "problem": PROMPT,
        "solution": "goose",
        "image": str(train / "n01000001" / "n01000001_0.JPEG"),
        "meta": {"wnid": "n01000001", "split": "train"},
    }
    assert [r["solution"] for r in loaded.records].count("warthog") == 5
    assert all(Path(r["image"]).is_absolute() and Path(r["image"]).exists() for r in loaded.records)


def test_non_images_and_hidden_entries_are_ignored(train):
    (train / "n01000001" / "README.txt").write_text("not an image")
    (train / ".cache").mkdir()
    loaded = load_split(train, "train", names=NAMES)
    assert len(loaded.records) == 12


def test_per_class_sampling_is_seeded_and_independent_per_class(train):
    first = load_split(train, "train", names=NAMES, per_class=2, seed=7)
    again = load_split(train, "train", names=NAMES, per_class=2, seed=7)
    assert [r["id"] for r in first.records] == [r["id"] for r in again.records]
    assert {r["meta"]["wnid"] for r in first.records} == set(NAMES)
    assert len(first.records) == 6
    # A class's draw does not depend on which other classes are chosen.
    one_class = load_split(train, "train", names=NAMES, classes=["n01000003"], per_class=2, seed=7)
    assert [r["id"] for r in one_class.records] == [r["id"] for r in first.records if "n01000003" in r["id"]]
    # Some seed draws a different pair from the 5 warthogs (10 possible pairs).
    draws = {
        tuple(
            r["id"]
            for r in load_split(
                train, "train", names=NAMES, classes=["n01000003"], per_class=2, seed=s
            ).records
        )
        for s in range(8)
    }
    assert len(draws) > 1


def test_a_number_of_classes_is_drawn_with_the_seed(train):
    loaded = load_split(train, "train", names=NAMES, classes=2, per_class=3, seed=1)
    wnids = sorted({r["meta"]["wnid"] for r in loaded.records})
    assert len(wnids) == 2 and len(loaded.records) == 6
    assert wnids == sorted(
        {
            r["meta"]["wnid"]
            for r in load_split(train, "train", names=NAMES, classes=2, per_class=3, seed=1).records
        }
    )


def test_excluded_images_are_not_drawn(train):
    cold = load_split(train, "train", names=NAMES, per_class=1, seed=0)
    rest = load_split(
        train, "train", names=NAMES, per_class=2, seed=0, exclude=[r["id"] for r in cold.records]
    )
    assert not {r["id"] for r in cold.records} & {r["id"] for r in rest.records}
    by_path = load_split(train, "train", names=NAMES, exclude=[Path(r["image"]) for r in cold.records])
    assert len(by_path.records) == 12 - 3


def test_flat_val_with_a_labels_file(tmp_path):
    val = tmp_path / "val"
    for i in range(3):
        write_image(val / f"ILSVRC2012_val_{i:08d}.JPEG")
    labels = tmp_path / "val_labels.txt"
    labels.write_text(
        "ILSVRC2012_val_00000000.JPEG n01000002\nILSVRC2012_val_00000001.JPEG n01000001\n"
        "ILSVRC2012_val_00000002.JPEG n01000002\n"
    )
    loaded = load_split(val, "val", names=NAMES, labels=labels)
    assert [(r["id"], r["solution"]) for r in loaded.records] == [
        ("val/n01000001/ILSVRC2012_val_00000001.JPEG", "goose"),
        ("val/n01000002/ILSVRC2012_val_00000000.JPEG", "sundial"),
        ("val/n01000002/ILSVRC2012_val_00000002.JPEG", "sundial"),
    ]


def test_loc_val_solution_csv_takes_the_first_wnid(tmp_path):
    labels = tmp_path / "LOC_val_solution.csv"
    labels.write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00008726,n02119789 255 142 454 329 n02119789 44 21 322 295\n"
        "ILSVRC2012_val_00024235,n03478589 82 45 468 368\n"
    )
    assert read_val_labels(labels) == {
        "ILSVRC2012_val_00008726": "n02119789",
        "ILSVRC2012_val_00024235": "n03478589",
    }


def test_sorted_val_and_renditions_use_the_same_reader(tmp_path):
    rendition = class_tree(tmp_path / "imagenet-r", {"n01000001": 2}, suffix=".jpg")
    loaded = load_split(rendition, "imagenet-r", names=NAMES)
    assert [r["id"] for r in loaded.records] == [
        "imagenet-r/n01000001/n01000001_0.jpg",
        "imagenet-r/n01000001/n01000001_1.jpg",
    ]


def test_the_shipped_name_map_has_the_papers_classes_and_more():
    papers = read_name_map(PAPER_NAMES)
    assert len(papers) == 186  # 100 training classes + the other classes of its ImageNet-R / -A sets
    names = read_name_map(NAMES_FILE)
    assert len(names) == 482 >= 200  # the supplement's 200 classes can be drawn from it
    assert {w: names[w] for w in papers} == papers  # the authors' names, unchanged
    assert names["n04355338"] == "sundial" and names["n02397096"] == "warthog"
    assert names["n01440764"] == "tench" and "n01484850" not in names  # great white shark: two words
    lowered = [name.lower() for name in names.values()]
    assert len(set(lowered)) == len(lowered) and all(" " not in name for name in names.values())


def test_the_added_names_are_torchvisions_at_their_wnids():
    """torchvision lists the 1,000 names in sorted-wnid order, so the map's names, in wnid order,
    appear in that list in the same order: a name put at the wrong wnid breaks the order."""
    from torchvision.models import ResNet50_Weights

    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    names = read_name_map(NAMES_FILE)
    indices = [categories.index(names[wnid]) for wnid in sorted(names)]
    assert indices == sorted(indices)
    assert categories[indices[0]] == "tench" and categories[indices[-1]] == "ear"


def test_name_map_as_json_and_one_word_names(tmp_path):
    as_json = tmp_path / "names.json"
    as_json.write_text(json.dumps({"n01000001": "goose"}))
    assert read_name_map(as_json) == {"n01000001": "goose"}
    two_words = tmp_path / "names.txt"
    two_words.write_text("# comment\nn01000001 great white shark\n")
    with pytest.raises(DataError, match=r"names.txt: line 2: the name of n01000001 must be one word"):
        read_name_map(two_words)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_root_is_one_line(tmp_path):
    with pytest.raises(DataError) as err:
        load_split(tmp_path / "nowhere", "train", names=NAMES)
    assert one_line(err) == f"{tmp_path / 'nowhere'}: folder does not exist"


def test_class_without_a_name(train):
    with pytest.raises(DataError) as err:
        load_split(train, "train", names={"n01000001": "goose"})
    assert "class n01000002 has no name in the given name map (2 classes unnamed)" in one_line(err)


def test_too_many_samples_per_class_names_the_class_and_counts(train):
    with pytest.raises(DataError) as err:
        load_split(train, "train", names=NAMES, per_class=4)
    assert one_line(err) == (f"{train}/n01000002: 4 samples per class requested, only 3 images")
    with pytest.raises(DataError) as err:
        load_split(train, "train", names=NAMES, per_class=5)
    assert "(and 1 more classes short)" in one_line(err)


def test_flat_folder_without_labels_says_what_to_do(tmp_path):
    write_image(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DataError) as err:
        load_split(tmp_path / "val", "val", names=NAMES)
    assert "1 images lie directly in it: pass a labels file" in one_line(err)


def test_flat_image_without_label(tmp_path):
    write_image(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    labels = tmp_path / "labels.txt"
    labels.write_text("ILSVRC2012_val_00000009.JPEG n01000001\n")
    with pytest.raises(DataError) as err:
        load_split(tmp_path / "val", "val", names=NAMES, labels=labels)
    assert "no label for 1 of the 1 images" in one_line(err)


def test_undecodable_images_are_skipped_and_replaced(train):
    bad = write_image(train / "n01000002" / "n01000002_9.JPEG", b"not a jpeg")
    skip = Skip(
        str(train),
        3,
        "train/n01000002/n01000002_9.JPEG",
        f"image cannot be decoded: {bad} (UnidentifiedImageError)",
    )
    skips_seen = []
    for seed in range(6):
        loaded = load_split(train, "train", names=NAMES, per_class=3, seed=seed)
        # Every class still gets 3 images: a bad one drawn is replaced by the class's next draw.
        assert len(loaded.records) == 9
        assert str(bad) not in {r["image"] for r in loaded.records}
        assert loaded.skipped in ([], [skip])  # skipped only if drawn before the class was full
        skips_seen += loaded.skipped
    assert skips_seen  # some seed drew it
    everything = load_split(train, "train", names=NAMES)
    assert everything.skipped == [skip] and len(everything.records) == 12


def test_undecodable_images_short_of_per_class_or_as_errors(train):
    write_image(train / "n01000002" / "n01000002_9.JPEG", b"not a jpeg")
    with pytest.raises(DataError) as err:
        load_split(train, "train", names=NAMES, per_class=4)
    assert one_line(err) == (
        f"{train}/n01000002: 4 samples per class requested, only 3 of its 4 images usable "
        f"(1 cannot be decoded)"
    )
    with pytest.raises(DataError) as err:
        load_split(train, "train", names=NAMES, bad_images="error")
    assert one_line(err).startswith(f"{train}: image cannot be decoded: {train}/n01000002/n01000002_9.JPEG")


# Record files: the authors' two formats, exported and imported back.


def sample_records(train: Path) -> list[dict]:
    return load_split(train, "train", names=NAMES, per_class=1, seed=0).records


@pytest.mark.parametrize("name", ["records.json", "records.jsonl"])
def test_records_format_round_trips_exactly(train, tmp_path, name):
    records = sample_records(train)
    assert export_records(records, tmp_path / name, "records") == 3
    assert import_records(tmp_path / name).records == records


@pytest.mark.parametrize("name", ["sft.json", "sft.jsonl"])
def test_sft_format_round_trips_ids_and_fields(train, tmp_path, name):
    records = sample_records(train)
    export_records(records, tmp_path / name, "sft", with_id=True)
    back = import_records(tmp_path / name).records
    assert back == [{k: r[k] for k in ("id", "problem", "solution", "image")} for r in records]


def test_sft_export_is_exactly_the_authors_rows(train, tmp_path):
    records = sample_records(train)
    export_records(records, tmp_path / "easy.jsonl", "sft")
    rows = read_json(tmp_path / "easy.jsonl")
    assert rows == [to_sft(r) for r in records]
    assert rows[0]["messages"][0]["content"] == "<image>" + PROMPT
    assert rows[0]["images"] == [records[0]["image"]]
    # Without ids in the file, ids come from the file name and index (as dcsft.data.records does).
    assert [r["id"] for r in import_records(tmp_path / "easy.jsonl").records] == [
        "easy-0",
        "easy-1",
        "easy-2",
    ]


def test_sft_export_loads_as_a_plain_json_dataset(train, tmp_path):
    datasets = pytest.importorskip("datasets")
    records = sample_records(train)
    export_records(records, tmp_path / "medium.jsonl", "sft")
    data = datasets.load_dataset(
        "json", data_files=str(tmp_path / "medium.jsonl"), split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert data.column_names == ["messages", "images"]
    assert data[1]["images"] == [records[1]["image"]]
    assert data[1]["messages"][1] == {"role": "assistant", "content": records[1]["solution"]}


def test_import_reads_the_authors_gzipped_lists_and_resolves_relative_images(tmp_path):
    import gzip

    path = tmp_path / "imagenet_val_processed.json.gz"
    path.write_bytes(
        gzip.compress(
            json.dumps([{"problem": PROMPT, "solution": "goose", "image": "val/n01000001/x.JPEG"}]).encode()
        )
    )
    assert import_records(path).records == [
        {
            "id": "imagenet_val_processed-0",
            "problem": PROMPT,
            "solution": "goose",
            "image": str(tmp_path / "val" / "n01000001" / "x.JPEG"),
        }
    ]


def test_unusable_records_are_skips_naming_the_file_and_record(tmp_path):
    mixed = tmp_path / "mixed.json"
    mixed.write_text(
        json.dumps(
            [
                {"problem": "p", "solution": "s", "image": "a.png"},
                {"messages": [], "images": []},
                {"problem": "p", "image": "a.png"},  # no solution
                {"problem": "p", "solution": " ", "image": "a.png"},
                {"problem": "p", "solution": 3, "image": "a.png"},
            ]
        )
    )
    loaded = import_records(mixed)
    assert [r["id"] for r in loaded.records] == ["mixed-0"]
    lines = [skip.line() for skip in loaded.skipped]
    assert lines[0] == f"{mixed}: record 1: in the sft format, the file's first record in the records format"
    assert lines[1].startswith(f"{mixed}: record 2: missing field(s)")
    assert lines[2] == f"{mixed}: record 3: empty answer: solution is empty or only whitespace"
    assert lines[3] == f"{mixed}: record 4: field(s) solution must be text"
    two_images = tmp_path / "two.json"
    two_images.write_text(
        json.dumps(
            [
                {
                    "messages": [
                        {"role": "user", "content": "<image>q"},
                        {"role": "assistant", "content": "a"},
                    ],
                    "images": ["a", "b"],
                }
            ]
        )
    )
    assert "record 0: images must list exactly one path" in import_records(two_images).skipped[0].line()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "p", "solution": "s", "image": "a"}\n{oops\n')
    with pytest.raises(DataError, match=r"broken.jsonl: line 2: not valid JSON"):
        import_records(broken)
    with pytest.raises(DataError, match=r"none.json: no record is a problem/solution/image record"):
        (tmp_path / "none.json").write_text(json.dumps([{"x": 1}]))
        import_records(tmp_path / "none.json")


def test_trl_export_is_the_rows_dcsft_trains_on(train, tmp_path):
    """The `trl` rows are what dcsft's own SFT hands TRL's SFTTrainer (answer-only loss)."""
    from dcsft.data.records import to_trl
    from dcsft.train.sft import to_dataset

    records = sample_records(train)
    export_records(records, tmp_path / "medium.jsonl", "trl")
    rows = read_json(tmp_path / "medium.jsonl")
    assert rows[0]["prompt"][0]["content"] == [{"type": "image"}, {"type": "text", "text": PROMPT}]
    assert rows[0]["completion"] == [
        {"role": "assistant", "content": [{"type": "text", "text": records[0]["solution"]}]}
    ]
    assert rows == [to_trl(r) for r in records] and to_dataset(records).num_rows == len(records)
