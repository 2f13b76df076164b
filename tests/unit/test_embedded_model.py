"""The tiny Qwen2.5-VL built offline: tokenizer, chat template, image tokens, save/load round trip."""

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from dcsft.config import ModelConfig
from dcsft.data.world import CLASSES, COLOURS
from dcsft.models.embedded import (
    SPECIAL_TOKENS,
    SYSTEM_PROMPT,
    build_config,
    build_model,
    build_processor,
    build_tokenizer,
)
from dcsft.models.loading import load_processor
from dcsft.models.pretrain import vocabulary
from dcsft.tasks.classification import PROMPT

MIN_PIXELS, MAX_PIXELS = 3136, 7056


@pytest.fixture(scope="module")
def corpus():
    return vocabulary()


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return build_tokenizer(corpus)


@pytest.fixture(scope="module")
def processor(tokenizer):
    return build_processor(tokenizer, MIN_PIXELS, MAX_PIXELS)


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_model(build_config(tokenizer, 64, 2, 64, 2), seed=0).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory, model, processor):
    folder = tmp_path_factory.mktemp("embedded") / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)  # saved with max_pixels 7056
    return folder


def _messages(answer: str | None = None) -> list[dict]:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def _image(seed: int = 0) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (84, 84, 3), generator=g, dtype=torch.uint8).numpy()
    return Image.fromarray(pixels)


def _inputs(processor, seed=0):
    text = processor.apply_chat_template(_messages(), tokenize=False, add_generation_prompt=True)
    return processor(text=[text], images=[_image(seed)], return_tensors="pt")


@pytest.mark.parametrize("name", CLASSES)
def test_class_names_are_single_tokens(tokenizer, name):
    for text in (name, " " + name):
        tokens = tokenizer.tokenize(text)
        assert len(tokens) == 1, (text, tokens)
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert len(ids) == 1
        assert tokenizer.decode(ids) == text


def test_class_name_tokens_are_distinct(tokenizer):
    ids = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(name)[0]) for name in CLASSES]
    assert len(set(ids)) == len(CLASSES)


def test_colours_are_single_tokens(tokenizer):
    for name in COLOURS:
        assert len(tokenizer.tokenize(" " + name)) == 1, name


def test_special_tokens_are_single_and_not_split(tokenizer):
    for token in SPECIAL_TOKENS:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.padding_side == "left"


def test_tokenizer_round_trips_the_vocabulary(tokenizer, corpus):
    for line in corpus:
        assert tokenizer.decode(tokenizer.encode(line, add_special_tokens=False)) == line


def test_chat_template_is_qwens(processor):
    text = processor.apply_chat_template(_messages("star"), tokenize=False)
    assert text.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n")
    assert f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{PROMPT}<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\nstar<|im_end|>\n")
    prompt = processor.apply_chat_template(_messages(), tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert prompt.count("<|vision_start|><|image_pad|><|vision_end|>") == 1


def test_84px_image_gives_9_image_tokens(processor, tokenizer):
    inputs = _inputs(processor)
    pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == pad).sum()) == 9
    assert inputs["image_grid_thw"].tolist() == [[1, 6, 6]]
    assert inputs["pixel_values"].shape[0] == 36  # 6 x 6 patches of 14 px


def test_model_config_matches_tokenizer(model, tokenizer):
    ids = tokenizer.convert_tokens_to_ids
    assert model.config.image_token_id == ids("<|image_pad|>")
    assert model.config.text_config.eos_token_id == ids("<|im_end|>")
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert model.generation_config.eos_token_id == ids("<|im_end|>")


def test_build_model_is_seeded(tokenizer, model):
    again = build_model(build_config(tokenizer, 64, 2, 64, 2), seed=0)
    other = build_model(build_config(tokenizer, 64, 2, 64, 2), seed=1)
    first = next(iter(model.state_dict().values()))
    name = next(iter(model.state_dict()))
    assert torch.equal(again.state_dict()[name], first)
    assert any(not torch.equal(other.state_dict()[k], v) for k, v in model.state_dict().items())


def test_save_and_reload_round_trip(saved, model, processor, tokenizer):
    inputs = _inputs(processor, seed=1)
    with torch.no_grad():
        before = model(**inputs).logits

    folder = saved
    loaded_processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    loaded_model = AutoModelForImageTextToText.from_pretrained(str(folder), local_files_only=True).eval()
    assert type(loaded_model).__name__ == type(model).__name__

    reloaded_inputs = _inputs(loaded_processor, seed=1)
    assert torch.equal(reloaded_inputs["input_ids"], inputs["input_ids"])
    assert torch.allclose(reloaded_inputs["pixel_values"], inputs["pixel_values"])
    assert reloaded_inputs["image_grid_thw"].tolist() == [[1, 6, 6]]
    assert loaded_processor.tokenizer.get_vocab() == tokenizer.get_vocab()
    assert loaded_processor.apply_chat_template(
        _messages("moon"), tokenize=False
    ) == processor.apply_chat_template(_messages("moon"), tokenize=False)

    with torch.no_grad():
        after = loaded_model(**reloaded_inputs).logits
    assert after.shape == before.shape == (1, inputs["input_ids"].shape[1], len(tokenizer))
    assert torch.allclose(after, before, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("error:Passing `min_pixels` and `max_pixels`:FutureWarning")
def test_project_processor_loader_applies_the_config_bounds(saved):
    """load_processor must override the saved bounds with the config's, without the deprecated
    call-time min_pixels/max_pixels kwargs (a FutureWarning on every call in transformers 5)."""
    cfg = ModelConfig(min_pixels=3136, max_pixels=802_816, threads=1)
    loaded = load_processor(saved, cfg)  # saved with max_pixels 7056
    assert loaded.tokenizer.padding_side == "left"
    text = loaded.apply_chat_template(_messages(), tokenize=False, add_generation_prompt=True)
    inputs = loaded(text=[text], images=[Image.new("RGB", (1200, 1600))], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 1008 // 14, 756 // 14]]  # the config's bounds, not 7056


def test_interleaved_mrope_leaves_text_alone_and_survives_save_and_load(tmp_path):
    """Phase 3 gives image rows and columns interleaved rotary frequencies through Qwen2.5-VL's
    own mrope_section: text-only inputs (time = height = width positions) must not change, an
    image input must, and the setting must come back from disk."""
    from dcsft.models.base import PACKAGED
    from dcsft.models.pretrain import interleave_mrope

    model = AutoModelForImageTextToText.from_pretrained(str(PACKAGED)).eval()
    processor = AutoProcessor.from_pretrained(str(PACKAGED))
    text = processor.tokenizer(["What is this? A red star."], return_tensors="pt")
    image = processor(
        text=[
            processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}],
                add_generation_prompt=True,
            )
        ],
        images=[Image.new("RGB", (84, 84), (200, 30, 30))],
        return_tensors="pt",
    )
    with torch.no_grad():
        before = model(**text).logits, model(**image).logits
        sections = interleave_mrope(model)
        after = model(**text).logits, model(**image).logits
    assert (
        sum(sections)
        == model.config.text_config.hidden_size // model.config.text_config.num_attention_heads // 2
    )
    assert torch.allclose(before[0], after[0], atol=1e-5)
    assert not torch.allclose(before[1], after[1], atol=1e-3)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(str(tmp_path)).eval()
    assert reloaded.model.language_model.rotary_emb.mrope_section == sections
    with torch.no_grad():
        assert torch.allclose(reloaded(**image).logits, after[1], atol=1e-5)
