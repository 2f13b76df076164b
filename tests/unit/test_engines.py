"""Models, engines and launches beyond the CPU default, checked on this CPU: model families and
the checks that refuse GPU-only settings in one line, vision-tower freezing on the tiny model,
the vLLM engine's request/response mapping (against a stand-in `vllm` module), TRL's vLLM and
DeepSpeed/FSDP pass-through, and a dry run of every shipped accelerate config."""

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForImageTextToText

from dcsft import coldstart, launch
from dcsft.config import NOT_IN_FINGERPRINT, GrpoConfig, LoraConfig, StudyConfig, load_config
from dcsft.data import world
from dcsft.errors import ConfigError
from dcsft.models import loading, vllm_engine
from dcsft.models.base import PACKAGED
from dcsft.models.generate import Sampling, prompt_text, respond
from dcsft.models.loading import VISION_LORA_EXCLUDE, check_model, freeze_vision, is_vision_tower, load_model
from dcsft.rundir import fingerprint, write_json
from dcsft.tasks import classification
from dcsft.tasks.classification import Classification
from dcsft.train import grpo, sft

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE = ROOT / "configs" / "accelerate"
MODEL_CFG = StudyConfig().model.model_copy(update={"max_pixels": 7056, "min_pixels": 3136})
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
NO_DEEPSPEED = "deepspeed is not installed here (a CUDA-machine package); the JSON is checked without it"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rows = []
    for index in range(4):
        image, meta = world.draw_pool_item(0, "test-engines", index, "photo", size=84)
        image.save(folder / f"{index}.png")
        rows.append(
            {
                "id": f"r{index}",
                "problem": classification.PROMPT,
                "solution": meta["label"],
                "image": str(folder / f"{index}.png"),
            }
        )
    return rows


# --- model settings this machine cannot run: one line each ---------------------------------------


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_without_a_gpu_is_one_line(dtype):
    with pytest.raises(ConfigError, match=f"model.dtype={dtype} needs a CUDA GPU.*model.dtype=float32"):
        check_model(MODEL_CFG.model_copy(update={"dtype": dtype}), cuda=False)


def test_flash_attention_needs_cuda_the_package_and_half_precision(monkeypatch):
    flash = MODEL_CFG.model_copy(update={"attn_implementation": "flash_attention_2", "dtype": "float16"})
    with pytest.raises(ConfigError, match="flash_attention_2 needs a CUDA GPU.*use sdpa"):
        check_model(flash.model_copy(update={"dtype": "float32"}), cuda=False)
    if importlib.util.find_spec("flash_attn") is None:
        with pytest.raises(ConfigError, match="flash-attn is not installed"):
            check_model(flash, cuda=True)
    monkeypatch.setattr(loading.importlib.util, "find_spec", lambda name: object())  # as if installed
    check_model(flash, cuda=True)
    with pytest.raises(ConfigError, match="bfloat16 or float16 only"):
        check_model(flash.model_copy(update={"dtype": "float32"}), cuda=True)


def test_unknown_attention_is_refused_and_defaults_pass():
    with pytest.raises(ConfigError, match="unknown"):
        check_model(MODEL_CFG.model_copy(update={"attn_implementation": "fast"}), cuda=False)
    for attn in ("sdpa", "eager", "kernels-community/flash-attn"):
        check_model(MODEL_CFG.model_copy(update={"attn_implementation": attn}), cuda=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_load_model_checks_before_loading():
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        load_model("/no/such/folder", MODEL_CFG.model_copy(update={"dtype": "bfloat16"}))


# --- model families and the vision tower ---------------------------------------------------------

ROPE = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    num_key_value_heads=1,
    vocab_size=128,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
FAMILIES = {
    "qwen2_vl": dict(
        text_config=dict(TEXT, rope_parameters=ROPE),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2),
    ),
    "qwen2_5_vl": dict(
        text_config=dict(TEXT, rope_parameters=ROPE),
        vision_config=dict(
            depth=1,
            hidden_size=32,
            out_hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            fullatt_block_indexes=[0],
        ),
    ),
    "qwen3_vl": dict(
        text_config=dict(TEXT, head_dim=16, rope_parameters={**ROPE, "mrope_interleaved": True}),
        vision_config=dict(
            depth=1,
            hidden_size=32,
            out_hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            deepstack_visual_indexes=[0],
        ),
    ),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_qwen_vl_family_loads_and_freezes_its_vision_tower(family, tmp_path):
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if family not in CONFIG_MAPPING:
        pytest.skip(f"this transformers has no {family}")
    torch.manual_seed(0)
    AutoModelForImageTextToText.from_config(AutoConfig.for_model(family, **FAMILIES[family])).save_pretrained(
        tmp_path
    )
    model = load_model(tmp_path, MODEL_CFG.model_copy(update={"attn_implementation": "eager"}))
    assert model.config.model_type == family and type(model).__name__.endswith("ForConditionalGeneration")
    names = [n for n, _ in model.named_parameters()]
    assert freeze_vision(model) > 0
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n in names if is_vision_tower(n)}
    assert any(".visual.blocks." in n for n in frozen) and not any("merger" in n for n in frozen)
    assert any("merger" in n for n in names)  # the aligner stays trainable


def test_vision_tower_names_and_lora_exclusion_agree():
    import re

    tower = [
        "model.visual.patch_embed.proj",
        "model.visual.blocks.0.attn.qkv",
        "model.visual.blocks.1.mlp.down_proj",
        "base_model.model.model.visual.blocks.0.attn.qkv.lora_A.default",
    ]
    kept = [
        "model.visual.merger.mlp.0",
        "model.visual.deepstack_merger_list.0.linear_fc1",
        "model.language_model.layers.0.self_attn.q_proj",
        "lm_head",
        "model.vision_tower.multi_modal_projector",
    ]
    for name in tower:
        assert is_vision_tower(name) and re.fullmatch(VISION_LORA_EXCLUDE, name), name
    for name in kept:
        assert not is_vision_tower(name) and not re.fullmatch(VISION_LORA_EXCLUDE, name), name


def test_a_model_without_a_vision_tower_cannot_freeze_one():
    with pytest.raises(ConfigError, match="no vision tower"):
        freeze_vision(torch.nn.Linear(2, 2))


# --- freezing on the tiny model: one training step -----------------------------------------------


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_full_fine_tune_with_frozen_vision_changes_everything_else(records, tmp_path):
    """The cold start's path (full fine-tune), saved through save_to and loaded back."""
    model = load_model(PACKAGED, MODEL_CFG).train()
    before = _snapshot(model)
    run = sft.SFTRun(
        output_dir=tmp_path,
        lr=1e-2,
        batch_size=2,
        max_steps=1,
        warmup_ratio=0,
        freeze_vision=True,
        save_to=tmp_path / "model",
    )
    trained, stats = sft.train(model, loading.load_processor(PACKAGED, MODEL_CFG), records, run)
    vision = [n for n in before if is_vision_tower(n)]
    assert vision and stats["vision_frozen_parameters"] == sum(before[n].numel() for n in vision)
    params = dict(trained.named_parameters())
    assert all(not params[n].requires_grad and params[n].grad is None for n in vision)
    assert all(torch.equal(before[n], params[n]) for n in vision)
    changed = {n for n in before if not torch.equal(before[n], params[n])}
    assert any("merger" in n for n in changed) and any("language_model" in n for n in changed)
    reloaded = dict(load_model(tmp_path / "model", MODEL_CFG).named_parameters())
    assert all(torch.equal(before[n], reloaded[n]) for n in vision)
    assert all(torch.equal(params[n], reloaded[n]) for n in changed)
    assert (tmp_path / "model" / "preprocessor_config.json").exists() or (
        tmp_path / "model" / "processor_config.json"
    ).exists()


def test_lora_with_frozen_vision_puts_no_adapter_on_the_tower(records, tmp_path):
    model = load_model(PACKAGED, MODEL_CFG).train()
    run = sft.SFTRun(
        output_dir=tmp_path,
        lr=1e-2,
        batch_size=2,
        max_steps=1,
        warmup_ratio=0,
        lora=LoraConfig(r=4, alpha=8),
        freeze_vision=True,
    )
    trained, _ = sft.train(model, loading.load_processor(PACKAGED, MODEL_CFG), records, run)
    lora = [n for n, _ in trained.named_parameters() if "lora_" in n]
    assert lora and not any(is_vision_tower(n) for n in lora)
    assert any("merger" in n for n in lora)
    assert not any(p.requires_grad for n, p in trained.named_parameters() if is_vision_tower(n))


def test_grpo_with_frozen_vision_trains_no_vision_parameter(records, tmp_path):
    model = load_model(PACKAGED, MODEL_CFG).train()
    g = GrpoConfig(
        steps=1, prompts_per_step=2, num_generations=2, grad_accum=1, max_completion_length=4, save_steps=None
    )
    trained, stats = grpo.train(
        model,
        loading.load_processor(PACKAGED, MODEL_CFG),
        records,
        Classification().reward,
        g,
        LoraConfig(r=4, alpha=8),
        tmp_path,
        seed=0,
        freeze_vision=True,
        save_to=tmp_path / "adapter",
    )
    assert stats["steps"] == 1 and stats["vision_frozen_parameters"] > 0
    assert (tmp_path / "adapter" / "adapter_config.json").exists() and (tmp_path / "loss.jsonl").exists()
    trainable = [n for n, p in trained.named_parameters() if p.requires_grad]
    assert trainable and not any(is_vision_tower(n) for n in trainable)


def test_cold_start_fingerprint_changes_only_when_freezing(tmp_path):
    cfg = StudyConfig(run_dir=str(tmp_path))
    write_json(tmp_path / "01_prepare" / "DONE", {"fingerprint": "prepared"})
    before_option = fingerprint(
        "coldstart",
        "prepared",
        "base",
        cfg.model.model_dump(exclude=NOT_IN_FINGERPRINT),
        cfg.coldstart.model_dump(exclude=NOT_IN_FINGERPRINT),
        cfg.seed,
    )
    write_json(tmp_path / "00_pretrain" / "DONE", {"fingerprint": "pretrained"})
    write_json(tmp_path / "00_pretrain" / "base.json", {"path": "unused", "identity": "base"})
    assert coldstart.stage_fingerprint(cfg) == before_option
    frozen = cfg.model_copy(update={"train": cfg.train.model_copy(update={"freeze_vision": True})})
    assert coldstart.stage_fingerprint(frozen) != before_option


# --- vLLM: absent here, one line; present (a stand-in), the request/response mapping --------------

MISSING = "vllm is not installed; pip install vllm on a CUDA machine"


@pytest.fixture
def no_vllm(monkeypatch):
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    if vllm_engine.vllm_available():
        pytest.skip("vllm is installed here")


@pytest.mark.parametrize(
    "override, setting",
    [
        ("profile.engine=vllm", "profile.engine=vllm"),
        ("evaluate.engine=vllm", "evaluate.engine=vllm"),
        ("grpo.use_vllm=true", "grpo.use_vllm=true"),
    ],
)
def test_asking_for_vllm_without_it_is_one_line_at_plan_time(no_vllm, override, setting):
    cfg = load_config(None, [override])
    with pytest.raises(ConfigError) as err:
        launch.preflight(cfg, cuda=True)
    assert str(err.value) == f"{setting}: {MISSING}"


def test_vllm_engine_and_grpo_refuse_before_any_work_without_vllm(no_vllm):
    with pytest.raises(ConfigError, match=f"profile.engine=vllm: {MISSING}"):
        vllm_engine.load_generator("vllm", "/not/loaded", MODEL_CFG, setting="profile.engine")
    with pytest.raises(ConfigError, match=f"grpo.use_vllm=true: {MISSING}"):
        grpo.train(
            None, None, [], Classification().reward, GrpoConfig(use_vllm=True), LoraConfig(), Path("x"), 0
        )


def test_grpo_vllm_settings_reach_trls_config(tmp_path):
    args = grpo.trl_config(
        GrpoConfig(
            use_vllm=True,
            vllm_mode="server",
            prompts_per_step=2,
            num_generations=4,
            extra={"vllm_server_port": 8123},
        ),
        tmp_path,
        0,
    )
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_port) == (True, "server", 8123)
    assert grpo.trl_config(GrpoConfig(prompts_per_step=2, num_generations=4), tmp_path, 0).use_vllm is False


class FakeLLM:
    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append((prompts, sampling_params))
        return [
            types.SimpleNamespace(
                prompt_token_ids=list(range(10 + i)),
                outputs=[
                    types.SimpleNamespace(text=f"{i}-{j}", token_ids=[7] * (j + 1)) for j in range(params.n)
                ],
            )
            for i, params in enumerate(sampling_params)
        ]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kwargs: types.SimpleNamespace(**kwargs)
    monkeypatch.setitem(sys.modules, "vllm", module)
    yield module
    vllm_engine.close_all()


def test_vllm_sampling_request_and_mapping_to_generated(fake_vllm, records):
    engine = vllm_engine.load_generator(
        "vllm",
        PACKAGED,
        MODEL_CFG,
        seed=3,
        engine_args={"tensor_parallel_size": 2, "gpu_memory_utilization": 0.5},
    )
    assert engine.llm.kwargs == {
        "model": str(PACKAGED),
        "dtype": "float32",
        "seed": 3,
        "limit_mm_per_prompt": {"image": 1},
        "mm_processor_kwargs": {"min_pixels": 3136, "max_pixels": 7056},
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.5,
    }
    sampling = Sampling(
        do_sample=True, num_return_sequences=8, temperature=0.9, top_p=0.95, top_k=50, max_new_tokens=16
    )
    out = respond(engine, None, records, sampling, seed=3, batch_index=5)  # generate.respond hands it over
    prompts, params = engine.llm.calls[-1]
    assert [vars(p) for p in params] == [
        {
            "n": 8,
            "temperature": 0.9,
            "top_p": 0.95,
            "top_k": 50,
            "max_tokens": 16,
            "seed": vllm_engine.record_seed(3, r["id"]),
        }
        for r in records
    ]
    assert [p["prompt"] for p in prompts] == [prompt_text(engine.processor, r["problem"]) for r in records]
    assert all(isinstance(p["multi_modal_data"]["image"], Image.Image) for p in prompts)
    assert out.responses == [[f"{i}-{j}" for j in range(8)] for i in range(len(records))]
    assert out.prompt_tokens == [10 + i for i in range(len(records))]
    assert out.generated_tokens == [36] * len(records)  # 1 + 2 + ... + 8 tokens
    assert out.forwarded_tokens == [10 + i + 36 for i in range(len(records))]


def test_vllm_greedy_no_top_k_and_seeds(fake_vllm):
    greedy = vllm_engine.sampling_params(fake_vllm, Sampling(max_new_tokens=32), seed=1)
    assert vars(greedy) == {
        "n": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": -1,
        "max_tokens": 32,
        "seed": 1,
    }
    assert vllm_engine.sampling_params(fake_vllm, Sampling(do_sample=True, top_k=0), seed=1).top_k == -1
    seed = vllm_engine.record_seed
    assert seed(0, "a") == seed(0, "a") and seed(0, "a") != seed(1, "a") and seed(0, "a") != seed(0, "b")
    assert 0 <= seed(0, "a") < 2**56


def test_vllm_engine_merges_an_adapter_and_holds_one_engine_at_a_time(fake_vllm, tmp_path):
    from peft import get_peft_model

    adapter = tmp_path / "adapter"
    get_peft_model(
        load_model(PACKAGED, MODEL_CFG), sft.peft_config(LoraConfig(r=2, alpha=4))
    ).save_pretrained(adapter)
    first = vllm_engine.load_generator("vllm", PACKAGED, MODEL_CFG, adapter=adapter)
    merged = Path(first.llm.kwargs["model"])
    assert (
        merged != PACKAGED
        and (merged / "config.json").exists()
        and not (merged / "adapter_config.json").exists()
    )
    second = vllm_engine.load_generator("vllm", PACKAGED, MODEL_CFG)
    assert first.llm is None and not merged.exists()  # the first engine was closed for the second
    assert second.llm.kwargs["model"] == str(PACKAGED)


def test_hf_engine_is_load_model():
    assert (
        type(vllm_engine.load_generator("hf", PACKAGED, MODEL_CFG)).__name__
        == "Qwen2_5_VLForConditionalGeneration"
    )
    with pytest.raises(ConfigError, match="unknown engine"):
        vllm_engine.load_generator("tgi", PACKAGED, MODEL_CFG)


def test_vllm_profiling_supports_sampling_only(fake_vllm):
    with pytest.raises(ConfigError, match="profile.method=sample only"):
        launch.preflight(load_config(None, ["profile.engine=vllm", "profile.method=adaptive"]), cuda=True)
    launch.preflight(load_config(None, ["profile.engine=vllm", "evaluate.engine=vllm"]), cuda=True)


# --- preflight of a launch ------------------------------------------------------------------------


def test_default_study_passes_preflight_on_cpu():
    assert launch.preflight(load_config(), cuda=False) == []


def test_vllm_under_a_data_parallel_launch_runs_one_engine_per_process(fake_vllm, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    kwargs = vllm_engine.llm_kwargs("m", MODEL_CFG, 0, {})
    assert kwargs["distributed_executor_backend"] == "external_launcher"
    launch.preflight(load_config(None, ["profile.engine=vllm"]), cuda=True)
    with pytest.raises(ConfigError, match="evaluate.engine_args.tensor_parallel_size=2 under 4 processes"):
        launch.preflight(
            load_config(None, ["evaluate.engine=vllm", "evaluate.engine_args={tensor_parallel_size: 2}"]),
            cuda=True,
        )
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert "distributed_executor_backend" not in vllm_engine.llm_kwargs("m", MODEL_CFG, 0, {})


@pytest.mark.skipif(HAS_DEEPSPEED, reason="deepspeed is installed here")
def test_deepspeed_without_the_package_is_one_line(monkeypatch):
    cfg = load_config(None, [f"train.extra={{deepspeed: {ACCELERATE / 'zero2.json'}}}"])
    with pytest.raises(ConfigError, match="train.extra.deepspeed: deepspeed is not installed"):
        launch.preflight(cfg, ["train"], cuda=True)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(
        ConfigError, match="accelerate launch with a DeepSpeed config: deepspeed is not installed"
    ):
        launch.preflight(load_config(), ["coldstart"], cuda=True)


def test_grpo_server_mode_notes_the_server(fake_vllm):
    cfg = load_config(None, ["grpo.use_vllm=true", "grpo.vllm_mode=server"])
    notes = launch.preflight(cfg, cuda=True)
    assert [n.split("`")[1] for n in notes] == [
        f"trl vllm-serve --model {cfg.for_task(t).run_dir}/02_coldstart/model" for t in cfg.task_names
    ]
    assert launch.preflight(load_config(None, ["grpo.use_vllm=true", "train.methods=[sft]"]), cuda=True) == []


# --- accelerate configs: a dry run of each, and the trainers' pass-through ------------------------


@pytest.mark.parametrize(
    "name, kind", [("deepspeed_zero2", "DEEPSPEED"), ("fsdp", "FSDP"), ("multi_gpu", "MULTI_GPU")]
)
def test_accelerate_config_dry_run(name, kind, monkeypatch):
    monkeypatch.chdir(ROOT)  # the YAML names the DeepSpeed JSON relative to the repository root
    path = ACCELERATE / f"{name}.yaml"
    assert path.read_text().startswith("#")  # a header saying when to use it
    summary = launch.dry_run(path)
    assert summary["distributed_type"] == kind and summary["num_processes"] == 8
    if kind == "DEEPSPEED":
        assert summary["zero_stage"] == 2 and summary["deepspeed_config"]["zero_optimization"]["stage"] == 2
        assert summary["env"]["ACCELERATE_USE_DEEPSPEED"] == "true"
    elif kind == "FSDP":
        assert (summary["fsdp_version"], summary["state_dict_type"]) == (2, "FULL_STATE_DICT")
        assert summary["mixed_precision"] == "bf16"
    else:
        assert summary["mixed_precision"] == "bf16"


def test_accelerate_refuses_mixed_precision_beside_a_deepspeed_json(tmp_path):
    text = (ACCELERATE / "deepspeed_zero2.yaml").read_text()
    text = (
        text.replace("configs/accelerate/zero2.json", str(ACCELERATE / "zero2.json"))
        + "mixed_precision: bf16\n"
    )
    (tmp_path / "ds.yaml").write_text(text)
    with pytest.raises(ValueError, match="deepspeed_config_file"):
        launch.dry_run(tmp_path / "ds.yaml")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"zero_optimisation": {}}, "unknown DeepSpeed key"),
        ({"zero_optimization": {"stage": 2, "bucket": 1}}, "unknown"),
        ({"zero_optimization": {"stage": 5}}, "stage must be 0-3"),
        ({"steps_per_print": "auto"}, "fills nothing in"),
    ],
)
def test_deepspeed_json_check_catches_mistakes(tmp_path, change, message):
    import json

    config = json.loads((ACCELERATE / "zero2.json").read_text())
    config.update(change)
    (tmp_path / "ds.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=message):
        launch.check_deepspeed_json(tmp_path / "ds.json")


def test_trainer_configs_take_fsdp_through_extra_and_from_an_fsdp_launch(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    extra = {"fsdp": True, "fsdp_config": {"version": 2}}
    sft_args = sft.trl_config(
        sft.SFTRun(output_dir=tmp_path, lr=1e-5, batch_size=1, max_steps=2, extra=extra)
    )
    grpo_args = grpo.trl_config(GrpoConfig(prompts_per_step=2, num_generations=4, extra=extra), tmp_path, 0)
    assert sft_args.fsdp and grpo_args.fsdp and sft_args.fsdp_plugin_args["fsdp_version"] == 2
    with launch.environment(launch.dry_run(ACCELERATE / "fsdp.yaml")["env"]):
        sft.trl_config(sft.SFTRun(output_dir=tmp_path, lr=1e-5, batch_size=1, max_steps=2))
        grpo.trl_config(GrpoConfig(prompts_per_step=2, num_generations=4), tmp_path, 0)


@pytest.mark.skipif(not HAS_DEEPSPEED, reason=NO_DEEPSPEED)
def test_trainer_configs_take_deepspeed_through_extra_and_from_a_deepspeed_launch(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    extra = {"deepspeed": str(ACCELERATE / "zero2.json")}
    args = sft.trl_config(
        sft.SFTRun(output_dir=tmp_path, lr=1e-5, batch_size=1, grad_accum=2, max_steps=2, extra=extra)
    )
    assert args.hf_deepspeed_config.config["train_micro_batch_size_per_gpu"] == 1
    grpo.trl_config(GrpoConfig(prompts_per_step=2, num_generations=4, extra=extra), tmp_path, 0)
    with launch.environment(launch.dry_run(ACCELERATE / "deepspeed_zero2.yaml")["env"]):
        assert sft.trl_config(
            sft.SFTRun(output_dir=tmp_path, lr=1e-5, batch_size=1, max_steps=2)
        ).deepspeed_plugin
