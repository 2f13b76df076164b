"""`dcsft plan`: a config checked against an ImageNet-style tree, the paper's manifest and a
RefCOCO-style tree written under tmp_path, in seconds and without loading a model; every
blocking problem is one `error:` line and a non-zero exit; the paper's configs load."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from dcsft import prepare
from dcsft.cli import app
from dcsft.config import load_config
from dcsft.data import sources, splits
from dcsft.data.paper import read_manifest
from dcsft.errors import DataError
from dcsft.models.base import PACKAGED
from dcsft.models.size import HUB_MODELS, lora_params
from dcsft.plan import count

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "configs" / "paper"
NAMES = {"n01000001": "goose", "n01000002": "sundial", "n01000003": "warthog"}
UNNAMED = "n09999999"


def jpeg(size=(12, 10), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def tree(tmp_path) -> Path:
    """train/<wnid>/ (3 named classes x 10 + an unnamed one), val/ flat + labels (3 per class),
    imagenet-r/<wnid>/ (2 named classes and the unnamed one, 2 images each), names.txt."""
    root, image = tmp_path / "imagenet", jpeg()
    for wnid in [*NAMES, UNNAMED]:
        for i in range(10):
            write(root / "train" / wnid / f"{wnid}_{i}.JPEG", image)
    labels = []
    for k, wnid in enumerate(NAMES):
        for i in range(3):
            name = f"ILSVRC2012_val_{3 * k + i:08d}.JPEG"
            write(root / "val" / name, image)
            labels.append(f"{name} {wnid}")
    (root / "val_labels.txt").write_text("\n".join(labels) + "\n")
    for wnid in ["n01000001", "n01000002", UNNAMED]:
        for i in range(2):
            write(root / "imagenet-r" / wnid / f"art_{i}.jpg", image)
    (root / "names.txt").write_text("".join(f"{w} {n}\n" for w, n in NAMES.items()))
    return root


def imagenet_args(root: Path, *extra: str) -> list[str]:
    """The 100k config pointed at the small tree: 3 of its classes, 2 + 5 per class."""
    pairs = [
        f"data.root={root}",
        "data.names=names.txt",
        "data.classes=3",
        "data.per_class={coldstart: 2, train: 5}",
        "data.labels={test: val_labels.txt}",
        "data.ood_splits=[imagenet-r]",
        *extra,
    ]
    return [str(PAPER / "imagenet_100k_3b.yaml"), *[a for kv in pairs for a in ("--set", kv)]]


def plan(*args: str):
    return CliRunner().invoke(app, ["plan", *map(str, args)])


def split_row(output: str, name: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[:1] == [name])


def one_error(result, exit_code: int = 1) -> str:
    """The one `error:` line of a plan that found a blocking problem (exit code 1) or of a config
    that does not load (2)."""
    assert result.exit_code == exit_code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    return errors[0]


def test_plan_counts_every_split_of_an_imagenet_tree(tree):
    result = plan(*imagenet_args(tree))
    assert result.exit_code == 0, result.output
    out = result.output
    # split, records, missing, unreadable (decoded of sampled)
    assert split_row(out, "coldstart")[:4] == ["coldstart", "6", "0", "0/16"]
    assert split_row(out, "train")[:4] == ["train", "15", "0", "-"]
    assert split_row(out, "photo")[:4] == ["photo", "9", "0", "0/9"]
    assert split_row(out, "imagenet-r")[:4] == ["imagenet-r", "4", "0", "0/4"]
    assert "names 3 of the 4 class folders" in out and "2 of its 3 classes (named)" in out
    assert "coldstart  1 epoch(s) x ceil(6 samples / (4 x 1 accum x 1 GPU)) = 2 steps" in out
    assert "16 B/param" in out and "3.75 B parameters" in out
    assert "plan: no blocking problems" in out


def test_plan_names_the_adaptive_rules_in_force(tree):
    exact = plan(*imagenet_args(tree, "profile.method=adaptive")).output
    assert "adaptive stops medium samples early" in exact and "settles" not in exact
    settled = plan(*imagenet_args(tree, "profile.method=adaptive", "profile.adaptive_settle=4")).output
    assert "adaptive stops medium samples early, and settles samples whose first 4 draws agree" in settled


def test_missing_root_is_one_line(tree):
    line = one_error(plan(*imagenet_args(tree, f"data.root={tree / 'nope'}")))
    assert "nope" in line and "does not exist" in line


def test_wnid_without_a_name_is_one_line(tree):
    line = one_error(plan(*imagenet_args(tree, f"data.classes=[n01000001,{UNNAMED}]")))
    assert UNNAMED in line and "no name" in line


def test_more_per_class_than_exist_is_one_line(tree):
    line = one_error(plan(*imagenet_args(tree, "data.per_class={coldstart: 2, train: 9}")))
    assert "n01000001" in line and "only 10 images" in line


def test_more_classes_than_named_is_one_line(tree):
    line = one_error(plan(*imagenet_args(tree, "data.classes=4")))
    assert "4 classes requested, 3 of its 4 class folders are named" in line


def test_flat_val_without_labels_is_one_line(tree):
    assert "data.labels.test" in one_error(plan(*imagenet_args(tree, "data.labels={}")))


def test_undecodable_images_are_sampled_and_counted(tree):
    for wnid in NAMES:
        for i in range(10):
            (tree / "train" / wnid / f"{wnid}_{i}.JPEG").write_bytes(b"not a jpeg")
    skipping = plan(*imagenet_args(tree))
    assert skipping.exit_code == 0, skipping.output
    assert split_row(skipping.output, "coldstart")[3] == "16/16"
    assert "warning: coldstart: 16 of 16 sampled images do not decode" in skipping.output
    assert "cannot be decoded" in one_error(plan(*imagenet_args(tree, "data.bad_images=error")))


def test_paper_config_on_the_manifest_tree(tmp_path):
    """imagenet_3b.yaml (the paper's exact splits) on a tree holding every manifest file (hard
    links to one tiny JPEG): the paper's counts, then a missing image named and counted."""
    root, one = tmp_path / "imagenet", tmp_path / "one.jpg"
    one.write_bytes(jpeg())
    for row in read_manifest():
        path = root / row["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(one, path)
    result = plan(PAPER / "imagenet_3b.yaml", "--set", f"data.root={root}")
    assert result.exit_code == 0, result.output
    counts = {
        name: split_row(result.output, name)[1]
        for name in ("coldstart", "train", "photo", "imagenet-r", "imagenet-a")
    }
    assert counts == {
        "coldstart": "400",
        "train": "9,600",
        "photo": "5,000",
        "imagenet-r": "10,741",
        "imagenet-a": "3,015",
    }
    assert "100 training classes, 186 classes in all, every one named" in result.output
    assert "600 steps x 1 x 16 accum x 1 GPU = 9,600 samples per run (1.00 epochs" in result.output
    assert "9,600 samples x k 8 = 76,800 responses, <= 9,830,400 tokens" in result.output
    eight = plan(
        PAPER / "imagenet_3b.yaml",
        "--gpus",
        "8",
        *[
            a
            for kv in (
                f"data.root={root}",
                "train.grad_accum=2",
                "grpo.grad_accum=2",
                "coldstart.grad_accum=2",
            )
            for a in ("--set", kv)
        ],
    )
    assert "coldstart  1 epoch(s) x ceil(400 samples / (4 x 2 accum x 8 GPU)) = 7 steps" in eight.output
    assert "600 steps x 1 x 2 accum x 8 GPU = 9,600 samples per run" in eight.output
    assert "ZeRO-2 over 8 GPUs" in eight.output
    first = read_manifest()[500]  # a training image
    (root / first["file"]).unlink()
    line = one_error(plan(PAPER / "imagenet_3b.yaml", "--set", f"data.root={root}"))
    assert line == f"error: train: 1 image file(s) missing, 1 record(s) left out (first: {first['file']})"


def refcoco_tree(root: Path) -> Path:
    images = root / "images" / "mscoco" / "images" / "train2014"
    refs, anns, coco = [], [], []
    for image_id in range(1, 9):
        name = f"COCO_train2014_{image_id:012d}.jpg"
        write(images / name, jpeg((40, 30)))
        coco.append({"id": image_id, "file_name": name, "width": 40, "height": 30})
        bbox = [2, 3, 10, 8] if image_id != 8 else [30, 3, 20, 8]  # image 8: far outside its image
        anns.append({"id": 100 + image_id, "image_id": image_id, "bbox": bbox, "category_id": 1})
        refs.append(
            {
                "ref_id": image_id,
                "ann_id": 100 + image_id,
                "image_id": image_id,
                "category_id": 1,
                "split": "val" if image_id in (6, 7) else "train",
                "sentences": [{"sent": "the thing"}, {"sent": "left one"}],
            }
        )
    write(root / "refcoco" / "refs(unc).p", pickle.dumps(refs))
    write(root / "refcoco" / "instances.json", json.dumps({"images": coco, "annotations": anns}).encode())
    write(root / "ood" / "a.png", jpeg((40, 30)))
    ood = [{"problem": "where?", "solution": "[1, 2, 10, 12]", "image": "a.png"}] * 3
    for name in ("ref-l4", "lisa-grounding"):
        write(root / "ood" / f"{name}.json", json.dumps(ood).encode())
    return root


def test_refcoco_config_on_a_classic_tree(tmp_path):
    root = refcoco_tree(tmp_path / "refer")
    args = [
        PAPER / "refcoco_3b.yaml",
        "--set",
        f"data.root={root}",
        "--set",
        "data.n_coldstart=2",
        "--set",
        "data.n_train=6",
    ]
    result = plan(*args)
    assert result.exit_code == 0, result.output
    assert [split_row(result.output, s)[1] for s in ("coldstart", "train", "refs", "ref-l4")] == [
        "2",
        "6",
        "4",
        "3",
    ]
    assert "train 10 records of 5 images" in result.output
    assert (
        "warning:" in result.output and "ref_id 8" in result.output
    )  # the bad box, counted, skipped by prepare
    line = one_error(plan(*args[:-1], "data.n_train=20"))
    assert "20 training records requested" in line and "only 8 usable" in line  # 10 less the cold start's 2
    (root / "images" / "mscoco" / "images" / "train2014" / "COCO_train2014_000000000006.jpg").unlink()
    missing = plan(*args)
    assert split_row(missing.output, "refs")[1:3] == ["2", "1"]  # ref 6's two expressions go with its image
    assert "refs: 1 image file(s) missing, 2 record(s) left out (first: " in missing.output


@pytest.mark.parametrize(
    "overrides, expected, exit_code",
    [
        (["task=classification"], "data.source refcoco holds grounding data, the task is classification", 1),
        (
            ["data.ood_splits=[refs]", "data.files={refs: ood/ref-l4.json}"],
            "data.ood_splits: 'refs' is the name of another split",
            1,
        ),
        # the data section's own rules stop the config from loading
        (["data.files={ref-l4: ood/ref-l4.json}"], "data.files: no file for split 'lisa-grounding'", 2),
        (
            ["data.refcoco_splits={train: train, test: val}"],
            "data.refcoco_splits: no RefCOCO split named for role 'coldstart'",
            2,
        ),
        (
            ["data.per_class={train: 3}"],
            "data.per_class: source refcoco does not read this key; its keys: "
            "seed, ood_splits, root, bad_images, max_test, n_coldstart, n_train,",
            2,
        ),
    ],
)
def test_config_mistakes_are_one_line(tmp_path, overrides, expected, exit_code):
    root = refcoco_tree(tmp_path / "refer")
    sets = [a for kv in [f"data.root={root}", *overrides] for a in ("--set", kv)]
    assert expected in one_error(plan(PAPER / "refcoco_3b.yaml", *sets), exit_code)


def test_a_per_split_key_that_is_no_split_is_one_line(tree):
    line = one_error(plan(*imagenet_args(tree, "data.per_class={coldstart: 2, trian: 3}")), 2)
    assert "data.per_class: unknown key 'trian'" in line


def test_local_model_folder_is_counted_from_its_weights(tree):
    result = plan(*imagenet_args(tree, f"model.base={PACKAGED}"))
    assert "351 k parameters, counted from the safetensors headers" in result.output
    assert "no such folder" in one_error(plan(*imagenet_args(tree, "model.base=./no/such/model")))


def test_lora_adapter_size_of_qwen_3b():
    cfg = load_config(PAPER / "imagenet_3b.yaml")
    # r x (in + out) over the 7 linears of 36 layers of the language model and 32 vision blocks
    assert count(lora_params(cfg.train.lora, HUB_MODELS["Qwen/Qwen2.5-VL-3B-Instruct"])) == "82.2 M"


@pytest.mark.parametrize("path", sorted(PAPER.glob("*.yaml")), ids=lambda p: p.name)
def test_paper_configs_load_and_state_their_launch(path):
    cfg = load_config(path)
    assert not cfg.tasks and cfg.data.source in splits.REAL_SOURCES
    assert cfg.model.max_pixels == 802_816 and cfg.train.lr == 1e-5 and cfg.profile.k == 8
    assert cfg.profile.temperature == 0.9 and cfg.train.lora.r == 32
    header = path.read_text().split("\nrun_dir:")[0]
    assert f"dcsft study configs/paper/{path.name}" in header and "GPU" in header
    assert cfg.data.root is None  # the user's dataset root, given with --set data.root=...
    result = plan(path)
    assert "data.root: the dataset root is needed" in one_error(result)


def test_plan_loads_no_model_library(tree, tmp_path):
    """plan never imports torch or transformers (it would take longer than the plan itself)."""
    code = (
        "import sys; from dcsft.config import load_config; from dcsft.plan import plan_study; "
        "cfg = load_config(sys.argv[1], sys.argv[2:]); plan_study(cfg, [cfg], echo=lambda _: None); "
        "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    )
    args = imagenet_args(tree)
    result = subprocess.run(
        [sys.executable, "-c", code, args[0], *args[2::2]], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_plan_states_the_hard_sample_dials_of_each_world():
    from dcsft.data.sources.embedded import hard_sample_dials

    study = load_config(None, ["data.context=0.25", "data.novel_classes=3"])
    classification = hard_sample_dials(study.for_task("classification"))
    assert "context 0.25" in classification and "(bolt, drop, tree)" in classification
    assert "tiny 0.15, occluded 0.15, twin 0.15" in hard_sample_dials(study.for_task("grounding"))


# ---------------------------------------------------------------- plan and prepare: one source module each


def surveyed_and_prepared(cfg) -> tuple[dict[str, int], dict[str, int]]:
    """Records per split as `dcsft plan` counts them (the source's survey) and as prepare
    writes them (the source's load)."""
    found = sources.survey(cfg, sample=0)
    assert not found.problems, found.problems
    stats = prepare.run(cfg)
    written = json.loads((Path(cfg.run_dir) / "01_prepare" / "stats.json").read_text())["records"]
    assert stats is not None and list(written) == list(found.splits)
    return {name: check.count for name, check in found.splits.items()}, written


def test_plan_and_prepare_agree_on_an_imagenet_tree(tree, tmp_path):
    args = imagenet_args(tree)
    cfg = load_config(args[0], [*args[2::2], f"run_dir={tmp_path / 'run'}"])
    surveyed, written = surveyed_and_prepared(cfg)
    assert surveyed == written == {"coldstart": 6, "train": 15, "photo": 9, "imagenet-r": 4}


def test_plan_and_prepare_agree_on_a_refcoco_tree(tmp_path):
    root = refcoco_tree(tmp_path / "refer")
    cfg = load_config(
        PAPER / "refcoco_3b.yaml",
        [f"data.root={root}", "data.n_coldstart=2", "data.n_train=6", f"run_dir={tmp_path / 'run'}"],
    )
    surveyed, written = surveyed_and_prepared(cfg)
    assert surveyed == written == {"coldstart": 2, "train": 6, "refs": 4, "ref-l4": 3, "lisa-grounding": 3}


def test_plan_and_prepare_agree_on_the_papers_manifest(tmp_path):
    """A manifest of 2 rows per split (data.manifest) over a tree holding their images."""
    import csv
    import gzip

    from dcsft.data.paper import COLUMNS

    rows = [
        row
        for split in ("coldstart", "train", "val", "imagenet-r", "imagenet-a")
        for row in [r for r in read_manifest() if r["split"] == split][:2]
    ]
    root = tmp_path / "imagenet"
    for row in rows:
        write(root / row["file"], jpeg())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (root / "manifest.csv.gz").write_bytes(gzip.compress(buffer.getvalue().encode()))
    cfg = load_config(
        PAPER / "imagenet_3b.yaml",
        [f"data.root={root}", "data.manifest=manifest.csv.gz", f"run_dir={tmp_path / 'run'}"],
    )
    surveyed, written = surveyed_and_prepared(cfg)
    assert surveyed == written == {"coldstart": 2, "train": 2, "photo": 2, "imagenet-r": 2, "imagenet-a": 2}


def test_plan_and_prepare_agree_on_record_files_and_refuse_shared_images(tmp_path):
    root = tmp_path / "records"
    files = {}
    for k, split in enumerate(("coldstart", "train", "test", "sketch")):
        rows = []
        for i in range(k + 2):
            write(root / split / f"{i}.jpg", jpeg(colour=(40 * k, 10 * i, 90)))
            rows.append({"problem": "What is it?", "solution": "goose", "image": f"{split}/{i}.jpg"})
        (root / f"{split}.json").write_text(json.dumps(rows))
        files[split] = f"{split}.json"
    overrides = [
        "tasks={}",
        "data.source=records",
        f"data.root={root}",
        "data.ood_splits=[sketch]",
        f"data.files={json.dumps(files)}",
        f"run_dir={tmp_path / 'run'}",
    ]
    surveyed, written = surveyed_and_prepared(load_config(None, overrides))
    assert surveyed == written == {"coldstart": 2, "train": 3, "photo": 4, "sketch": 5}
    (root / "test.json").write_text((root / "train.json").read_text())  # one rule for plan and prepare
    shared = load_config(None, [*overrides[:-1], f"run_dir={tmp_path / 'again'}"])
    message = "3 image(s) are in both train and photo"
    assert message in sources.survey(shared, sample=0).problems[0]
    with pytest.raises(DataError, match=re.escape(message)):
        prepare.run(shared)


def test_plan_and_prepare_agree_on_the_embedded_world(tmp_path):
    cfg = load_config(
        None,
        ["tasks={}", "data.n_coldstart=3", "data.n_train=5", "data.n_test=2", f"run_dir={tmp_path / 'run'}"],
    )
    surveyed, written = surveyed_and_prepared(cfg)
    assert surveyed == written == {"coldstart": 3, "train": 5, "photo": 2, "rendition": 2, "adversarial": 2}


def hundred_k_tree(root: Path, per_class: int) -> Path:
    """The supplement's 100k setting on disk, small: 200 classes the shipped map names, each with
    `per_class` training images and one val image (val/<wnid>/), 3 classes it does not name
    (two-word names), and ImageNet-R / -A folders of 2 classes each, one of the authors' and
    goldfish (an ImageNet-R / -A class the authors did not test on); every image one tiny JPEG."""
    from dcsft.data.imagenet import NAMES_FILE, read_name_map

    one = root.parent / "one.jpg"
    one.write_bytes(jpeg())
    named = sorted(read_name_map(NAMES_FILE))[:200]
    unnamed = ["n01484850", "n01491361", "n01494475"]  # great white shark, tiger shark, hammerhead
    for wnid in [*named, *unnamed]:
        for i in range(per_class):
            link(one, root / "train" / wnid / f"{wnid}_{i}.JPEG")
        link(one, root / "val" / wnid / f"ILSVRC2012_val_{wnid}.JPEG")
    for ood in ("imagenet-r", "imagenet-a"):
        authors = min(row["wnid"] for row in read_manifest() if row["split"] == ood)
        for wnid in (authors, "n01443537"):
            link(one, root / ood / wnid / f"{ood}_{wnid}.jpg")
    return root


def link(source: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, path)


def test_the_100k_config_plans_200_classes_with_the_shipped_map(tmp_path):
    root = hundred_k_tree(tmp_path / "imagenet", per_class=6)
    config = PAPER / "imagenet_100k_3b.yaml"
    result = plan(config, "--set", f"data.root={root}", "--set", "data.per_class={coldstart: 4, train: 2}")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "names 200 of the 203 class folders" in out and "the study uses 200 classes, all named" in out
    assert split_row(out, "coldstart")[:3] == ["coldstart", "800", "0"]
    assert split_row(out, "train")[:3] == ["train", "400", "0"]
    assert split_row(out, "photo")[:3] == ["photo", "200", "0"]
    assert split_row(out, "imagenet-r")[:3] == ["imagenet-r", "1", "0"]  # the authors' class, not goldfish
    assert split_row(out, "imagenet-a")[:3] == ["imagenet-a", "1", "0"]
    assert "plan: no blocking problems" in out
