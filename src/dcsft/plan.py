"""plan: check a study config and say what it will cost, in seconds, without loading a model.

Reads: the config; the dataset's listings (every image is checked to exist; a seeded sample of
`--sample` images per split is decoded, since decoding a 100k-image set takes minutes: prepare
decodes them all); the model's config.json and safetensors headers (a local folder), or the
known size of Qwen2.5-VL-3B / 7B for their hub ids. Writes nothing.

Prints, per task: data roots and counts per split, missing and unreadable images (the first
few named, the total counted), label-map coverage, the prompt and (grounding) the box
convention and answer format in force, optimizer steps per stage, samples and
tokens generated, the sequences each generating stage holds at once at full length (prompt +
token limit), and a rough GPU-memory estimate per stage with its formula, their KV cache
included. Every blocking problem is one line `error: ...` and the exit code is 1 (a config that
does not load: 2).

Example: dcsft plan configs/paper/imagenet_3b.yaml --set data.root=/data/imagenet
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dcsft.config import StudyConfig, hard_mix_percent
from dcsft.conventions import wording
from dcsft.data import sources
from dcsft.data import splits as S
from dcsft.data.sources.common import Findings
from dcsft.errors import ConfigError
from dcsft.models.size import (
    ACTIVATION_BYTES,
    ModelInfo,
    activations,
    head_dim,
    inspect_model,
    kv_bytes_per_token,
    lora_params,
)

GB = 1e9
TEXT_TOKENS = 64  # prompt text, chat template and a short answer around the image, per sample (rough)


def n(value: float) -> str:
    return f"{value:,.0f}"


def count(value: float) -> str:
    """3.75 B, 82.2 M, 351 k."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f}"


def size(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


# ---------------------------------------------------------------- compute and memory


def visual_tokens(cfg: StudyConfig) -> int:
    return cfg.model.max_pixels // (28 * 28)


def sft_methods(cfg: StudyConfig) -> list[str]:
    return [m for m in cfg.train.methods if m != "grpo"]


def adaptive_note(p) -> str:
    if p.method != "adaptive":
        return ""
    settle = f", and settles samples whose first {p.adaptive_settle} draws agree" if p.adaptive_settle else ""
    return f"; adaptive stops medium samples early{settle}"


@dataclass(frozen=True)
class InFlight:
    """The sequences a generating stage holds at once on one GPU, each at its full length (the
    prompt's upper bound + every token its limit allows): what its KV cache grows to."""

    stage: str
    sequences: int
    prompt: int
    generated: int
    why: str  # the settings that make `sequences`
    engine: str  # hf: transformers' generate holds the whole batch; vllm pages it (never out of memory)

    @property
    def tokens(self) -> int:
        return self.sequences * (self.prompt + self.generated)


def grpo_sequences(cfg: StudyConfig, gpus: int) -> tuple[int, str]:
    """Completions TRL generates at once per GPU: its generation batch, per_device_train_batch_size
    (prompts_per_step x num_generations) x steps_per_generation (grad_accum unless grpo.extra says)."""
    g = cfg.grpo
    per_device = g.prompts_per_step * g.num_generations
    if g.extra.get("generation_batch_size"):
        return int(g.extra["generation_batch_size"]) // gpus, "grpo.extra generation_batch_size / GPUs"
    steps = int(g.extra.get("steps_per_generation") or g.grad_accum)
    source = "extra steps_per_generation" if g.extra.get("steps_per_generation") else "grad_accum"
    return (
        per_device * steps,
        f"{g.prompts_per_step} prompts x {g.num_generations} generations x {steps} {source}",
    )


def in_flight(cfg: StudyConfig, gpus: int) -> list[InFlight]:
    """Profile (not `exact`, which generates nothing), GRPO (when trained) and evaluate."""
    p, g, e = cfg.profile, cfg.grpo, cfg.evaluate
    prompt = visual_tokens(cfg) + TEXT_TOKENS
    out = []
    if p.method != "exact":
        per_sample = min(p.adaptive_round, p.k) if p.method == "adaptive" else p.k
        what = "adaptive_round" if p.method == "adaptive" else "k"
        out.append(
            InFlight(
                "profile",
                p.batch_size * per_sample,
                prompt,
                p.max_new_tokens,
                f"batch_size {p.batch_size} x {what} {per_sample}",
                p.engine,
            )
        )
    if "grpo" in cfg.train.methods:
        sequences, why = grpo_sequences(cfg, gpus)
        out.append(
            InFlight("grpo", sequences, prompt, g.max_completion_length, why, "vllm" if g.use_vllm else "hf")
        )
    out.append(
        InFlight("evaluate", e.batch_size, prompt, e.max_new_tokens, f"batch_size {e.batch_size}", e.engine)
    )
    return out


def planned_counts(cfg: StudyConfig, found: Findings) -> dict[str, int]:
    """Records per split: the survey's, else (the data could not be surveyed) as the config
    states them, 0 where the data decides."""
    return {
        name: found.splits[name].count if name in found.splits else cfg.data.known_size(role)
        for name, role in S.roles(cfg)
    }


def compute_lines(cfg: StudyConfig, found: Findings, gpus: int) -> list[str]:
    counts = planned_counts(cfg, found)
    n_cold, n_train = counts["coldstart"], counts["train"]
    n_eval = sum(counts.get(s, 0) for s in S.eval_splits(cfg))
    c, t, g, p, e = cfg.coldstart, cfg.train, cfg.grpo, cfg.profile, cfg.evaluate
    seeds = len(cfg.train_seeds)
    lines = [
        f"steps ({gpus} GPU{'s' if gpus > 1 else ''}: train.batch_size, coldstart.batch_size and "
        f"grpo.prompts_per_step are per GPU):"
    ]
    per_epoch = math.ceil(n_cold / (c.batch_size * c.grad_accum * gpus)) if n_cold else 0
    cold_steps = math.ceil(per_epoch * c.epochs)
    lines.append(
        f"  coldstart  {c.epochs:g} epoch(s) x ceil({n(n_cold)} samples / ({c.batch_size} x {c.grad_accum} "
        f"accum x {gpus} GPU)) = {n(cold_steps)} steps"
    )
    per_step = t.batch_size * t.grad_accum * gpus
    methods = sft_methods(cfg)
    if methods:
        lines.append(
            f"  train      {t.steps} steps x {t.batch_size} x {t.grad_accum} accum x {gpus} GPU = "
            f"{n(t.steps * per_step)} samples per run ({t.steps * per_step / max(n_train, 1):.2f} epochs of "
            f"the {n(n_train)}-sample training set for sft); {len(methods)} SFT-type method(s) x {seeds} "
            f"seed(s) = {len(methods) * seeds} runs"
        )
    if "grpo" in cfg.train.methods:
        prompts = g.steps * g.prompts_per_step * g.grad_accum * gpus
        lines.append(
            f"  grpo       {g.steps} steps x {g.prompts_per_step} prompts x {g.grad_accum} accum x {gpus} "
            f"GPU = {n(prompts)} prompts ({prompts / max(n_train, 1):.2f} epochs), x {seeds} seed(s)"
        )
    lines.append("generation (upper bounds: every response runs to its token limit):")
    draws = n_train * p.k
    if p.method == "exact":
        lines.append(
            f"  profile    exact: one teacher-forced pass per sample and accepted answer, nothing generated "
            f"({n(n_train)} samples)"
        )
    elif p.method == "loss":
        calibration = min(p.loss_calibration, n_train) * p.k
        lines.append(
            f"  profile    loss: one teacher-forced pass per sample over its gold answer ({n(n_train)} "
            f"samples), + {n(min(p.loss_calibration, n_train))} calibration samples x k {p.k} = "
            f"{n(calibration)} responses, <= {n(calibration * p.max_new_tokens)} tokens"
        )
    else:
        lines.append(
            f"  profile    {n(n_train)} samples x k {p.k} = {n(draws)} responses, <= "
            f"{n(draws * p.max_new_tokens)} "
            f"tokens (x max_new_tokens {p.max_new_tokens}){adaptive_note(p)}"
        )
    if "grpo" in cfg.train.methods:
        completions = g.steps * g.prompts_per_step * g.grad_accum * gpus * g.num_generations
        lines.append(
            f"  grpo       {g.steps} x {g.prompts_per_step} x {g.grad_accum} x {gpus} x {g.num_generations} "
            f"generations = {n(completions)} completions per seed, <= "
            f"{n(completions * g.max_completion_length)} "
            f"tokens (x max_completion_length {g.max_completion_length})"
        )
    models = 2 + len(cfg.train.methods) * seeds
    lines.append(
        f"  evaluate   {models} models (base, cold start, {len(cfg.train.methods)} method(s) x {seeds} "
        f"seed(s)) x {n(n_eval)} images = {n(models * n_eval)} greedy responses, <= "
        f"{n(models * n_eval * e.max_new_tokens)} tokens (x max_new_tokens {e.max_new_tokens})"
    )
    lines.append(
        f"  prompts    <= {visual_tokens(cfg):,} visual tokens per image (max_pixels "
        f"{cfg.model.max_pixels:,} / 28^2) + the prompt's text"
    )
    lines.append(
        f"sequences at full length, held at once per GPU (prompt <= {visual_tokens(cfg):,} visual + "
        f"{TEXT_TOKENS} text tokens, + its token limit):"
    )
    for f in in_flight(cfg, gpus):
        lines.append(
            f"  {f.stage:<10} {n(f.sequences)} sequences ({f.why}) x ({n(f.prompt)} prompt + "
            f"{n(f.generated)} generated = {n(f.prompt + f.generated)} tokens) = {n(f.tokens)} tokens"
        )
    return lines


def memory_lines(
    cfg: StudyConfig, model: ModelInfo, gpu_memory: float, found: Findings, gpus: int = 1
) -> list[str]:
    if model.params is None:
        return [f"memory: not estimated (parameter count of {model.source} unknown)"]
    P, arch = model.params, model.arch
    lines = [f"model: {model.source}: {count(P)} parameters, {model.how}"]
    if not arch.get("hidden") or not arch.get("layers") or not arch.get("heads"):
        return lines + ["memory: not estimated (no architecture numbers in config.json)"]
    wb = 4 if cfg.model.dtype == "float32" else 2
    seq = visual_tokens(cfg) + TEXT_TOKENS
    adapters = lora_params(cfg.train.lora, arch)
    per_token = kv_bytes_per_token(arch, wb)
    c, t, g = cfg.coldstart, cfg.train, cfg.grpo
    lines += [
        f"memory per GPU, rough (P = {count(P)} parameters, weights in {cfg.model.dtype} = {wb} B/param):",
        "  full fine-tune = 16 B/param (weights and grads in bf16, fp32 master copy, two AdamW moments) + "
        "activations",
        f"  LoRA           = {wb} B/param (frozen) + 16 B per adapter parameter ({count(adapters)} at r "
        f"{t.lora.r}) + activations",
        f"  inference      = {wb} B/param + KV cache",
        f"  activations    = tokens x hidden x layers x {ACTIVATION_BYTES} B + tokens x vocab x 4 B "
        f"(logits); ~{seq:,} tokens per sample ({visual_tokens(cfg):,} visual + {TEXT_TOKENS} text)",
        f"  KV cache       = 2 (K and V) x layers {arch['layers']} x kv_heads {arch['kv_heads']} x head_dim "
        f"{head_dim(arch)} x {wb} B = {per_token:,} B per token, x the tokens of the sequences at full "
        "length above (sequence length x sequences in flight)",
        f"  {'stage':<10} {'weights+state':>14} {'activations':>12} {'KV cache':>10} {'total':>10}",
    ]
    flights = {f.stage: f for f in in_flight(cfg, gpus)}
    kv = {stage: per_token * f.tokens for stage, f in flights.items()}
    micro = g.prompts_per_step * g.num_generations
    stages = [
        (
            "coldstart",
            (16 if gpus == 1 else 2 + 14 / gpus) * P,
            activations(arch, c.batch_size * seq),
            f"full fine-tune, batch {c.batch_size}"
            + (
                f", ZeRO-2 over {gpus} GPUs: (2 + 14 / {gpus}) B/param "
                f"(configs/accelerate/deepspeed_zero2.yaml)"
                if gpus > 1
                else ""
            ),
        ),
    ]
    if "profile" in flights:
        stages.append(("profile", wb * P, 0.0, f"inference, {flights['profile'].why}"))
    stages.append(
        (
            "train",
            wb * P + 16 * adapters,
            activations(arch, t.batch_size * seq),
            f"LoRA SFT, batch {t.batch_size}",
        )
    )
    if "grpo" in flights:
        stages.append(
            (
                "grpo",
                wb * P + 16 * adapters,
                activations(arch, micro * (seq + g.max_completion_length)),
                f"LoRA, {micro} completions per micro-batch; generates {flights['grpo'].sequences} at once "
                "first (no grad): total = the larger of activations and KV cache",
            )
        )
    stages.append(("evaluate", wb * P, 0.0, f"inference, {flights['evaluate'].why}"))
    for name, fixed, act, what in stages:
        cache = kv.get(name, 0.0)
        total = fixed + max(act, cache)  # a stage trains or generates, never both at once
        paged = name in flights and flights[name].engine == "vllm"
        what += "; vLLM pages the KV cache (fewer at once, not out of memory)" if paged and cache else ""
        shown = [size(v) if v else "-" for v in (act, cache)]
        lines.append(
            f"  {name:<10} {size(fixed):>14} {shown[0]:>12} {shown[1]:>10} {size(total):>10}  {what}"
        )
        if total <= gpu_memory * GB or (paged and cache >= act):
            continue
        if cache >= act:
            f = flights[name]
            found.warnings.append(
                f"{name}: weights {size(fixed)} + KV cache {size(cache)} ({n(f.sequences)} sequences of "
                f"{n(f.prompt + f.generated)} tokens) = about {total / GB:.0f} GB, more than one "
                f"{gpu_memory:g} GB GPU (--gpu-memory); lower {lower(name)}, or generate with vLLM, "
                "which pages the cache"
            )
        else:
            found.warnings.append(
                f"{name}: about {total / GB:.0f} GB estimated, more than one {gpu_memory:g} GB GPU "
                f"(--gpu-memory); lower its batch size or use a larger GPU"
            )
    if cfg.model.dtype != "float32":
        lines.append(
            f"  (dcsft loads the weights in {cfg.model.dtype}, so the Trainer keeps AdamW's moments in "
            f"{cfg.model.dtype} too: the cold start then needs about 8 B/param, {8 * P / GB:.1f} GB + "
            "activations)"
        )
    return lines


def lower(stage: str) -> str:
    """The settings that shrink a generating stage's KV cache."""
    return {
        "profile": "profile.batch_size or max_new_tokens (k sets each sample's share)",
        "grpo": "grpo.prompts_per_step, grad_accum (or extra steps_per_generation) or max_completion_length",
        "evaluate": "evaluate.batch_size or max_new_tokens",
    }[stage]


def power_lines(cfg: StudyConfig, found: Findings) -> list[str]:
    """The MDE the config will have for a method against SFT on the OOD mean (dcsft.report.stats)."""
    from dcsft.report import stats

    assumed = stats.PLANNING.get(cfg.task, stats.PLANNING["classification"])
    counts = planned_counts(cfg, found)
    items = [counts[s] for s in cfg.data.ood_splits]
    if not all(items):
        return ["power: not estimated (the OOD splits' sizes are known only from their data)"]
    seeds = len(cfg.train_seeds)
    mde = stats.mde([assumed["discordance"]] * len(items), items, seeds, assumed["seed_sd"])
    missing = (
        "; with one seed the report cannot measure the seed term, so the true MDE is larger (`--seeds 3`)"
        if seeds == 1
        else ""
    )
    return [
        "power (a method minus SFT on the OOD mean, 80% power, alpha 0.05):",
        f"  MDE {mde:.2f} points with {seeds} seed(s) and {', '.join(n(i) for i in items)} items per OOD "
        f"split{missing}",
        f"  planning assumption: the two models disagree on {assumed['discordance']:.0%} of items, "
        f"seed-to-seed sd of the difference {assumed['seed_sd']:.2f} points ({assumed['source']})",
    ]


# ---------------------------------------------------------------- the plan


def config_problems(cfg: StudyConfig) -> list[str]:
    from dcsft.tasks import get_task, profile_methods

    problems = []
    methods = profile_methods(get_task(cfg.task))
    if cfg.profile.method not in methods:
        problems.append(
            f"profile.method {cfg.profile.method}: the {cfg.task} verifier supports {', '.join(methods)}"
        )
    for method in cfg.train.methods:
        percent = hard_mix_percent(method)
        if percent is not None and percent <= 0:
            problems.append(f"train.methods: {method}: the hard share must be above 0 (sft-m is 0%)")
    return problems


def wording_lines(cfg: StudyConfig, found: Findings) -> list[str]:
    """The prompt in force and, for grounding, the box convention and answer format; a
    box_format set against the base's family is a warning, one auto cannot resolve a problem."""
    try:
        words = wording(cfg)
    except ConfigError as err:
        found.problems.append(str(err))
        return []
    contradiction = words.box.contradiction() if words.box else None
    if contradiction:
        found.warnings.append(contradiction)
    return [f"  {line}" for line in words.lines()]


def plan_task(cfg: StudyConfig, gpus: int = 1, sample: int = 16, gpu_memory: float = 80.0) -> Findings:
    """Everything `dcsft plan` prints for one task; `problems` are blocking."""
    found = sources.survey(cfg, sample)
    found.problems += config_problems(cfg)
    model = inspect_model(cfg.model.base, cfg.pretrain, found)
    report = [
        f"task {cfg.task}, source {cfg.data.source}, run directory {cfg.run_dir}"
        f"{' (exists)' if Path(cfg.run_dir).exists() else ''}"
    ]
    capped = S.is_real(cfg) and cfg.data.max_test
    if S.is_real(cfg):
        report.append(
            f"data: root {cfg.data.root_path() if cfg.data.root else '(none)'}; bad images: "
            f"{cfg.data.bad_images}{'; evaluation splits capped at ' + str(capped) if capped else ''}"
        )
    report += found.lines
    report += wording_lines(cfg, found)
    if found.splits:
        width = max(len(name) for name in found.splits)
        report.append(f"  {'split':<{width}}  {'records':>9}  {'missing':>8}  {'unreadable':>11}  source")
        for name, check in found.splits.items():
            shown = min(check.count, capped) if capped and name in S.eval_splits(cfg) else check.count
            unreadable = f"{len(check.unreadable)}/{check.sampled}" if check.sampled else "-"
            report.append(
                f"  {name:<{width}}  {n(shown):>9}  {n(len(check.missing)):>8}  {unreadable:>11}  "
                f"{check.where}" + (f"; {check.note}" if check.note else "")
            )
        if S.is_real(cfg):
            report.append(
                f"  (every image checked to exist; {sample} per split decoded, seeded: prepare decodes "
                "them all)"
            )
    report += compute_lines(cfg, found, gpus)
    report += power_lines(cfg, found)
    report += memory_lines(cfg, model, gpu_memory, found, gpus)
    found.lines = report
    return found


def plan_study(
    cfg: StudyConfig,
    task_cfgs: list[StudyConfig],
    gpus: int = 1,
    sample: int = 16,
    gpu_memory: float = 80.0,
    echo=print,
) -> list[str]:
    """Print the plan of each task; returns the blocking problems (each one line)."""
    problems = []
    for task_cfg in task_cfgs:
        found = plan_task(task_cfg, gpus, sample, gpu_memory)
        if len(task_cfgs) > 1:
            echo(f"== {task_cfg.task} ==")
        for line in found.lines:
            echo(line)
        for line in found.warnings:
            echo(f"warning: {line}")
        for line in found.problems:
            echo(f"error: {line}")
        problems += found.problems
    echo(f"plan: {len(problems)} blocking problem(s)" if problems else "plan: no blocking problems")
    return problems
