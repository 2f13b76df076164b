"""Box conventions per model family and prompts as settings (dcsft.conventions): `auto` resolved
from tiny Qwen2-VL / Qwen2.5-VL / Qwen3-VL models built offline, each family's answer text for a
known box, a correct box scoring 1 in every frame and convention, what plan prints, and a bad
prompt template as one line."""

import json

import pytest
from PIL import Image
from test_engines import FAMILIES  # the tiny configs of each family, written once
from transformers import AutoConfig, AutoModelForImageTextToText
from typer.testing import CliRunner

from dcsft import prepare
from dcsft.cli import app
from dcsft.config import StudyConfig, load_config
from dcsft.conventions import EMBEDDED_MODEL_TYPE, base_family, box_convention, wording
from dcsft.data.sources.common import Findings
from dcsft.errors import ConfigError
from dcsft.models.base import PACKAGED
from dcsft.plan import wording_lines
from dcsft.rundir import RunDir, fingerprint
from dcsft.tasks import classification, get_task, grounding
from dcsft.tasks.base import PrepareContext

# A 280 x 224 image, resized to half (140 x 112) by max_pixels, whose target [28, 56, 84, 112] is
# [14, 28, 42, 56] in the model's frame and [100, 250, 300, 500] on the 0-1000 grid.
IMAGE_SIZE = (280, 224)
MAX_PIXELS = 140 * 112
BOX = [28, 56, 84, 112]
RELATIVE = "100, 250, 300, 500"
EXPRESSION = "the red star"
# What each family writes for that box, in its own convention and its own answer format.
NATIVE = {
    "qwen2_vl": (
        "box_tokens",
        "<|object_ref_start|>the red star<|object_ref_end|><|box_start|>(100,250),(300,500)<|box_end|>",
    ),
    "qwen2_5_vl": ("bbox_2d", '[{"bbox_2d": [14, 28, 42, 56], "label": "the red star"}]'),
    "qwen3_vl": ("bbox_2d", '[{"bbox_2d": [100, 250, 300, 500], "label": "the red star"}]'),
}


@pytest.fixture(scope="module", params=list(NATIVE))
def family(request, tmp_path_factory):
    """(model_type, folder) of a tiny model of the family, built offline and saved."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    name = request.param
    if name not in CONFIG_MAPPING:
        pytest.skip(f"this transformers has no {name}")
    folder = tmp_path_factory.mktemp(name)
    config = AutoConfig.for_model(name, **FAMILIES[name])
    AutoModelForImageTextToText.from_config(config).save_pretrained(folder)
    return name, folder


def study(base, *sets: str, task: str = "grounding") -> StudyConfig:
    """A single-task config on `base`, with `--set` overrides."""
    cfg = load_config(overrides=[f"model.base={base}", f"model.max_pixels={MAX_PIXELS}", *sets])
    return cfg.for_task(task)


def prepared_record(cfg: StudyConfig, tmp_path) -> dict:
    """A raw record with BOX in IMAGE_SIZE's pixels, through prepare's frame and wording."""
    image = tmp_path / "scene.png"
    Image.new("RGB", IMAGE_SIZE).save(image)
    raw = {
        "id": "r0",
        "problem": "?",
        "solution": str(BOX),
        "image": str(image),
        "meta": {"expression": EXPRESSION},
    }
    words = wording(cfg)
    context = PrepareContext(words, cfg.model.min_pixels, cfg.model.max_pixels)
    record, problem = get_task(cfg.task).prepare_record(words.reworded(raw), context)
    assert problem is None
    return record


def decoded(text: str) -> str:
    """A response as generation decodes it: Qwen's special tokens dropped."""
    for token in ("<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>"):
        text = text.replace(token, "")
    return text


def test_auto_resolves_each_family_from_its_config_json(family):
    name, folder = family
    convention = box_convention(study(folder).model)
    assert convention.family.model_type == name and convention.family.where.endswith("config.json")
    assert convention.box_format == ("absolute" if name == "qwen2_5_vl" else "relative1000")
    assert convention.contradiction() is None


def test_each_family_answers_a_known_box_as_it_writes_it(family, tmp_path):
    name, folder = family
    answer_format, native = NATIVE[name]
    record = prepared_record(study(folder, f"prompts.answer_format={answer_format}"), tmp_path)
    assert record["solution"] == native
    relative = name != "qwen2_5_vl"
    assert record["meta"].get("box_format") == ("relative1000" if relative else None)
    assert record["problem"] == grounding.prompt(EXPRESSION)


@pytest.mark.parametrize("answer_format", ["plain", "bbox_2d", "box_tokens"])
@pytest.mark.parametrize("box_format", ["absolute", "relative1000"])
def test_a_correct_box_scores_one_in_each_frame_and_a_wrong_one_zero(box_format, answer_format, tmp_path):
    cfg = study("embedded", f"model.box_format={box_format}", f"prompts.answer_format={answer_format}")
    record = prepared_record(cfg, tmp_path)
    width, height = record["meta"]["size"] if box_format == "absolute" else (1000, 1000)
    wrong = f"[{width - 10}, {height - 10}, {width}, {height}]"
    for response in (record["solution"], decoded(record["solution"])):
        for frame in ("model", "original"):
            assert grounding.score_record(response, record, frame) == 1.0, (response, frame)
            assert grounding.score_record(wrong, record, frame) == 0.0
    size, formats = [record["meta"]["size"]], [grounding.record_box_format(record)]
    reward = grounding.Grounding().reward
    assert reward(
        [record["solution"], wrong], solution=[record["solution"]] * 2, size=size * 2, box_format=formats * 2
    ) == [
        1,
        0,
    ]
    assert reward([record["solution"], wrong], record=[record] * 2) == [1, 0]
    assert grounding.record_problem(record) is None


def test_a_box_in_the_other_convention_is_wrong(tmp_path):
    """The failure the conventions prevent: absolute pixels read on the 0-1000 grid score 0."""
    relative = prepared_record(study("embedded", "model.box_format=relative1000"), tmp_path)
    absolute = prepared_record(study("embedded"), tmp_path)
    assert relative["solution"] == f"[{RELATIVE}]"
    assert grounding.score_record(absolute["solution"], relative) == 0.0
    assert grounding.score_record(relative["solution"], absolute) == 0.0


@pytest.mark.parametrize(
    "text, box",
    [
        ('[{"bbox_2d": [10, 20, 30, 40], "label": "a (1,2)"}]', (10, 20, 30, 40)),
        ("<|box_start|>(10,20),(30,40)<|box_end|>", (10, 20, 30, 40)),
        ("the star(10, 20), (30.5, 40)", (10, 20, 30.5, 40)),
        ("(30,20),(10,40) then [1, 2, 3, 4]", (1, 2, 3, 4)),
    ],
)
def test_the_verifier_reads_every_answer_format(text, box):
    assert grounding.parse_box(text) == box


def test_hub_ids_by_name_and_the_embedded_base():
    assert base_family("Qwen/Qwen2.5-VL-3B-Instruct").model_type == "qwen2_5_vl"
    assert base_family("Qwen/Qwen2-VL-7B-Instruct").model_type == "qwen2_vl"
    assert base_family("Qwen/Qwen3-VL-8B-Instruct").model_type == "qwen3_vl"
    assert json.loads((PACKAGED / "config.json").read_text())["model_type"] == EMBEDDED_MODEL_TYPE
    assert box_convention(study("embedded").model).box_format == "absolute"


def test_auto_on_an_unknown_family_is_one_line():
    with pytest.raises(ConfigError, match=r"^model.box_format auto: .*llava.* set model.box_format") as err:
        box_convention(study("someone/llava-7b").model)
    assert "\n" not in str(err.value)
    assert box_convention(study("someone/llava-7b", "model.box_format=absolute").model).native is None


def run_plan(*sets: str):
    args = ["plan", "--task", "grounding"] + [arg for s in sets for arg in ("--set", s)]
    return CliRunner().invoke(app, args)


def test_plan_prints_the_convention_in_force(family):
    """The whole plan of each family's tiny model: its convention, its size and memory (Qwen2-VL's
    vision config names its widths embed_dim and mlp_ratio), and no problem or warning."""
    name, folder = family
    native = "absolute" if name == "qwen2_5_vl" else "relative1000"
    result = run_plan(f"model.base={folder}", f"model.max_pixels={MAX_PIXELS}")
    assert result.exit_code == 0, result.output
    lines = wording_lines(study(folder), Findings())
    assert lines[0] == f"  prompt: {grounding.PROMPT!r}"
    assert lines[1].startswith(f"  boxes: {native} (") and f"model_type {name}" in lines[1]
    assert lines[2] == "  answers: plain, e.g. [10, 20, 30, 40]"
    assert all(line in result.output for line in lines)
    assert "memory per GPU" in result.output and "warning" not in result.output


def test_plan_prints_the_default_convention():
    result = run_plan()
    assert result.exit_code == 0, result.output
    assert (
        "  boxes: absolute (pixels of the image as the model sees it, resized): the convention of "
        in result.output
    )
    assert f"  prompt: {grounding.PROMPT!r}" in result.output


def test_plan_warns_of_a_box_format_against_the_family_and_prints_the_prompt():
    result = run_plan("model.box_format=relative1000", "prompts.grounding=qwen")
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: model.box_format")]
    assert warnings == [
        "warning: model.box_format relative1000: the base's family writes absolute boxes (model_type "
        "qwen2_5_vl, the embedded base); kept as set"
    ]
    assert f"prompt: {grounding.QWEN_PROMPT!r}" in result.output


@pytest.mark.parametrize(
    "setting, message",
    [
        ("prompts.grounding=Find it.", "must hold {expression}"),
        ("prompts.grounding=Find {it} {expression}", "no other placeholder ({it})"),
        ("prompts.grounding=Find {expression", "is not a template"),
        ("prompts.classification=Name {x}", "takes no placeholder"),
    ],
)
def test_a_bad_prompt_template_is_one_line(setting, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[setting])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"--set {setting}: prompts.")


def test_the_prompt_is_a_setting_and_enters_prepares_fingerprint():
    for task in ("classification", "grounding"):
        default = study("embedded", task=task)
        assert wording(default).fingerprint_part() == []
        d = default
        before = fingerprint("prepare", d.task, d.data.model_dump(), d.model.min_pixels, d.model.max_pixels)
        assert prepare.stage_fingerprint(default) == before  # runs prepared before the settings stay valid
        other = study(
            "embedded",
            f"prompts.{task}=Say where {{expression}} is"
            if task == "grounding"
            else f"prompts.{task}=Name it.",
            task=task,
        )
        assert prepare.stage_fingerprint(other) != before
    grounding_default = prepare.stage_fingerprint(study("embedded"))
    for setting in (
        "model.box_format=relative1000",
        "prompts.answer_format=bbox_2d",
        "prompts.grounding=qwen",
    ):
        assert prepare.stage_fingerprint(study("embedded", setting)) != grounding_default, setting
    assert prepare.stage_fingerprint(study("embedded", "model.box_format=absolute")) == grounding_default


def test_prepare_words_the_embedded_scenes_and_records_it(tmp_path):
    cfg = study(
        "embedded",
        "data.n_coldstart=2",
        "data.n_train=2",
        "data.n_test=2",
        "model.box_format=relative1000",
        "prompts.answer_format=bbox_2d",
        "prompts.grounding=qwen",
        f"run_dir={tmp_path / 'run'}",
    )
    prepare.run(cfg)
    rundir = RunDir(cfg.run_dir)
    records = json.loads(rundir.records("train").read_text())
    for record in records:
        assert record["problem"] == grounding.QWEN_PROMPT.format(expression=record["meta"]["expression"])
        assert json.loads(record["solution"])[0]["label"] == record["meta"]["expression"]
        assert record["meta"]["box_format"] == "relative1000"
        assert grounding.score_record(record["solution"], record, "original") == 1.0
    stats = json.loads((rundir.prepare.root / "stats.json").read_text())
    assert stats["wording"] == {
        "prompt": grounding.QWEN_PROMPT,
        "box_format": "relative1000",
        "answer_format": "bbox_2d",
    }


def test_a_record_files_own_wording_is_kept():
    words = wording(study("embedded", "prompts.classification=Name the object.", task="classification"))
    paper = {"problem": classification.PROMPT, "solution": "star"}
    own = {"problem": "What is this?", "solution": "star"}
    assert words.reworded(paper)["problem"] == "Name the object." and words.worded(words.reworded(paper))
    assert words.reworded(own) == own and not words.worded(own)
    scenes = wording(study("embedded", "prompts.grounding=qwen"))
    assert scenes.reworded({"problem": "?", "meta": {"expression": EXPRESSION}})["problem"] == (
        "Locate the red star, output its bbox coordinates using JSON format."
    )
    assert scenes.reworded({"problem": "?", "meta": {}})["problem"] == "?"
