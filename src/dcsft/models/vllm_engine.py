"""The optional vLLM engine for profile and evaluate (`profile.engine: vllm`, `evaluate.engine: vllm`).

`load_generator(engine, ...)` is what the profile and evaluate stages load instead of
`load_model`: "hf" gives the transformers model (unchanged), "vllm" a `VllmEngine`, which
`generate.respond` hands the records to. The engine builds one `vllm.LLM` for the model (a LoRA
adapter is merged with transformers first and saved to a temporary folder, since vLLM's LoRA
support does not cover adapters on the vision tower) and one `vllm.SamplingParams` per record:
n = the responses per record, temperature / top_p / top_k / max_tokens / repetition_penalty
from our `Sampling` (greedy = temperature 0; vLLM's repetition penalty, like transformers',
counts the prompt's tokens as well as the generated ones), and a seed derived from (run seed,
record id), so a record's responses depend neither on its batch nor on a resume. Outputs map to
`generate.Generated` like the HF path's: responses decoded without special tokens, prompt tokens
as vLLM counted them (image tokens included), generated tokens per record, and tokens forwarded
= prompt once (vLLM shares the prefill of the n samples) + generated.

Not bit-identical to the HF engine: a different sampler and kernels draw different (equally
distributed) responses, so the engine is part of the stage's fingerprint. vLLM needs a CUDA
machine; where it is not installed, asking for it is one ConfigError line.

Under a data-parallel launch (torchrun / accelerate launch, WORLD_SIZE > 1: profile and evaluate
share their batches between processes) every process builds its own engine on its own GPU with
vLLM's "external_launcher" backend, as TRL's colocated vLLM does; tensor parallelism then has to
stay 1 (launch.preflight says so). One process can instead use several GPUs through
`engine_args: {tensor_parallel_size: N}`.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from dcsft.config import ModelConfig
from dcsft.distributed import world_size
from dcsft.errors import ConfigError
from dcsft.models.generate import Generated, Sampling, prompt_text

VLLM_MISSING = "vllm is not installed; pip install vllm on a CUDA machine"
ENGINES = ("hf", "vllm")


def vllm_available() -> bool:
    try:
        return importlib.util.find_spec("vllm") is not None
    except ValueError:  # a module put in sys.modules without a spec (a test's stand-in)
        return sys.modules.get("vllm") is not None


def require_vllm(setting: str) -> None:
    """One line naming the setting that asked for vLLM, where vLLM is not installed."""
    if not vllm_available():
        raise ConfigError(f"{setting}: {VLLM_MISSING}")


def record_seed(seed: int, record_id: str) -> int:
    """A per-record sampling seed (56 bits), independent of batch composition and order."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{record_id}".encode()).digest()[:7], "big")


def penalty(sampling: Sampling) -> dict:
    """repetition_penalty where the config sets one; else vLLM's default, the model's generation config's."""
    return {} if sampling.repetition_penalty is None else {"repetition_penalty": sampling.repetition_penalty}


def sampling_params(vllm, sampling: Sampling, seed: int):
    """vllm.SamplingParams for our Sampling: n responses, greedy as temperature 0; our top_k 0
    ("no top-k", as in transformers) is vLLM's -1."""
    if not sampling.do_sample:
        return vllm.SamplingParams(
            n=sampling.num_return_sequences,
            temperature=0.0,
            top_p=1.0,
            top_k=-1,
            max_tokens=sampling.max_new_tokens,
            seed=seed,
            **penalty(sampling),
        )
    return vllm.SamplingParams(
        n=sampling.num_return_sequences,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k if sampling.top_k > 0 else -1,
        max_tokens=sampling.max_new_tokens,
        seed=seed,
        **penalty(sampling),
    )


def vllm_prompt(processor, record: dict) -> dict:
    """One record as a vLLM prompt: the chat-templated text (as the HF path builds it) and its image."""
    return {
        "prompt": prompt_text(processor, record["problem"]),
        "multi_modal_data": {"image": Image.open(record["image"]).convert("RGB")},
    }


def to_generated(outputs: list) -> Generated:
    """vLLM RequestOutputs (one per record, in order) as dcsft's Generated."""
    prompts = [len(o.prompt_token_ids) for o in outputs]
    generated = [sum(len(c.token_ids) for c in o.outputs) for o in outputs]
    return Generated(
        responses=[[c.text for c in o.outputs] for o in outputs],
        prompt_tokens=prompts,
        generated_tokens=generated,
        forwarded_tokens=[p + g for p, g in zip(prompts, generated)],
    )


class VllmEngine:
    """A vllm.LLM with the processor whose chat template builds its prompts. `respond_records`
    has generate.respond's contract, so the stages' batching, resume and scoring are unchanged."""

    def __init__(self, llm, processor, vllm, merged_dir: Path | None = None):
        self.llm, self.processor, self.vllm, self.merged_dir = llm, processor, vllm, merged_dir

    def respond_records(
        self, records: list[dict], sampling: Sampling, seed: int, batch_index: int
    ) -> Generated:
        params = [sampling_params(self.vllm, sampling, record_seed(seed, str(r["id"]))) for r in records]
        outputs = self.llm.generate([vllm_prompt(self.processor, r) for r in records], params, use_tqdm=False)
        return to_generated(outputs)

    def close(self) -> None:
        """Free the GPU for the next engine and remove a merged model's temporary folder."""
        self.llm = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        if self.merged_dir is not None:
            shutil.rmtree(self.merged_dir, ignore_errors=True)
            self.merged_dir = None


_open: list[VllmEngine] = []  # one vLLM engine per process at a time: each holds most of the GPU's memory


def close_all() -> None:
    while _open:
        _open.pop().close()


atexit.register(close_all)


def llm_kwargs(source: str, cfg: ModelConfig, seed: int, engine_args: dict[str, Any]) -> dict:
    """vllm.LLM's arguments: our dtype and pixel limits, one image per prompt, one engine per
    process of a launch, then engine_args (which win)."""
    launched = {"distributed_executor_backend": "external_launcher"} if world_size() > 1 else {}
    return {
        "model": source,
        "dtype": cfg.dtype,
        "seed": seed,
        "limit_mm_per_prompt": {"image": 1},
        "mm_processor_kwargs": {"min_pixels": cfg.min_pixels, "max_pixels": cfg.max_pixels},
        **launched,
        **engine_args,
    }


def merge_adapter(source: str | Path, cfg: ModelConfig, adapter: str | Path) -> Path:
    """The model with its LoRA adapter merged, saved to a temporary folder ($TMPDIR) for vLLM."""
    from dcsft.models.loading import load_model, load_processor

    folder = Path(tempfile.mkdtemp(prefix="dcsft-vllm-merged-"))
    load_model(source, cfg, adapter).save_pretrained(folder)
    load_processor(source, cfg).save_pretrained(folder)
    return folder


def load_generator(
    engine: str,
    source: str | Path,
    cfg: ModelConfig,
    adapter: str | Path | None = None,
    seed: int = 0,
    engine_args: dict[str, Any] | None = None,
    setting: str = "engine",
):
    """What profile and evaluate generate with: the transformers model ("hf", as load_model
    returns it) or a VllmEngine ("vllm"). `setting` names the config key in error messages."""
    from dcsft.models.loading import check_model, load_model, load_processor

    if engine == "hf":
        return load_model(source, cfg, adapter)
    if engine != "vllm":
        raise ConfigError(f"{setting}={engine}: unknown engine; use one of {', '.join(ENGINES)}")
    require_vllm(f"{setting}=vllm")
    check_model(cfg)
    import vllm

    close_all()
    merged = merge_adapter(source, cfg, adapter) if adapter is not None else None
    model_dir = str(merged or source)
    try:
        llm = vllm.LLM(**llm_kwargs(model_dir, cfg, seed, engine_args or {}))
    except BaseException:
        if merged is not None:
            shutil.rmtree(merged, ignore_errors=True)
        raise
    opened = VllmEngine(llm, load_processor(model_dir, cfg), vllm, merged)
    _open.append(opened)
    return opened
