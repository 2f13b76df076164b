"""plan: check a study config and say what it will cost, in seconds, without loading a model.

Reads: the config; the dataset's listings (every image is checked to exist; a seeded sample of
`--sample` images per split is decoded, since decoding a 100k-image set takes minutes: prepare
decodes them all); the model's config.json and safetensors headers (a local folder), or the
known size of Qwen2.5-VL-3B / 7B for their hub ids. Writes nothing.

Prints, per task: data roots and counts per split, missing and unreadable images (the first
few named, the total counted), label-map coverage, optimizer steps per stage, samples and
tokens generated, and a rough GPU-memory estimate per stage with its formula. Every blocking
problem is one line `error: ...` and the exit code is 1 (a config that does not load: 2).

Example: dcsft plan configs/paper/imagenet_3b.yaml --set data.root=/data/imagenet
"""

from __future__ import annotations

import json
import math
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

from dcsft.config import StudyConfig, hard_mix_percent
from dcsft.errors import ConfigError
from dcsft.data import splits as S
from dcsft.data.records import image_problem
from dcsft.errors import DataError

SHOWN = 3  # missing / unreadable images named per split
GB = 1e9
TEXT_TOKENS = 64  # prompt text, chat template and a short answer around the image, per sample (rough)
ACTIVATION_BYTES = 34  # per token x hidden x layer, bf16, no recomputation (Korthikanti et al. 2022, w/o attention scores)
HUB_MODELS = {  # parameters and the architecture numbers the memory estimate needs (the models' config.json)
    "Qwen/Qwen2.5-VL-3B-Instruct": dict(params=3.75e9, hidden=2048, layers=36, heads=16, kv_heads=2, intermediate=11008,
                                        vocab=151936, v_hidden=1280, v_depth=32, v_intermediate=3420),
    "Qwen/Qwen2.5-VL-7B-Instruct": dict(params=8.29e9, hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944,
                                        vocab=152064, v_hidden=1280, v_depth=32, v_intermediate=3420),
}


@dataclass
class SplitCheck:
    name: str
    where: str
    count: int = 0  # records the split will have (prepare may still skip undecodable ones)
    images: list[Path] = field(default_factory=list)  # images to check
    listed: bool = False  # images come from a folder listing: they exist
    missing: list[str] = field(default_factory=list)  # image files not found
    lost: int = 0  # records left out for them (not in count)
    unreadable: list[str] = field(default_factory=list)
    sampled: int = 0
    note: str = ""


@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    splits: dict[str, SplitCheck] = field(default_factory=dict)


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


# ---------------------------------------------------------------- data, per source


def inspect_embedded(cfg: StudyConfig, out: Findings) -> None:
    for spec in S.split_specs(cfg):
        out.splits[spec.name] = SplitCheck(spec.name, f"drawn ({spec.style})", spec.size, listed=True)
    out.lines.append(f"  data: the embedded {cfg.task} world, drawn by prepare (seed {cfg.data.seed})")
    out.lines.append(f"  hard samples: {hard_sample_dials(cfg)}")


def hard_sample_dials(cfg: StudyConfig) -> str:
    """The world's hard-sample dials in force (README, "Hard samples of the kinds real data has")."""
    from dcsft.data import world

    d = cfg.data
    shared = f"label_noise {d.label_noise}, ambiguous {d.ambiguous} (train)"
    if cfg.task == "grounding":
        return f"{shared}; tiny {d.small}, occluded {d.occluded}, twin {d.twin} (every ID split)"
    novel = world.NOVEL_CLASSES[:d.novel_classes]
    return (f"{shared}; small {d.small}, context {d.context} (every photo split); "
            f"{len(novel)} class(es) the base knows only partly" + (f" ({', '.join(novel)})" if novel else ""))


def inspect_imagenet(cfg: StudyConfig, out: Findings) -> None:
    from dcsft.data import imagenet

    data = cfg.data
    names_path = S.names_file(cfg)
    names = imagenet.read_name_map(names_path)
    train_dir = S.image_folder(cfg, "train")
    by_class = imagenet.scan(train_dir)
    chosen = S.training_classes(cfg, by_class, names, names_path, train_dir)
    absent = [w for w in chosen if w not in by_class]
    if absent:
        raise DataError(f"{train_dir}: no images of {len(absent)} requested class(es) (first: {absent[0]})")
    imagenet.check_names(chosen, names, train_dir, str(names_path))
    named = sum(w in names for w in by_class)
    out.lines.append(f"  label map {names_path}: names {named} of the {len(by_class)} class folders of {train_dir}; "
                     f"the study uses {len(chosen)} classes, all named")
    S.check_per_class(cfg, by_class, chosen, train_dir)
    cold, train = data.per_class["coldstart"], data.per_class.get("train")
    pool = [p for w in chosen for p in by_class[w]]
    out.splits["coldstart"] = SplitCheck("coldstart", f"{train_dir} ({cold} per class)", cold * len(chosen), pool, True)
    train_count = train * len(chosen) if train else len(pool) - cold * len(chosen)
    out.splits["train"] = SplitCheck("train", f"{train_dir} ({train or 'the rest'} per class)", train_count, [], True,
                                     note="images checked with coldstart's (the same folder)")
    for name, role in S.roles(cfg)[2:]:
        folder, labels = S.check_image_folder(cfg, role, name)
        found = imagenet.scan(folder, labels)
        if role == "test":
            classes, per = chosen, data.per_class.get("test")
            missing = [w for w in chosen if w not in found]
            if missing:
                raise DataError(f"{folder}: no images of {len(missing)} training class(es) (first: {missing[0]})")
            short = {w: len(found[w]) for w in chosen if per and len(found[w]) < per}
            if short:
                wnid, have = next(iter(short.items()))
                raise DataError(f"{folder}/{wnid}: {per} test images per class requested, only {have}")
            coverage = ""
        else:
            classes = S.ood_classes(cfg, found, names, chosen, names_path, folder)
            if classes is None:
                classes = list(found)
                imagenet.check_names(classes, names, folder, str(names_path))
            per = None
            trained = sum(w in chosen for w in classes)
            coverage = f"; {len(classes)} of its {len(found)} classes ({data.ood_classes}), {trained} of them trained"
        images = [p for w in classes for p in found[w]]
        n_records = per * len(classes) if per else len(images)
        check = SplitCheck(name, f"{folder}{' + ' + str(labels) if labels else ''}", n_records, images, True)
        check.note = coverage.lstrip("; ")
        out.splits[name] = check


def inspect_paper(cfg: StudyConfig, out: Findings) -> None:
    from dcsft.data import paper

    manifest = S.manifest_file(cfg)
    rows = paper.read_manifest(manifest)
    root = S.root(cfg)
    roots = {S.PAPER_FOLDER[role]: S.data_path(cfg, value) for role, value in cfg.data.folders.items()}
    wanted = {S.PAPER_SPLIT[role]: name for name, role in S.roles(cfg)}
    for name, role in S.roles(cfg):
        out.splits[name] = SplitCheck(name, f"{S.image_folder(cfg, role)} ({manifest.name}: {S.PAPER_SPLIT[role]})")
    for row in rows:
        name = wanted.get(row["split"])
        if name is None:
            continue
        check = out.splits[name]
        image = paper.locate(row, root, roots)
        if image is None:
            check.missing.append(row["file"])
            check.lost += 1
        else:
            check.images.append(image)
            check.count += 1
    trained = {r["wnid"] for r in rows if r["split"] == "train"}
    out.lines.append(f"  label map: the manifest's names ({manifest}): {len(trained)} training classes, "
                     f"{len({r['wnid'] for r in rows})} classes in all, every one named")
    for check in out.splits.values():
        check.listed = True  # located: they exist


def inspect_records_file(cfg: StudyConfig, name: str, role: str, out: Findings) -> SplitCheck:
    from dcsft.data.formats import import_records
    from dcsft.tasks import grounding

    path = S.records_file(cfg, role)
    loaded = import_records(path)
    records = loaded.records
    check = SplitCheck(name, str(path), len(records), [Path(r["image"]) for r in records])
    if loaded.skipped:
        out.warnings.append(f"{loaded.skipped[0].line()}; prepare skips it and {len(loaded.skipped) - 1} more "
                            f"unusable record(s) of this file")
    if cfg.task == "grounding":
        bad = [r["id"] for r in records
               if grounding.parse_box(r["solution"]) is None and not ("box" in (r.get("meta") or {}))]
        if bad:
            check.note = f"{len(bad)} records without a box (first: {bad[0]})"
            out.warnings.append(f"{path}: {len(bad)} records have no box [x1, y1, x2, y2] in their solution "
                                f"(first: {bad[0]}); prepare skips them")
            check.count -= len(bad)
    else:
        check.note = f"{len({r['solution'].strip().lower() for r in records})} classes (answers)"
    return check


def inspect_records(cfg: StudyConfig, out: Findings) -> None:
    for name, role in S.roles(cfg):
        out.splits[name] = inspect_records_file(cfg, name, role, out)
    test = S.id_split(cfg.task)
    for a, b in [("coldstart", "train"), ("coldstart", test), ("train", test)]:
        shared = set(out.splits[a].images) & set(out.splits[b].images)
        if shared:
            raise DataError(f"{len(shared)} image(s) are in both {a} and {b} (first: {sorted(shared)[0]}); "
                            f"the splits must be disjoint")
    if cfg.task == "classification":
        out.lines.append("  label map: the answers of the record files are the classes")


def inspect_refcoco(cfg: StudyConfig, out: Findings) -> None:
    data = cfg.data
    inputs = S.refcoco_inputs(cfg)
    if data.refcoco_layout == "classic":
        pools = refcoco_classic_pools(cfg, inputs, out)
    else:
        pools = refcoco_parquet_pools(cfg, inputs, out)
    split_of = data.refcoco_splits
    shared = split_of["coldstart"] == split_of["train"]
    needed = data.n_coldstart + data.n_train if shared else data.n_train
    if pools[split_of["coldstart"]].records < data.n_coldstart:
        raise DataError(f"RefCOCO {split_of['coldstart']}: {data.n_coldstart} cold-start records requested "
                        f"(data.n_coldstart), only {pools[split_of['coldstart']].records} usable")
    if pools[split_of["train"]].records < needed:
        raise DataError(f"RefCOCO {split_of['train']}: {data.n_train} training records requested (data.n_train)"
                        f"{' after the ' + str(data.n_coldstart) + ' of the cold start' if shared else ''}, "
                        f"only {pools[split_of['train']].records} usable")
    shown = set()  # a pool's missing files are listed on the first split drawn from it
    for name, role in S.roles(cfg)[:3]:
        pool = pools[split_of[role]]
        n_records = {"coldstart": data.n_coldstart, "train": data.n_train}.get(role, pool.records)
        check = SplitCheck(name, f"RefCOCO {split_of[role]} ({data.refcoco_layout})", n_records, pool.images, True)
        if split_of[role] not in shown:
            check.missing, check.lost = pool.missing, pool.lost
            shown.add(split_of[role])
        out.splits[name] = check
    for name in data.ood_splits:
        out.splits[name] = inspect_records_file(cfg, name, name, out)
    if shared:
        out.lines.append(f"  cold start and training set: drawn from RefCOCO {split_of['train']}, the training draw "
                         f"leaving out every image of the cold start (so it needs somewhat more than "
                         f"{n(needed)} records)")


def refcoco_classic_pools(cfg: StudyConfig, inputs: dict, out: Findings) -> dict:
    """RefCOCO split -> what it gives, from the refs and instances files and the image folder's
    files (checked to exist; prepare decodes them)."""
    from dcsft.data import refcoco

    for key in ("refs", "instances"):
        if not inputs[key].is_file():
            raise DataError(f"{inputs[key]}: file not found (data.refcoco_{key})")
    if not inputs["images"].is_dir():
        raise DataError(f"{inputs['images']}: folder does not exist (data.refcoco_images)")
    pools, bad = refcoco.survey_classic(inputs["refs"], inputs["instances"], inputs["images"],
                                        set(cfg.data.refcoco_splits.values()), cfg.data.one_sentence_per_ref)
    counts = ", ".join(f"{split} {n(pool.records)} records of {n(len(pool.images))} images"
                       for split, pool in sorted(pools.items()))
    out.lines.append(f"  RefCOCO {inputs['refs']}: {counts}")
    if bad:
        line = f"{inputs['refs']}: {len(bad)} refs with a bad box or annotation (first: {bad[0]})"
        (out.problems if cfg.data.bad_images == "error" else out.warnings).append(
            line + ("" if cfg.data.bad_images == "error" else "; prepare skips them"))
    return pools


def refcoco_parquet_pools(cfg: StudyConfig, inputs: dict, out: Findings) -> dict:
    from dcsft.data import refcoco

    for path in inputs["parquet"]:
        if not path.is_file():
            raise DataError(f"{path}: file not found (data.refcoco_parquet)")
    pools = refcoco.survey_parquet(inputs["parquet"], set(cfg.data.refcoco_splits.values()),
                                   cfg.data.one_sentence_per_ref)
    out.lines.append("  RefCOCO parquet: " + ", ".join(f"{s} {n(pool.records)} records" for s, pool in sorted(pools.items()))
                     + " (images inside the files are decoded by prepare, not here)")
    return pools


INSPECT = {"embedded": inspect_embedded, "imagenet": inspect_imagenet, "paper": inspect_paper,
           "refcoco": inspect_refcoco, "records": inspect_records}


def check_images(cfg: StudyConfig, out: Findings, sample: int) -> None:
    """Existence of every image (unless listed from its folder) and decoding of a seeded sample."""
    for check in out.splits.values():
        if not check.listed:
            found: dict[Path, bool] = {}
            for image in check.images:
                if image not in found:
                    found[image] = image.is_file()
                    if not found[image]:
                        check.missing.append(str(image))
                check.lost += not found[image]
            check.count -= check.lost
        present = sorted({str(p) for p in check.images} - set(check.missing))
        chosen = random.Random(f"plan:{cfg.data.seed}:{check.name}").sample(present, min(sample, len(present)))
        check.sampled = len(chosen)
        check.unreadable = [problem for p in chosen if (problem := image_problem(Path(p)))]


def inspect_data(cfg: StudyConfig, sample: int) -> Findings:
    out = Findings()
    data = cfg.data
    try:
        S.check_data(cfg)
    except ConfigError as err:
        out.problems.append(str(err))
        return out
    if S.is_real(cfg) and data.root and not S.root(cfg).is_dir():
        out.problems.append(f"data.root {S.root(cfg)}: folder does not exist")
        return out
    try:
        INSPECT[data.source](cfg, out)
    except DataError as err:
        out.problems.append(str(err))
        return out
    check_images(cfg, out, sample)
    for check in out.splits.values():
        lost = check.lost + (len(check.unreadable) if check.sampled else 0)
        if check.missing:
            line = (f"{check.name}: {len(check.missing)} image file(s) missing, {check.lost} record(s) left out "
                    f"(first: {', '.join(check.missing[:SHOWN])})")
            (out.problems if data.bad_images == "error" or check.count == 0 else out.warnings).append(
                line + ("" if data.bad_images == "error" else "; prepare skips them"))
        if check.unreadable:
            line = (f"{check.name}: {len(check.unreadable)} of {check.sampled} sampled images do not decode "
                    f"(first: {check.unreadable[0]})")
            (out.problems if data.bad_images == "error" else out.warnings).append(
                line + ("" if data.bad_images == "error" else "; prepare skips them"))
        if check.count == 0 and not lost:
            out.problems.append(f"{check.name}: no records ({check.where})")
    return out


# ---------------------------------------------------------------- model


@dataclass
class ModelInfo:
    source: str
    params: float | None
    arch: dict
    how: str


def safetensors_params(folder: Path) -> int | None:
    """Exact parameter count from the safetensors headers (no weights are read)."""
    index = folder / "model.safetensors.index.json"
    files = (sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()}) if index.is_file()
             else sorted(folder.glob("*.safetensors")))
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def arch_of(config: dict) -> dict:
    text = config.get("text_config", config)
    vision = config.get("vision_config", {})
    arch = dict(hidden=text.get("hidden_size"), layers=text.get("num_hidden_layers"),
                heads=text.get("num_attention_heads"), kv_heads=text.get("num_key_value_heads"),
                intermediate=text.get("intermediate_size"), vocab=text.get("vocab_size") or config.get("vocab_size"),
                v_hidden=vision.get("hidden_size"), v_depth=vision.get("depth"),
                v_intermediate=vision.get("intermediate_size"))
    arch["kv_heads"] = arch["kv_heads"] or arch["heads"]
    return arch


def config_params(arch: dict, config: dict) -> float | None:
    """Parameters from config.json alone (used without safetensors): embeddings, attention, MLP,
    vision blocks; norms and biases left out."""
    try:
        h, layers, inter, vocab = arch["hidden"], arch["layers"], arch["intermediate"], arch["vocab"]
        kv = h // arch["heads"] * arch["kv_heads"]
        text = layers * (2 * h * h + 2 * h * kv + 3 * h * inter) + vocab * h
        if not config.get("tie_word_embeddings", config.get("text_config", {}).get("tie_word_embeddings", False)):
            text += vocab * h
        vision = (arch["v_depth"] or 0) * (4 * arch["v_hidden"] ** 2 + 3 * arch["v_hidden"] * arch["v_intermediate"]) \
            if arch["v_hidden"] else 0
        return float(text + vision)
    except (TypeError, KeyError, ZeroDivisionError):
        return None


def inspect_model(cfg: StudyConfig, out: Findings) -> ModelInfo:
    base = cfg.model.base
    if base == "embedded":
        from dcsft.models.base import PACKAGED, embedded_key, find_built

        folder = find_built(embedded_key(cfg.pretrain))
        if folder is None:
            out.warnings.append("model.base embedded: no built base for this pretrain config; the first stage that "
                                "needs it pretrains it once (see `dcsft pretrain`); sizes below are the packaged one's")
            folder = PACKAGED
        return local_model(Path(folder), f"embedded ({folder})", out)
    if base in HUB_MODELS:
        known = dict(HUB_MODELS[base])
        params = known.pop("params")
        return ModelInfo(base, params, known, "the published size of this hub model (not downloaded here)")
    folder = Path(base).expanduser()
    if folder.is_dir():
        return local_model(folder, str(folder.absolute()), out)
    if base.startswith(("/", ".", "~")) or folder.exists() or base.count("/") != 1:
        out.problems.append(f"model.base {base}: no such folder (a local model folder, a hub id org/name, or embedded)")
    else:
        out.warnings.append(f"model.base {base}: a hub id dcsft does not know the size of; it is downloaded at the "
                            f"first stage that loads it (memory not estimated)")
    return ModelInfo(base, None, {}, "unknown")


def local_model(folder: Path, label: str, out: Findings) -> ModelInfo:
    config_file = folder / "config.json"
    if not config_file.is_file():
        out.problems.append(f"model.base {folder}: no config.json (not a save_pretrained folder)")
        return ModelInfo(label, None, {}, "unknown")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        out.problems.append(f"{config_file}: not valid JSON ({err})")
        return ModelInfo(label, None, {}, "unknown")
    arch = arch_of(config)
    if config.get("model_type") not in ("qwen2_5_vl", "qwen2_vl"):
        out.warnings.append(f"{config_file}: model_type {config.get('model_type')!r}, dcsft expects a Qwen2.5-VL")
    try:
        exact = safetensors_params(folder)
    except (OSError, ValueError, KeyError, struct.error) as err:
        out.warnings.append(f"{folder}: safetensors headers unreadable ({type(err).__name__}); size from config.json")
        exact = None
    if exact is not None:
        return ModelInfo(label, float(exact), arch, "counted from the safetensors headers")
    return ModelInfo(label, config_params(arch, config), arch, "estimated from config.json")


# ---------------------------------------------------------------- compute and memory


def visual_tokens(cfg: StudyConfig) -> int:
    return cfg.model.max_pixels // (28 * 28)


def lora_params(cfg: StudyConfig, arch: dict) -> float:
    """Adapter parameters: r x (in + out) per adapted linear layer (all-linear: every linear
    of the language model and the vision tower; a list: the language model's named ones)."""
    r, a = cfg.train.lora.r, arch
    h, inter = a["hidden"], a["intermediate"]
    kv = h // a["heads"] * a["kv_heads"]
    text = {"q_proj": h + h, "k_proj": h + kv, "v_proj": h + kv, "o_proj": h + h,
            "gate_proj": h + inter, "up_proj": h + inter, "down_proj": inter + h}
    targets = cfg.train.lora.target_modules
    per_layer = sum(text.values()) if targets == "all-linear" else sum(v for k, v in text.items() if k in targets)
    total = a["layers"] * per_layer
    if targets == "all-linear" and a.get("v_hidden"):
        d, vi = a["v_hidden"], a["v_intermediate"]
        total += a["v_depth"] * (d + 3 * d + d + d + 2 * (d + vi) + vi + d)
    return float(r * total)


def activations(arch: dict, tokens: float) -> float:
    return tokens * arch["hidden"] * arch["layers"] * ACTIVATION_BYTES + tokens * arch["vocab"] * 4


def kv_cache(arch: dict, tokens: float, weight_bytes: int) -> float:
    head_dim = arch["hidden"] // arch["heads"]
    return tokens * arch["layers"] * 2 * arch["kv_heads"] * head_dim * weight_bytes


def sft_methods(cfg: StudyConfig) -> list[str]:
    return [m for m in cfg.train.methods if m != "grpo"]


def adaptive_note(p) -> str:
    if p.method != "adaptive":
        return ""
    settle = f", and settles samples whose first {p.adaptive_settle} draws agree" if p.adaptive_settle else ""
    return f"; adaptive stops medium samples early{settle}"


def compute_lines(cfg: StudyConfig, found: Findings, gpus: int) -> list[str]:
    counts = {name: check.count for name, check in found.splits.items()}
    n_cold, n_train = counts.get("coldstart", cfg.data.n_coldstart), counts.get("train", cfg.data.n_train)
    n_eval = sum(counts.get(s, 0) for s in S.eval_splits(cfg))
    c, t, g, p, e = cfg.coldstart, cfg.train, cfg.grpo, cfg.profile, cfg.evaluate
    seeds = len(cfg.train_seeds)
    lines = [f"steps ({gpus} GPU{'s' if gpus > 1 else ''}: train.batch_size, coldstart.batch_size and "
             f"grpo.prompts_per_step are per GPU):"]
    per_epoch = math.ceil(n_cold / (c.batch_size * c.grad_accum * gpus)) if n_cold else 0
    cold_steps = math.ceil(per_epoch * c.epochs)
    lines.append(f"  coldstart  {c.epochs:g} epoch(s) x ceil({n(n_cold)} samples / ({c.batch_size} x {c.grad_accum} "
                 f"accum x {gpus} GPU)) = {n(cold_steps)} steps")
    per_step = t.batch_size * t.grad_accum * gpus
    methods = sft_methods(cfg)
    if methods:
        lines.append(f"  train      {t.steps} steps x {t.batch_size} x {t.grad_accum} accum x {gpus} GPU = "
                     f"{n(t.steps * per_step)} samples per run ({t.steps * per_step / max(n_train, 1):.2f} epochs of "
                     f"the {n(n_train)}-sample training set for sft); {len(methods)} SFT-type method(s) x {seeds} "
                     f"seed(s) = {len(methods) * seeds} runs")
    if "grpo" in cfg.train.methods:
        prompts = g.steps * g.prompts_per_step * g.grad_accum * gpus
        lines.append(f"  grpo       {g.steps} steps x {g.prompts_per_step} prompts x {g.grad_accum} accum x {gpus} GPU "
                     f"= {n(prompts)} prompts ({prompts / max(n_train, 1):.2f} epochs), x {seeds} seed(s)")
    lines.append("generation (upper bounds: every response runs to its token limit):")
    draws = n_train * p.k
    if p.method == "exact":
        lines.append(f"  profile    exact: one teacher-forced pass per sample and accepted answer, nothing generated "
                     f"({n(n_train)} samples)")
    else:
        lines.append(f"  profile    {n(n_train)} samples x k {p.k} = {n(draws)} responses, <= {n(draws * p.max_new_tokens)} "
                     f"tokens (x max_new_tokens {p.max_new_tokens}){adaptive_note(p)}")
    if "grpo" in cfg.train.methods:
        completions = g.steps * g.prompts_per_step * g.grad_accum * gpus * g.num_generations
        lines.append(f"  grpo       {g.steps} x {g.prompts_per_step} x {g.grad_accum} x {gpus} x {g.num_generations} "
                     f"generations = {n(completions)} completions per seed, <= {n(completions * g.max_completion_length)} "
                     f"tokens (x max_completion_length {g.max_completion_length})")
    models = 2 + len(cfg.train.methods) * seeds
    lines.append(f"  evaluate   {models} models (base, cold start, {len(cfg.train.methods)} method(s) x {seeds} seed(s)) "
                 f"x {n(n_eval)} images = {n(models * n_eval)} greedy responses, <= "
                 f"{n(models * n_eval * e.max_new_tokens)} tokens (x max_new_tokens {e.max_new_tokens})")
    lines.append(f"  prompts    <= {visual_tokens(cfg):,} visual tokens per image (max_pixels {cfg.model.max_pixels:,} / 28^2) "
                 f"+ the prompt's text")
    return lines


def memory_lines(cfg: StudyConfig, model: ModelInfo, gpu_memory: float, found: Findings, gpus: int = 1) -> list[str]:
    if model.params is None:
        return [f"memory: not estimated (parameter count of {model.source} unknown)"]
    P, arch = model.params, model.arch
    lines = [f"model: {model.source}: {count(P)} parameters, {model.how}"]
    if not arch.get("hidden") or not arch.get("layers") or not arch.get("heads"):
        return lines + ["memory: not estimated (no architecture numbers in config.json)"]
    wb = 4 if cfg.model.dtype == "float32" else 2
    seq = visual_tokens(cfg) + TEXT_TOKENS
    adapters = lora_params(cfg, arch)
    c, t, g, p, e = cfg.coldstart, cfg.train, cfg.grpo, cfg.profile, cfg.evaluate
    lines += [
        f"memory per GPU, rough (P = {count(P)} parameters, weights in {cfg.model.dtype} = {wb} B/param):",
        "  full fine-tune = 16 B/param (weights and grads in bf16, fp32 master copy, two AdamW moments) + activations",
        f"  LoRA           = {wb} B/param (frozen) + 16 B per adapter parameter ({count(adapters)} at r {t.lora.r}) "
        f"+ activations",
        f"  inference      = {wb} B/param + KV cache",
        f"  activations    = tokens x hidden x layers x {ACTIVATION_BYTES} B + tokens x vocab x 4 B (logits); "
        f"~{seq:,} tokens per sample ({visual_tokens(cfg):,} visual + {TEXT_TOKENS} text)",
        f"  KV cache       = tokens x layers x 2 x kv_heads x head_dim x {wb} B",
        f"  {'stage':<10} {'weights+state':>14} {'act./KV':>10} {'total':>10}",
    ]
    gen = g.prompts_per_step * g.num_generations
    stages = [
        ("coldstart", (16 if gpus == 1 else 2 + 14 / gpus) * P, activations(arch, c.batch_size * seq),
         f"full fine-tune, batch {c.batch_size}" + (f", ZeRO-2 over {gpus} GPUs: (2 + 14 / {gpus}) B/param "
                                                    f"(configs/accelerate/deepspeed_zero2.yaml)" if gpus > 1 else "")),
        ("profile", wb * P, kv_cache(arch, p.batch_size * p.k * (seq + p.max_new_tokens), wb),
         f"inference, {p.batch_size} x k {p.k} sequences"),
        ("train", wb * P + 16 * adapters, activations(arch, t.batch_size * seq), f"LoRA SFT, batch {t.batch_size}"),
    ]
    if "grpo" in cfg.train.methods:
        tokens = gen * (seq + g.max_completion_length)
        stages.append(("grpo", wb * P + 16 * adapters, activations(arch, tokens) + kv_cache(arch, tokens, wb),
                       f"LoRA, {gen} completions per micro-batch (+ their KV cache)"))
    stages.append(("evaluate", wb * P, kv_cache(arch, e.batch_size * (seq + e.max_new_tokens), wb),
                   f"inference, batch {e.batch_size}"))
    for name, fixed, variable, what in stages:
        total = fixed + variable
        lines.append(f"  {name:<10} {size(fixed):>14} {size(variable):>10} {size(total):>10}  {what}")
        if total > gpu_memory * GB:
            found.warnings.append(f"{name}: about {total / GB:.0f} GB estimated, more than one {gpu_memory:g} GB GPU "
                                  f"(--gpu-memory); lower its batch size or use a larger GPU")
    if cfg.model.dtype != "float32":
        lines.append(f"  (dcsft loads the weights in {cfg.model.dtype}, so the Trainer keeps AdamW's moments in "
                     f"{cfg.model.dtype} too: the cold start then needs about 8 B/param, {8 * P / GB:.1f} GB + activations)")
    return lines


def power_lines(cfg: StudyConfig, found: Findings) -> list[str]:
    """The MDE the config will have for a method against SFT on the OOD mean (dcsft.report.stats)."""
    from dcsft.report import stats

    assumed = stats.PLANNING.get(cfg.task, stats.PLANNING["classification"])
    items = [found.splits[s].count if s in found.splits else cfg.data.n_test for s in cfg.data.ood_splits]
    seeds = len(cfg.train_seeds)
    mde = stats.mde([assumed["discordance"]] * len(items), items, seeds, assumed["seed_sd"])
    missing = ("; with one seed the report cannot measure the seed term, so the true MDE is larger "
               "(`--seeds 3`)" if seeds == 1 else "")
    return ["power (a method minus SFT on the OOD mean, 80% power, alpha 0.05):",
            f"  MDE {mde:.2f} points with {seeds} seed(s) and {', '.join(n(i) for i in items)} items per OOD split{missing}",
            f"  planning assumption: the two models disagree on {assumed['discordance']:.0%} of items, seed-to-seed "
            f"sd of the difference {assumed['seed_sd']:.2f} points ({assumed['source']})"]


# ---------------------------------------------------------------- the plan


def config_problems(cfg: StudyConfig) -> list[str]:
    from dcsft.tasks import get_task, profile_methods

    problems = []
    methods = profile_methods(get_task(cfg.task))
    if cfg.profile.method not in methods:
        problems.append(f"profile.method {cfg.profile.method}: the {cfg.task} verifier supports {', '.join(methods)}")
    for method in cfg.train.methods:
        percent = hard_mix_percent(method)
        if percent is not None and percent <= 0:
            problems.append(f"train.methods: {method}: the hard share must be above 0 (sft-m is 0%)")
    return problems


def plan_task(cfg: StudyConfig, gpus: int = 1, sample: int = 16, gpu_memory: float = 80.0) -> Findings:
    """Everything `dcsft plan` prints for one task; `problems` are blocking."""
    found = inspect_data(cfg, sample)
    found.problems += config_problems(cfg)
    model = inspect_model(cfg, found)
    report = [f"task {cfg.task}, source {cfg.data.source}, run directory {cfg.run_dir}"
              f"{' (exists)' if Path(cfg.run_dir).exists() else ''}"]
    if S.is_real(cfg):
        report.append(f"data: root {S.root(cfg) if cfg.data.root else '(none)'}; bad images: {cfg.data.bad_images}"
                      f"{'; evaluation splits capped at ' + str(cfg.data.max_test) if cfg.data.max_test else ''}")
    report += found.lines
    if found.splits:
        width = max(len(name) for name in found.splits)
        report.append(f"  {'split':<{width}}  {'records':>9}  {'missing':>8}  {'unreadable':>11}  source")
        for name, check in found.splits.items():
            shown = min(check.count, cfg.data.max_test) if cfg.data.max_test and name in S.eval_splits(cfg) \
                and S.is_real(cfg) else check.count
            unreadable = f"{len(check.unreadable)}/{check.sampled}" if check.sampled else "-"
            report.append(f"  {name:<{width}}  {n(shown):>9}  {n(len(check.missing)):>8}  {unreadable:>11}  {check.where}"
                          + (f"; {check.note}" if check.note else ""))
        if S.is_real(cfg):
            report.append(f"  (every image checked to exist; {sample} per split decoded, seeded: prepare decodes them all)")
    report += compute_lines(cfg, found, gpus)
    report += power_lines(cfg, found)
    report += memory_lines(cfg, model, gpu_memory, found, gpus)
    found.lines = report
    return found


def plan_study(cfg: StudyConfig, task_cfgs: list[StudyConfig], gpus: int = 1, sample: int = 16,
               gpu_memory: float = 80.0, echo=print) -> list[str]:
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
