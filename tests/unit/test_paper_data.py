"""The paper's splits: the manifest built from the authors' lists (tiny copies here), the
shipped manifest's counts, and importing the splits onto a user's dataset root."""

import gzip
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from dcsft.data import paper
from dcsft.data.imagenet import read_name_map
from dcsft.data.paper import (
    MANIFEST,
    authors_buckets,
    build_manifest,
    build_name_map,
    import_paper_splits,
    paper_classes,
    read_manifest,
    relative_file,
)
from dcsft.data.records import Skip
from dcsft.errors import DataError
from dcsft.tasks.classification import PROMPT

AUTHORS = "/data/dataset"
SHARED_PAPER_DATA = Path(__file__).resolve().parents[3] / "shared" / "paper-data"

# Two training classes; the OOD sets also hold a class that is not trained (as the authors' do).
TRAIN = {
    "n01000001": ("goose", ["n01000001_1", "n01000001_2", "n01000001_3"]),
    "n01000002": ("sundial", ["n01000002_1", "n01000002_2", "n01000002_3"]),
}
COLD = [("n01000001", "n01000001_9"), ("n01000002", "n01000002_9")]
VAL = [("n01000001", "ILSVRC2012_val_00000001"), ("n01000002", "ILSVRC2012_val_00000002")]
RENDITIONS = [("n01000001", "art_1.jpg"), ("n01000003", "art_1.jpg")]
ADVERSARIAL = [("n01000002", "0.01_stick insect _ stick insect_0.9.jpg")]
NAMES = {"n01000001": "goose", "n01000002": "sundial", "n01000003": "warthog"}
BUCKETS_3B = {
    "easy": ["n01000001_1", "n01000002_1"],
    "middle": ["n01000001_2", "n01000002_2", "n01000002_3"],
    "hard": ["n01000001_3"],
}
BUCKETS_7B = {
    "easy": ["n01000001_1", "n01000001_2", "n01000002_1", "n01000002_2"],
    "middle": ["n01000002_3"],
    "hard": ["n01000001_3"],
}


def sft(image: str, answer: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": "<image>" + PROMPT},
            {"role": "assistant", "content": answer},
        ],
        "images": [image],
    }


def rl(image: str, answer: str) -> dict:
    return {"problem": PROMPT, "solution": answer, "image": image}


def train_path(stem: str) -> str:
    return f"{AUTHORS}/Imagenet/train/{stem.split('_')[0]}/{stem}.JPEG"


def write_gz(path: Path, items: list) -> None:
    path.write_bytes(gzip.compress(json.dumps(items).encode()))


@pytest.fixture
def src(tmp_path) -> Path:
    """The authors' released lists, in miniature."""
    folder = tmp_path / "paper-data"
    folder.mkdir()
    train = [stem for _, stems in TRAIN.values() for stem in stems]
    write_gz(
        folder / "imagenet_left_sft.json.gz", [sft(train_path(s), NAMES[s.split("_")[0]]) for s in train]
    )
    write_gz(folder / "imagenet_cold_sft.json.gz", [sft(train_path(s), NAMES[w]) for w, s in COLD])
    write_gz(
        folder / "imagenet_val_processed.json.gz",
        [rl(f"{AUTHORS}/Imagenet/val/{w}/{s}.JPEG", NAMES[w]) for w, s in VAL],
    )
    write_gz(
        folder / "imagenet-r_val_processed.json.gz",
        [rl(f"{AUTHORS}/Imagenet-R/images/{w}/{f}", NAMES[w]) for w, f in RENDITIONS],
    )
    # Plain .json is accepted as well as .json.gz.
    (folder / "imagenet-a_val_processed.json").write_text(
        json.dumps([rl(f"{AUTHORS}/Imagenet-A/images/{w}/{f}", NAMES[w]) for w, f in ADVERSARIAL])
    )
    for size, buckets in (("3b", BUCKETS_3B), ("7b", BUCKETS_7B)):
        for bucket, stems in buckets.items():
            write_gz(
                folder / f"imagenet_{bucket}_sft_{size}.json.gz",
                [sft(train_path(s), NAMES[s.split("_")[0]]) for s in stems],
            )
    return folder


@pytest.fixture
def manifest(src, tmp_path) -> Path:
    out = tmp_path / "assets" / "manifest.csv.gz"
    build_manifest(src, out)
    return out


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def dataset_root(tmp_path, manifest) -> Path:
    """A user's dataset root holding every image the manifest lists."""
    root = tmp_path / "imagenet"
    for row in read_manifest(manifest):
        path = root / row["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes())
    return root


def test_relative_file_keeps_the_part_from_the_split_folder_on():
    assert relative_file(f"{AUTHORS}/Imagenet/train/n01/n01_5.JPEG", "train") == "train/n01/n01_5.JPEG"
    assert relative_file(f"{AUTHORS}/Imagenet/train/n01/n01_5.JPEG", "coldstart") == "train/n01/n01_5.JPEG"
    assert (
        relative_file(f"{AUTHORS}/Imagenet-R/images/n01/art_1.jpg", "imagenet-r")
        == "imagenet-r/n01/art_1.jpg"
    )
    assert relative_file("C:\\data\\Imagenet\\val\\n01\\v.JPEG", "val") == "val/n01/v.JPEG"


def test_manifest_rows_in_the_authors_order_with_buckets(manifest):
    rows = read_manifest(manifest)
    assert [r["split"] for r in rows] == ["coldstart"] * 2 + ["train"] * 6 + ["val"] * 2 + [
        "imagenet-r"
    ] * 2 + ["imagenet-a"]
    assert rows[2] == {
        "split": "train",
        "file": "train/n01000001/n01000001_1.JPEG",
        "wnid": "n01000001",
        "name": "goose",
        "bucket_3b": "easy",
        "bucket_7b": "easy",
    }
    # The authors' "middle" is dcsft's "medium"; non-training rows have no bucket.
    assert rows[3]["bucket_3b"] == "medium" and rows[3]["bucket_7b"] == "easy"
    assert all(r["bucket_3b"] == r["bucket_7b"] == "" for r in rows if r["split"] != "train")
    assert rows[-1]["file"] == "imagenet-a/n01000002/0.01_stick insect _ stick insect_0.9.jpg"


def test_manifest_bytes_are_reproducible(src, manifest, tmp_path):
    again = tmp_path / "again.csv.gz"
    build_manifest(src, again)
    assert again.read_bytes() == manifest.read_bytes()


def test_name_map_from_the_manifest(manifest, tmp_path):
    assert build_name_map(manifest, tmp_path / "names.txt") == 3
    assert read_name_map(tmp_path / "names.txt") == NAMES
    assert paper_classes(manifest) == ["n01000001", "n01000002"]


def test_authors_buckets_by_record_id(manifest):
    buckets = authors_buckets(manifest, "7b")
    assert len(buckets) == 6
    assert buckets["train/n01000002/n01000002_3.JPEG"] == "medium"
    assert buckets["train/n01000001/n01000001_3.JPEG"] == "hard"
    assert sorted(buckets.values()).count("easy") == 4


def test_import_maps_the_authors_paths_onto_the_users_root(manifest, dataset_root):
    splits = import_paper_splits(manifest, dataset_root)
    assert {s: len(loaded.records) for s, loaded in splits.items()} == {
        "coldstart": 2,
        "train": 6,
        "val": 2,
        "imagenet-r": 2,
        "imagenet-a": 1,
    }
    assert all(not loaded.skipped for loaded in splits.values())
    first = splits["train"].records[0]
    assert first == {
        "id": "train/n01000001/n01000001_1.JPEG",
        "problem": PROMPT,
        "solution": "goose",
        "image": str(dataset_root / "train" / "n01000001" / "n01000001_1.JPEG"),
        "meta": {
            "wnid": "n01000001",
            "split": "train",
            "authors_bucket_3b": "easy",
            "authors_bucket_7b": "easy",
        },
    }
    # Same file name in two ImageNet-R classes: two records, two ids.
    assert [r["id"] for r in splits["imagenet-r"].records] == [
        "imagenet-r/n01000001/art_1.jpg",
        "imagenet-r/n01000003/art_1.jpg",
    ]
    assert splits["imagenet-r"].records[1]["solution"] == "warthog"


def test_flat_val_and_folders_elsewhere(manifest, dataset_root, tmp_path):
    # Flatten val: ImageNet val file names are unique, so val/<file> is found too.
    for image in list((dataset_root / "val").rglob("*.JPEG")):
        image.rename(dataset_root / "val" / image.name)
    # ImageNet-R where the authors had it: another folder with an images/ level.
    elsewhere = tmp_path / "Imagenet-R" / "images"
    (dataset_root / "imagenet-r").rename(tmp_path / "moved")
    (tmp_path / "Imagenet-R").mkdir()
    (tmp_path / "moved").rename(elsewhere)
    splits = import_paper_splits(
        manifest, dataset_root, roots={"imagenet-r": elsewhere}, splits=("val", "imagenet-r")
    )
    assert set(splits) == {"val", "imagenet-r"}
    assert [r["image"] for r in splits["val"].records] == [
        str(dataset_root / "val" / "ILSVRC2012_val_00000001.JPEG"),
        str(dataset_root / "val" / "ILSVRC2012_val_00000002.JPEG"),
    ]
    assert splits["val"].records[0]["id"] == "val/n01000001/ILSVRC2012_val_00000001.JPEG"
    assert splits["imagenet-r"].records[0]["image"] == str(elsewhere / "n01000001" / "art_1.jpg")


def test_missing_images_are_counted_and_the_first_named(manifest, dataset_root):
    for stem in ("n01000001_2", "n01000002_3"):
        (dataset_root / "train" / stem.split("_")[0] / f"{stem}.JPEG").unlink()
    with pytest.raises(DataError) as err:
        import_paper_splits(manifest, dataset_root)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        f"{dataset_root}: 2 of the 13 images of the paper's coldstart, train, val, "
        f"imagenet-r, imagenet-a splits are missing (first: train/n01000001/n01000001_2.JPEG, "
        f"train/n01000002/n01000002_3.JPEG)"
    )
    kept = import_paper_splits(manifest, dataset_root, missing="skip")
    assert len(kept["train"].records) == 4
    assert kept["train"].skipped[0] == Skip(
        str(manifest),
        3,
        "train/n01000001/n01000001_2.JPEG",
        f"image not found: train/n01000001/n01000001_2.JPEG under {dataset_root}",
    )


def test_missing_root_and_bad_manifest(manifest, tmp_path):
    with pytest.raises(DataError, match="dataset root does not exist"):
        import_paper_splits(manifest, tmp_path / "nowhere")
    not_gz = tmp_path / "manifest.csv.gz"
    not_gz.write_text("split,file\n")
    with pytest.raises(DataError, match=r"manifest.csv.gz: not a gzipped CSV manifest"):
        read_manifest(not_gz)


def test_build_rejects_inconsistent_lists(src, tmp_path):
    write_gz(src / "imagenet_hard_sft_7b.json.gz", [])  # n01000001_3 is now in no 7b bucket
    with pytest.raises(DataError, match=r"1 training images are in no 7b bucket \(first: train/n01000001/"):
        build_manifest(src, tmp_path / "m.csv.gz")
    write_gz(src / "imagenet_hard_sft_7b.json.gz", [sft(train_path("n01000009_1"), "goose")])
    with pytest.raises(
        DataError, match=r"imagenet_hard_sft_7b.json.gz: .*n01000009_1.JPEG is not in the training set"
    ):
        build_manifest(src, tmp_path / "m.csv.gz")
    write_gz(src / "imagenet_cold_sft.json.gz", [sft(train_path("n01000001_9"), "swan")])
    with pytest.raises(DataError, match=r"n01000001 is named 'goose' here and 'swan' elsewhere"):
        build_manifest(src, tmp_path / "m.csv.gz")


def test_the_shipped_manifest_has_the_papers_counts():
    rows = read_manifest(MANIFEST)
    counts = {split: sum(r["split"] == split for r in rows) for split in paper.SPLITS}
    assert counts == {"coldstart": 400, "train": 9600, "val": 5000, "imagenet-r": 10741, "imagenet-a": 3015}
    trained = {r["wnid"] for r in rows if r["split"] == "train"}
    assert len(trained) == 100
    # The authors' OOD lists are mostly of untrained classes: 16 of ImageNet-R's 68, 24 of ImageNet-A's 87
    # trained.
    for split, classes, shared in (("imagenet-r", 68, 16), ("imagenet-a", 87, 24)):
        wnids = {r["wnid"] for r in rows if r["split"] == split}
        assert (len(wnids), len(wnids & trained)) == (classes, shared)
    for size, expected in (("3b", (4163, 4017, 1420)), ("7b", (4704, 3598, 1298))):
        buckets = [r[f"bucket_{size}"] for r in rows if r["split"] == "train"]
        assert tuple(buckets.count(b) for b in ("easy", "medium", "hard")) == expected
    assert MANIFEST.stat().st_size < 200_000


@pytest.mark.skipif(not SHARED_PAPER_DATA.is_dir(), reason="the authors' lists are not beside this checkout")
def test_the_shipped_manifest_is_built_from_the_authors_lists(tmp_path):
    rebuilt = tmp_path / "manifest.csv.gz"
    build_manifest(SHARED_PAPER_DATA, rebuilt)
    assert rebuilt.read_bytes() == MANIFEST.read_bytes()
