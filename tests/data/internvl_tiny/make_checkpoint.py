"""Regenerate the committed tiny checkpoint and inputs (our code only; see README.md for the references).

    .venv/bin/python tests/data/internvl_tiny/make_checkpoint.py
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from model_zoo.internvl.config import TINY
from model_zoo.internvl.tiny import random_state_dict, write_checkpoint
from model_zoo.internvl_models import TINY_SEED, TINY_TOKENIZER

HERE = Path(__file__).parent
TEXTS = [
    "a photo of a red panda",
    "two cats sleeping on a sofa",
    "一张熊猫的照片",
    "a  dog  with double spaces and a trailing space ",
    "emoji and rare bytes: \U0001F600 \u00e9",
    "a literal </s> in the middle",
    "",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 12),  # far longer than 80 tokens
]


def main() -> None:
    folder = write_checkpoint(HERE / "checkpoint", TINY, random_state_dict(TINY, TINY_SEED), num_shards=2,
                              dtype=torch.bfloat16, tokenizer=TINY_TOKENIZER)
    # the tokenizer files the official LlamaTokenizer.from_pretrained reads (same content as the real checkpoint's)
    special = {"__type": "AddedToken", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "bos_token": {**special, "content": "<s>"}, "eos_token": {**special, "content": "</s>"},
        "unk_token": {**special, "content": "<unk>"}, "pad_token": None, "model_max_length": 1000000000000000019884624838656,
        "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer"}, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "[PAD]", "unk_token": "<unk>"}, indent=2) + "\n")
    gen = torch.Generator().manual_seed(1234)
    pixels = {"pixels_16": torch.randn(3, 3, 16, 16, generator=gen), "pixels_24": torch.randn(3, 3, 24, 24, generator=gen)}
    save_file(pixels, str(HERE / "inputs.safetensors"))
    (HERE / "texts.json").write_text(json.dumps(TEXTS, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
