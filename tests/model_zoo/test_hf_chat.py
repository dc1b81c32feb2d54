"""The Hugging Face image-text-to-text adapter (``hf:OWNER/NAME``) on a tiny llava-hf folder built offline."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import model_zoo
from internvl_bench.errors import BenchError
from tests.fixtures.chat import write_tiny_llava_hf


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_tiny_llava_hf(tmp_path_factory.mktemp("hf") / "tiny-llava")


@pytest.fixture(scope="module")
def model(folder: Path):
    return model_zoo.load_model("hf:tiny/llava", checkpoint=str(folder))


IMAGES = [Image.new("RGB", (80, 60), (200, 10, 10)), Image.new("RGB", (30, 90), (10, 200, 10)),
          Image.new("RGB", (50, 50), (10, 10, 200))]
QUESTIONS = ["What is this?", "Is there a red square in this image? Please answer yes or no.", "Describe."]


def test_prompt_is_the_processors_chat_template(model) -> None:
    assert model.build_prompt("What is this?") == "USER: <image>\nWhat is this? ASSISTANT:"
    assert model.image_tokens == 16
    ids = model.tokenize_prompt(model.build_prompt("What is this?"))
    assert ids.count(model.model.config.image_token_id) == 16


def test_answers_equal_transformers_generate_and_batch_one(model) -> None:
    pixels = model.preprocess(IMAGES)
    prompts = [model.build_prompt(q) for q in QUESTIONS]
    alone = [model.generate(pixels[i:i + 1], [p], max_new_tokens=8)[0] for i, p in enumerate(prompts)]
    batched = model.generate(pixels, prompts, max_new_tokens=8)
    assert [a.token_ids for a in alone] == [b.token_ids for b in batched]
    for image, prompt, answer in zip(IMAGES, prompts, alone):
        inputs = model.processor(images=[image], text=[prompt], return_tensors="pt")
        reference = model.model.generate(**inputs, do_sample=False, max_new_tokens=8)
        assert reference[0, inputs["input_ids"].shape[1]:].tolist() == answer.token_ids
        assert model.tokenize_prompt(prompt) == inputs["input_ids"][0].tolist()
    assert model.encode_image(pixels).shape == (3, 16, 64)


def test_llava_eval_prompt_and_padding_options(folder: Path, model) -> None:
    llava_eval = model_zoo.load_model("hf:tiny/llava", checkpoint=str(folder), conv_template="vicuna_v1",
                                      pad_to_square="true")
    assert llava_eval.build_prompt("Q?").startswith("A chat between a curious user") and \
        llava_eval.build_prompt("Q?").endswith("USER: <image>\nQ? ASSISTANT:")
    wide = IMAGES[0]
    padded, plain = llava_eval.preprocess([wide])[0], model.preprocess([wide])[0]
    assert not torch.equal(padded, plain)
    provenance = llava_eval.provenance()
    assert provenance["pad_to_square"] is True and provenance["conversation_template"] == "vicuna_v1"


def test_unpinned_hub_model_needs_a_revision() -> None:
    with pytest.raises(BenchError, match="has no pinned revision; pass --checkpoint someone/model@<commit sha>"):
        model_zoo.load_model("hf:someone/model")


def test_min_new_tokens_bars_eos_like_transformers(folder: Path) -> None:
    model = model_zoo.load_model("hf:tiny/llava", checkpoint=str(folder))
    pixels = model.preprocess(IMAGES)
    prompts = [model.build_prompt(q) for q in QUESTIONS]
    first = model.generate(pixels, prompts, max_new_tokens=1)[0].token_ids[0]
    with torch.no_grad():  # make the end-of-sequence token win wherever the first answer token would
        head = model.model.lm_head.weight
        head[model.eos_id] = head[first] * 1.05
    eager = model.generate(pixels, prompts, max_new_tokens=8)
    assert eager[0].token_ids == [model.eos_id] and eager[0].finish_reason == "eos"
    held = model.generate(pixels, prompts, max_new_tokens=8, min_new_tokens=3)
    for image, prompt, answer in zip(IMAGES, prompts, held):
        assert model.eos_id not in answer.token_ids[:3]
        inputs = model.processor(images=[image], text=[prompt], return_tensors="pt")
        reference = model.model.generate(**inputs, do_sample=False, max_new_tokens=8, min_new_tokens=3)
        assert reference[0, inputs["input_ids"].shape[1]:].tolist() == answer.token_ids
