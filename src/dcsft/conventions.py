"""How a study asks and how its answers write boxes: each task's prompt template (`prompts.*`),
the grounding answer's format (`prompts.answer_format`) and the box convention
(`model.box_format`), resolved here once for prepare (which writes every record's problem and
solution with them), plan and the report. Light: no torch, no transformers.

Box conventions of the Qwen-VL families, which `model.box_format: auto` picks by the base's
`model_type` (its config.json; the embedded base is a qwen2_5_vl; a hub id by its name):

| family | model_type | box_format | its own answer |
|---|---|---|---|
| Qwen2-VL | qwen2_vl | relative1000 | box_tokens `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` |
| Qwen2.5-VL | qwen2_5_vl | absolute (pixels of the resized image) | bbox_2d JSON |
| Qwen3-VL | qwen3_vl, qwen3_vl_moe | relative1000 (QwenLM/Qwen3-VL#1427) | bbox_2d JSON |

The answer format is a setting of its own (default `plain`, the paper's `[x1, y1, x2, y2]`):
every combination is allowed and the verifier reads all three formats. Setting `box_format`
against the base's family is allowed and warned about in one line before any work.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dcsft.errors import ConfigError
from dcsft.tasks import get_task, grounding
from dcsft.tasks.base import Task

FAMILY_BOX_FORMATS = {
    "qwen2_vl": "relative1000",
    "qwen2_5_vl": "absolute",
    "qwen3_vl": "relative1000",
    "qwen3_vl_moe": "relative1000",
}
EMBEDDED_MODEL_TYPE = "qwen2_5_vl"  # dcsft.models.embedded builds a Qwen2_5_VLForConditionalGeneration
HUB_NAMES = (  # a hub id's name -> its model_type; 2.5 before 2, which its pattern would not match anyway
    (re.compile(r"qwen2\.5-vl", re.IGNORECASE), "qwen2_5_vl"),
    (re.compile(r"qwen3-vl", re.IGNORECASE), "qwen3_vl"),
    (re.compile(r"qwen2-vl", re.IGNORECASE), "qwen2_vl"),
)


@dataclass(frozen=True)
class Family:
    model_type: str | None  # None: not found
    where: str  # where it was read, for messages


def base_family(base: str) -> Family:
    """The model_type of `model.base`: the embedded base's, a local folder's config.json, or a hub
    id's by its name (Qwen2-VL, Qwen2.5-VL, Qwen3-VL)."""
    if base == "embedded":
        return Family(EMBEDDED_MODEL_TYPE, "the embedded base")
    folder = Path(base).expanduser()
    if folder.is_dir():
        config = folder / "config.json"
        try:
            return Family(json.loads(config.read_text()).get("model_type"), str(config))
        except (OSError, ValueError, AttributeError):
            return Family(None, f"{config} (missing or not a JSON object)")
    for pattern, model_type in HUB_NAMES:
        if pattern.search(base.rsplit("/", 1)[-1]):
            return Family(model_type, f"the hub id {base}")
    return Family(None, f"the hub id {base} (its name holds none of Qwen2-VL, Qwen2.5-VL, Qwen3-VL)")


@dataclass(frozen=True)
class BoxConvention:
    box_format: str  # absolute | relative1000
    family: Family
    native: str | None  # the family's own convention (None: unknown family)

    def describe(self) -> str:
        frame = (
            "pixels of the image as the model sees it, resized"
            if self.box_format == "absolute"
            else "relative to the image, on a 0-1000 grid"
        )
        return f"{self.box_format} ({frame}): {self.why()}"

    def why(self) -> str:
        if self.native is None:
            return f"set in model.box_format ({self.family.where})"
        family = f"model_type {self.family.model_type} ({self.family.where})"
        if self.native == self.box_format:
            return f"the convention of {family}"
        return f"set in model.box_format, against the {self.native} convention of {family}"

    def contradiction(self) -> str | None:
        """The warning for a box_format set against the base's family, else None."""
        if self.native is None or self.native == self.box_format:
            return None
        return (
            f"model.box_format {self.box_format}: the base's family writes {self.native} boxes "
            f"(model_type {self.family.model_type}, {self.family.where}); kept as set"
        )


def box_convention(model) -> BoxConvention:
    """The box convention in force for a ModelConfig: `auto` resolved from the base's family."""
    family = base_family(model.base)
    native = FAMILY_BOX_FORMATS.get(family.model_type)
    if model.box_format != "auto":
        return BoxConvention(model.box_format, family, native)
    if native is None:
        what = f"model_type {family.model_type!r} ({family.where})" if family.model_type else family.where
        raise ConfigError(
            f"model.box_format auto: the box convention of {what} is unknown; set model.box_format "
            f"to absolute or relative1000"
        )
    return BoxConvention(native, family, native)


def default_prompt(task: str) -> str | None:
    """The task's first prompt preset (the built-in tasks': `paper`), None for a task without presets."""
    return next(iter(get_task(task).prompt_presets.values()), None)


def template_of(task: str, value: str | None) -> str | None:
    """A `prompts.<task>` value as a template: a preset's text, or the value itself; None (a task
    with no `prompts.<task>` setting, a user task) picks its first preset; None for a task without
    presets, whose records keep their own problem."""
    presets = get_task(task).prompt_presets
    if value is None or not presets:
        return default_prompt(task)
    return presets.get(value, value)


def template_problem(task: str, value: str) -> str | None:
    """Why a `prompts.<task>` value cannot be the task's template (None if it can)."""
    template = template_of(task, value)
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as err:
        return f"{value!r} is not a template ({err}; a literal brace is written {{{{ or }}}})"
    need = set(get_task(task).placeholders)
    if fields == need:
        return None
    takes = (
        "must hold " + ", ".join(f"{{{name}}}" for name in sorted(need)) if need else "takes no placeholder"
    )
    unknown = sorted(fields - need)
    has = f" and no other placeholder ({{{unknown[0]}}})" if unknown and need else ""
    presets = ", ".join(get_task(task).prompt_presets)
    return f"the {task} prompt {takes}{has} (got {value!r}; or name a preset: {presets})"


@dataclass(frozen=True)
class Wording:
    """How prepare words a task's records: the prompt template (None: a task without presets,
    whose records keep their own problem) and, for a task whose answers hold coordinates, the box
    convention and answer format of the solution."""

    task: str
    template: str | None
    box: BoxConvention | None = None  # tasks with coordinates only
    answer_format: str = "plain"

    @property
    def box_format(self) -> str:
        return self.box.box_format if self.box else "absolute"

    @cached_property
    def task_def(self) -> Task:
        """The task itself, resolved once: prepare words every record through it."""
        return get_task(self.task)

    @property
    def placeholders(self) -> frozenset[str]:
        return self.task_def.placeholders

    def box_meta(self) -> dict:
        """meta.box_format of a grounding record: written for relative1000 only, so that absolute
        records are those every prepare wrote before conventions (the verifier reads absent as
        absolute)."""
        return {"box_format": self.box_format} if self.box_format != "absolute" else {}

    def problem(self, meta: dict) -> str:
        return self.template.format(**self.task_def.template_fields(meta))

    def solution(self, meta: dict) -> str:
        """A grounding record's answer text, from its prepared meta (dcsft.tasks.grounding.answer_text)."""
        return grounding.answer_text(meta, self.box_format, self.answer_format)

    def worded(self, record: dict) -> bool:
        """Whether dcsft words this record: one whose meta holds the template's placeholders (a
        grounding record with its expression), or one asked with the task's paper prompt when the
        template has none (every dcsft loader's, and the authors' files'). A record file's own
        wording is kept."""
        if self.template is None:
            return False
        if self.placeholders:
            return self.placeholders <= set(record.get("meta") or {})
        return record["problem"] in (default_prompt(self.task), self.template)

    def reworded(self, record: dict) -> dict:
        """A loaded record with its problem in this wording where dcsft can word it (`worded`)."""
        if not self.worded(record):
            return record
        return {**record, "problem": self.problem(record.get("meta") or {})}

    def settings(self) -> dict:
        """What the records depend on, as prepare's stats.json and the report record it."""
        if self.template is None:
            return {}
        if not self.task_def.coordinates:
            return {"prompt": self.template}
        return {"prompt": self.template, "box_format": self.box_format, "answer_format": self.answer_format}

    def fingerprint_part(self) -> list[dict]:
        """[] for the paper's wording (absolute boxes, plain answers, the paper's prompts), so that
        runs prepared before these settings existed stay valid; else the settings."""
        paper = Wording(self.task, default_prompt(self.task)).settings()
        return [] if self.settings() == paper else [self.settings()]

    def lines(self) -> list[str]:
        """What plan and the report print."""
        lines = [f"prompt: {self.template!r}" if self.template else "prompt: each record's own"]
        if self.box:
            example = grounding.format_box((10, 20, 30, 40), self.answer_format, "the red star")
            lines += [f"boxes: {self.box.describe()}", f"answers: {self.answer_format}, e.g. {example}"]
        return lines


def wording(cfg) -> Wording:
    """The wording in force for a single-task study config; resolves `model.box_format: auto`
    for a task whose answers hold coordinates (grounding)."""
    template = template_of(cfg.task, getattr(cfg.prompts, cfg.task, None))
    if not get_task(cfg.task).coordinates:
        return Wording(cfg.task, template)
    return Wording(cfg.task, template, box_convention(cfg.model), cfg.prompts.answer_format)
