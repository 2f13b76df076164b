"""The real-scale code path end to end, through the CLI: an ImageNet-style and a RefCOCO-style
(classic refer layout) dataset on disk, the paper's configs, and a local model folder (the
packaged tiny Qwen2.5-VL saved with save_pretrained, as a downloaded checkpoint would be),
prepare -> coldstart -> profile -> curate -> train (sft-m) -> evaluate -> report at the
smallest sizes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from dcsft import rundir as rundir_module
from dcsft.cli import app
from dcsft.config import ModelConfig, load_config
from dcsft.data import scenes, world
from dcsft.data.resize import fitted_size
from dcsft.tasks import grounding

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "configs" / "paper"
CLASSES = {"n01000001": "circle", "n01000002": "square", "n01000003": "triangle", "n01000004": "star"}
UNNAMED = "n09999999"  # a class folder the name map does not name: left out of the 3 classes drawn
PER_CLASS = {"coldstart": 2, "train": 4}
ORIGINAL_SIZE = (150, 112)  # RefCOCO-style images, resized by the processor to the model's 7,056-pixel frame
TINY = [  # the smallest run of the real path with the tiny model (its 84 x 84 frame)
    "model.dtype=float32",
    "model.min_pixels=3136",
    "model.max_pixels=7056",
    "model.threads=2",
    "coldstart.batch_size=4",
    "coldstart.lr=2e-4",
    "coldstart.save_steps=null",
    "profile.k=4",
    "profile.batch_size=16",
    "profile.max_new_tokens=24",
    "train.methods=[sft-m]",
    "train.steps=3",
    "train.batch_size=4",
    "train.grad_accum=1",
    "train.lr=1e-3",
    "train.save_steps=null",
    "evaluate.batch_size=32",
    "evaluate.max_new_tokens=24",
]


def dcsft(*args: str) -> Result:
    """The CLI in this process (the model libraries are imported once for the whole file); the
    run directory's lock is let go afterwards, as the process exit would."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    for handle in rundir_module._held_locks:
        handle.close()
    rundir_module._held_locks.clear()
    return result


def sets(*pairs: str) -> list[str]:
    return [arg for kv in pairs for arg in ("--set", kv)]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    """The packaged tiny model, saved as a local checkpoint folder."""
    from dcsft.models.base import PACKAGED
    from dcsft.models.loading import load_model, load_processor

    folder = tmp_path_factory.mktemp("model") / "tiny-qwen2.5-vl"
    cfg = ModelConfig(min_pixels=3136, max_pixels=7056)
    load_model(PACKAGED, cfg).save_pretrained(folder)
    load_processor(PACKAGED, cfg).save_pretrained(folder)
    return folder


def imagenet_tree(root: Path) -> Path:
    """train/<wnid>/ (photo style), val/ flat + labels, imagenet-r/<wnid>/ (rendition style),
    drawn from the shape world so the tiny model knows the classes."""
    labels, index = [], 0
    for wnid in [*CLASSES, UNNAMED]:
        for i in range(8):
            image, _ = world.draw_sample(
                world.sample_rng(0, f"fixture-train-{wnid}", i),
                "photo",
                size=96,
                label=CLASSES.get(wnid, "moon"),
            )
            (root / "train" / wnid).mkdir(parents=True, exist_ok=True)
            image.save(root / "train" / wnid / f"{wnid}_{i}.JPEG", format="JPEG")
        if wnid == UNNAMED:
            continue
        for i in range(3):
            image, _ = world.draw_sample(
                world.sample_rng(0, f"fixture-val-{wnid}", i), "photo", size=96, label=CLASSES[wnid]
            )
            name = f"ILSVRC2012_val_{index:08d}"
            (root / "val").mkdir(parents=True, exist_ok=True)
            image.save(root / "val" / f"{name}.JPEG", format="JPEG")
            labels.append(f"{name}.JPEG {wnid}")
            index += 1
            image, _ = world.draw_sample(
                world.sample_rng(0, f"fixture-r-{wnid}", i), "rendition", size=96, label=CLASSES[wnid]
            )
            (root / "imagenet-r" / wnid).mkdir(parents=True, exist_ok=True)
            image.save(root / "imagenet-r" / wnid / f"art_{i}.jpg", format="JPEG")
    (root / "val_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "names.txt").write_text("".join(f"{w} {n}\n" for w, n in CLASSES.items()))
    return root


def scene(index: int, pool: str) -> tuple[Image.Image, dict]:
    """A scene stretched to ORIGINAL_SIZE (so x and y scale differently), its box following."""
    image, meta = scenes.draw_scene_item(0, pool, index, "photo", "short", size=126)
    sx, sy = ORIGINAL_SIZE[0] / 126, ORIGINAL_SIZE[1] / 126
    x1, y1, x2, y2 = meta["box"]
    box = [round(x1 * sx, 2), round(y1 * sy, 2), round(x2 * sx, 2), round(y2 * sy, 2)]
    return image.resize(ORIGINAL_SIZE), {"expression": meta["expression"], "box": box}


def refcoco_tree(root: Path) -> Path:
    """The refer toolkit's data/ layout: refcoco/refs(unc).p + instances.json, COCO images, and
    two OOD record files (authors' format and ms-swift format), boxes in the images' pixels."""
    images = root / "images" / "mscoco" / "images" / "train2014"
    images.mkdir(parents=True)
    refs, anns, coco_images = [], [], []
    for image_id in range(1, 25):
        split = "val" if image_id > 18 else "train"
        image, meta = scene(image_id, "fixture-refcoco")
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        image.save(images / file_name, format="JPEG")
        coco_images.append(
            {"id": image_id, "file_name": file_name, "width": ORIGINAL_SIZE[0], "height": ORIGINAL_SIZE[1]}
        )
        x1, y1, x2, y2 = meta["box"]
        anns.append(
            {
                "id": 1000 + image_id,
                "image_id": image_id,
                "category_id": 1,
                "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                "area": 1.0,
                "iscrowd": 0,
            }
        )
        refs.append(
            {
                "ref_id": image_id,
                "ann_id": 1000 + image_id,
                "image_id": image_id,
                "split": split,
                "category_id": 1,
                "file_name": file_name.replace(".jpg", f"_{1000 + image_id}.jpg"),
                "sentences": [{"sent": meta["expression"], "raw": meta["expression"]}],
            }
        )
    (root / "refcoco").mkdir()
    (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    (root / "refcoco" / "instances.json").write_text(json.dumps({"images": coco_images, "annotations": anns}))
    ood = root / "ood"
    ood.mkdir()
    l4, lisa = [], []
    for i in range(6):
        image, meta = scene(i, "fixture-ood")
        path = ood / f"ood_{i}.png"
        image.save(path)
        answer = grounding.format_box(meta["box"])
        l4.append({"problem": grounding.prompt(meta["expression"]), "solution": answer, "image": path.name})
        lisa.append(
            {
                "messages": [
                    {"role": "user", "content": "<image>" + grounding.prompt(meta["expression"])},
                    {"role": "assistant", "content": answer},
                ],
                "images": [str(path)],
            }
        )
    (ood / "ref-l4.json").write_text(json.dumps(l4))
    (ood / "lisa-grounding.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lisa))
    return root


def records(run: Path, split: str) -> list[dict]:
    return json.loads((run / "01_prepare" / "records" / f"{split}.json").read_text())


def check_report(run: Path, splits: set[str], dataset: str) -> dict:
    report = run / "07_report"
    for name in ("report.md", "report.html", "results.json", "buckets.json"):
        assert (report / name).is_file(), name
    text = (report / "report.md").read_text()
    assert text.startswith(f"# DC-SFT study: {dataset}\n")
    assert "## Where the injected label noise landed" not in text  # real data carries no injected noise
    results = json.loads((report / "results.json").read_text())
    assert set(results["models"]) == {"base", "coldstart", "sft-m"}
    for name, model in results["models"].items():
        if model["n_a"]:
            continue
        for split in splits:
            value = model["accuracy"][split]["mean"]
            assert isinstance(value, float) and 0 <= value <= 100, (name, split, value)
    for folder in ("base", "coldstart"):
        assert set(json.loads((run / "06_evaluate" / folder / "scores.json").read_text())) == splits
    return results


@pytest.fixture(scope="module")
def imagenet_run(tmp_path_factory, model_folder):
    root = tmp_path_factory.mktemp("imagenet")
    data = imagenet_tree(root / "data")
    overrides = sets(
        f"data.root={data}",
        "data.names=names.txt",
        "data.classes=3",
        "data.per_class={coldstart: 2, train: 4}",
        "data.labels={test: val_labels.txt}",
        "data.ood_splits=[imagenet-r]",
        f"model.base={model_folder}",
        *TINY,
    )
    result = dcsft("study", PAPER / "imagenet_100k_3b.yaml", "--run-dir", root / "run", *overrides)
    assert result.exit_code == 0, result.output
    return root / "run", data, result


@pytest.fixture(scope="module")
def refcoco_run(tmp_path_factory, model_folder):
    root = tmp_path_factory.mktemp("refcoco")
    data = refcoco_tree(root / "data")
    overrides = sets(
        f"data.root={data}",
        "data.n_coldstart=4",
        "data.n_train=10",
        "data.files={ref-l4: ood/ref-l4.json, lisa-grounding: ood/lisa-grounding.jsonl}",
        f"model.base={model_folder}",
        *TINY,
    )
    result = dcsft("study", PAPER / "refcoco_3b.yaml", "--run-dir", root / "run", *overrides)
    assert result.exit_code == 0, result.output
    return root / "run", data, result


@pytest.mark.e2e
def test_imagenet_records_point_at_the_dataset(imagenet_run):
    run, data, _ = imagenet_run
    stats = json.loads((run / "01_prepare" / "stats.json").read_text())
    assert stats["records"] == {
        "coldstart": 6,
        "train": 12,
        "photo": 9,
        "imagenet-r": 12,
    }  # OOD: the 4 named classes
    classes = set(stats["classes"])
    assert classes == set(CLASSES.values())  # every answer of every split: 3 trained classes + 1 only in OOD
    cold, train = records(run, "coldstart"), records(run, "train")
    trained = {r["solution"] for r in train}
    assert len(trained) == 3 and {r["solution"] for r in cold} == trained == {
        r["solution"] for r in records(run, "photo")
    }
    assert {r["image"] for r in cold}.isdisjoint(r["image"] for r in train)
    for split in ("coldstart", "train", "photo", "imagenet-r"):
        for record in records(run, split):
            assert Path(record["image"]).is_file() and Path(record["image"]).is_relative_to(
                data
            )  # not copied
            assert record["solution"] in classes
    assert not (run / "01_prepare" / "images").exists()
    assert {r["meta"]["wnid"] for r in train} <= set(CLASSES)  # the unnamed class folder is never drawn


@pytest.mark.e2e
def test_imagenet_study_reports_accuracies(imagenet_run):
    run, _, _ = imagenet_run
    results = check_report(run, {"photo", "imagenet-r"}, "ImageNet (classification)")
    assert results["split_sizes"] == {"photo": 9, "imagenet-r": 12}
    profile = [json.loads(line) for line in (run / "03_profile" / "profile.jsonl").read_text().splitlines()]
    assert len(profile) == 12 and all(row["k"] == 4 for row in profile)


@pytest.mark.e2e
def test_refcoco_boxes_are_in_the_model_frame(refcoco_run):
    run, data, _ = refcoco_run
    stats = json.loads((run / "01_prepare" / "stats.json").read_text())
    assert stats["task"] == "grounding" and "classes" not in stats
    assert stats["records"] == {"coldstart": 4, "train": 10, "refs": 6, "ref-l4": 6, "lisa-grounding": 6}
    frame = list(fitted_size(*ORIGINAL_SIZE, 3136, 7056))
    refs = {r["ref_id"]: r for r in pickle.loads((data / "refcoco" / "refs(unc).p").read_bytes())}
    cold, train = records(run, "coldstart"), records(run, "train")
    assert {r["image"] for r in cold}.isdisjoint(r["image"] for r in train)
    for split in ("coldstart", "train", "refs", "ref-l4", "lisa-grounding"):
        for record in records(run, split):
            meta = record["meta"]
            assert meta["orig_size"] == list(ORIGINAL_SIZE) and meta["size"] == frame
            sx, sy = frame[0] / ORIGINAL_SIZE[0], frame[1] / ORIGINAL_SIZE[1]
            assert meta["scale"] == [round(sx, 6), round(sy, 6)]
            expected = [round(v, 2) for v in grounding.scale_box(meta["orig_box"], (sx, sy))]
            assert meta["box"] == expected and record["solution"] == grounding.format_box(expected)
            assert grounding.score_record(record["solution"], record, "model") == 1.0
            assert grounding.score_record(record["solution"], record, "original") == 1.0
            assert Path(record["image"]).is_relative_to(data)
            if split != "ref-l4" and split != "lisa-grounding":
                x, y, w, h = next(
                    a
                    for a in json.loads((data / "refcoco" / "instances.json").read_text())["annotations"]
                    if a["id"] == refs[meta["ref_id"]]["ann_id"]
                )["bbox"]
                assert meta["orig_box"] == [round(v, 2) for v in (x, y, x + w, y + h)]


@pytest.mark.e2e
def test_refcoco_study_reports_accuracies(refcoco_run):
    run, _, _ = refcoco_run
    results = check_report(run, {"refs", "ref-l4", "lisa-grounding"}, "RefCOCO (grounding)")
    assert results["task"] == "grounding" and results["ood_splits"] == ["ref-l4", "lisa-grounding"]


@pytest.mark.e2e
def test_bad_input_ends_in_one_line(tmp_path, refcoco_run):
    """A missing root and an unusable OOD record (with bad_images: error) stop prepare in one line."""
    _, data, _ = refcoco_run
    config = PAPER / "refcoco_3b.yaml"
    missing = dcsft(
        "prepare",
        config,
        "--run-dir",
        tmp_path / "a",
        *sets(f"data.root={tmp_path / 'nope'}", "data.n_coldstart=4", "data.n_train=10"),
    )
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    assert len(missing.output.strip().splitlines()) == 1 and "nope" in missing.output
    bad = tmp_path / "bad.json"  # a box that sticks out of its 150 x 112 image
    bad.write_text(
        json.dumps(
            [{"problem": "p", "solution": "[5, 5, 900, 20]", "image": str(data / "ood" / "ood_0.png")}]
        )
    )
    result = dcsft(
        "prepare",
        config,
        "--run-dir",
        tmp_path / "b",
        *sets(
            f"data.root={data}",
            "data.n_coldstart=4",
            "data.n_train=10",
            "data.bad_images=error",
            f"data.files={{ref-l4: {bad}, lisa-grounding: ood/lisa-grounding.jsonl}}",
        ),
    )
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ref-l4: record 0 (bad-0)") and "outside the 150x112 image" in line


def test_paper_configs_are_single_task():
    for path in sorted(PAPER.glob("*.yaml")):
        cfg = load_config(path)
        assert not cfg.tasks and cfg.data.source != "embedded", path
