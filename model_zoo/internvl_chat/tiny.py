"""Tiny InternVL-Chat 1.0 checkpoints in the exact released layout, for tests, benchmarks and demos.

``write_tiny_chat(root)`` writes two folders, as the hub repos ship them:

- ``InternViT-6B-224px-tiny/``: the tower's ``config.json`` (``InternVisionConfig``, ``model_type`` intern_vit_6b,
  224 px, so the chat model re-interpolates its 16x16 position grid to 24x24 at 336 px), two
  ``pytorch_model-0000N-of-00002.bin`` pickles + ``pytorch_model.bin.index.json``, ``preprocessor_config.json``;
- ``InternVL-Chat-ViT-6B-Vicuna-tiny/``: the LLaVA ``config.json`` (``mm_vision_tower`` naming the tower folder),
  ``generation_config.json`` with the released sampling settings, ``pytorch_model-0000N-of-00002.bin`` +
  index holding ``model.layers.*``, ``model.mm_projector.0/2.*``, ``lm_head.weight``, the rotary ``inv_freq``
  buffers and a tower copy ``model.vision_tower.vision_tower.*`` with *different* values (the official loader
  ignores it; a test proves we do too), and the SentencePiece tokenizer files.

The tower runs the real geometry (patch 14, 336 px input: 576 image tokens) at tiny widths; its 6 blocks
with ``mm_vision_select_layer`` -4 mean 3 run. Weights are seeded and rounded to bfloat16.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from model_zoo.internvl.config import VisionConfig
from model_zoo.internvl.tiny import random_tensors, train_tokenizer, vision_shapes, write_shards
from model_zoo.internvl_chat.config import LanguageConfig

ASSETS = Path(__file__).parent / "assets"
TINY_TOKENIZER = ASSETS / "tiny_chat_tokenizer.model"
TOWER_FOLDER = "InternViT-6B-224px-tiny"
CHAT_FOLDER = "InternVL-Chat-ViT-6B-Vicuna-tiny"

TINY_VISION = VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=6, num_attention_heads=4,
                           patch_size=14, image_size=224)
#: vocab_size is the tokenizer's piece count (checked by ``tiny_language``)
TINY_LANGUAGE = LanguageConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=4, vocab_size=512, max_position_embeddings=4096)

#: sentences for the tiny LLaMA-style SentencePiece model: the template, task prompts, answers
_CORPUS = [
    "A chat between a curious user and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "USER: <image> Is there a dog in the image? Please answer yes or no. ASSISTANT: Yes",
    "USER: <image> Is there a cat in this picture? Answer the question using a single word or phrase. ASSISTANT: No",
    "What color is the car? Red. How many people are there? 2 people, 3 cats and 10 dogs.",
    "Provide a one-sentence caption for the provided image. A man riding a bicycle down the street.",
    "When the provided information is insufficient, respond with 'Unanswerable'.",
    "Reference OCR token: STOP, Main St, 1234. What does the sign say?",
    "a photo of a red circle, a green square and a blue triangle on a white background",
    "Yes, there is. No, there is not. I don't know, it's not clear.",
    "问题：图片里有几只猫？回答：两只。",
]


def train_chat_tokenizer(path: str | Path) -> Path:
    """A 512-piece BPE model trained with LLaMA's SentencePiece settings (identity normalisation, dummy
    prefix, extra whitespace kept, digits split, byte fallback, unk 0 / bos 1 / eos 2)."""
    return train_tokenizer(path, vocab_size=512, corpus=_CORPUS, remove_extra_whitespaces=False, split_digits=True,
                           allow_whitespace_only_pieces=True, add_dummy_prefix=True, hard_vocab_limit=True)


def tower_config_dict(vision: VisionConfig) -> dict:
    """``config.json`` of an InternViT tower folder, in the structure of OpenGVLab/InternViT-6B-224px."""
    return {
        "architectures": ["InternVisionModel"],
        "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_intern_vit.InternVisionConfig",
                     "AutoModel": "modeling_intern_vit.InternVisionModel"},
        "drop_path_rate": 0.0, "dropout": 0.0, "hidden_act": vision.hidden_act, "hidden_size": vision.hidden_size,
        "image_size": vision.image_size, "initializer_factor": 0.1, "initializer_range": 1e-10,
        "intermediate_size": vision.intermediate_size, "layer_norm_eps": vision.layer_norm_eps,
        "model_type": "intern_vit_6b", "num_attention_heads": vision.num_attention_heads,
        "num_channels": vision.num_channels, "num_hidden_layers": vision.num_hidden_layers,
        "patch_size": vision.patch_size, "qk_normalization": vision.qk_normalization, "qkv_bias": vision.qkv_bias,
        "torch_dtype": "bfloat16", "transformers_version": "4.36.2", "use_flash_attn": True,
    }


def chat_config_dict(language: LanguageConfig, mm_hidden_size: int, tower: str) -> dict:
    """``config.json`` of a chat folder, in the structure of OpenGVLab/InternVL-Chat-ViT-6B-Vicuna-7B."""
    return {
        "_name_or_path": CHAT_FOLDER, "architectures": ["LlavaLlamaForCausalLM"], "bos_token_id": language.bos_token_id,
        "eos_token_id": language.eos_token_id, "freeze_mm_mlp_adapter": False, "hidden_act": language.hidden_act,
        "hidden_size": language.hidden_size, "image_aspect_ratio": "pad", "image_grid_pinpoints": None,
        "initializer_range": 0.02, "intermediate_size": language.intermediate_size,
        "max_position_embeddings": language.max_position_embeddings, "mm_hidden_size": mm_hidden_size,
        "mm_projector_type": "mlp2x_gelu", "mm_use_im_patch_token": False, "mm_use_im_start_end": False,
        "mm_vision_select_feature": "patch", "mm_vision_select_layer": -4, "mm_vision_tower": tower,
        "model_type": "llava", "num_attention_heads": language.num_attention_heads, "num_hidden_layers": language.num_hidden_layers,
        "num_key_value_heads": language.num_key_value_heads, "pad_token_id": language.pad_token_id, "pretraining_tp": 1,
        "rms_norm_eps": language.rms_norm_eps, "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.31.0", "tune_mm_mlp_adapter": False, "use_cache": True, "use_mm_proj": True,
        "vocab_size": language.vocab_size,
    }


def language_shapes(language: LanguageConfig, mm_hidden_size: int) -> dict[str, tuple[int, ...]]:
    """Every tensor name of the chat shards (tower copy aside) and its shape."""
    h, i, v = language.hidden_size, language.intermediate_size, language.vocab_size
    kv = language.num_key_value_heads * (h // language.num_attention_heads)
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h)}
    for n in range(language.num_hidden_layers):
        p = f"model.layers.{n}."
        shapes.update({
            p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
            p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h), p + "mlp.down_proj.weight": (h, i),
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
        })
    shapes.update({"model.norm.weight": (h,), "model.mm_projector.0.weight": (h, mm_hidden_size),
                   "model.mm_projector.0.bias": (h,), "model.mm_projector.2.weight": (h, h),
                   "model.mm_projector.2.bias": (h,), "lm_head.weight": (v, h)})
    return shapes


def _inv_freq(language: LanguageConfig) -> torch.Tensor:
    dim = language.hidden_size // language.num_attention_heads
    return 1.0 / (language.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def tiny_language() -> LanguageConfig:
    import sentencepiece

    pieces = sentencepiece.SentencePieceProcessor(model_file=str(TINY_TOKENIZER)).GetPieceSize()
    assert pieces == TINY_LANGUAGE.vocab_size, f"tiny tokenizer has {pieces} pieces, config says {TINY_LANGUAGE.vocab_size}"
    return TINY_LANGUAGE


def write_tower(folder: Path, vision: VisionConfig = TINY_VISION, seed: int = 0,
                state: dict[str, torch.Tensor] | None = None, weights_format: str = "bin",
                dtype: torch.dtype = torch.bfloat16) -> Path:
    """An InternViT tower folder; ``state`` (names as in the hub's ``vision_model``-less tower files) or
    seeded random weights."""
    folder.mkdir(parents=True, exist_ok=True)
    positions = (vision.image_size // vision.patch_size) ** 2 + 1
    _write_json(folder / "config.json", tower_config_dict(vision))
    _write_json(folder / "preprocessor_config.json", preprocessor_config_dict(vision.image_size))
    state = state if state is not None else random_tensors(vision_shapes(vision, positions), seed)
    write_shards(folder, state, 2, dtype, weights_format)
    return folder


def preprocessor_config_dict(side: int) -> dict:
    """``preprocessor_config.json`` of a CLIP-style image processor at ``side`` px (InternViT's mean/std)."""
    return {"crop_size": side, "do_center_crop": True, "do_normalize": True, "do_resize": True,
            "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225], "resample": 3, "size": side}


def write_chat(folder: Path, tower_name: str, language: LanguageConfig | None = None,
               vision: VisionConfig = TINY_VISION, seed: int = 1, num_shards: int = 2,
               state: dict[str, torch.Tensor] | None = None, tokenizer: Path = TINY_TOKENIZER,
               weights_format: str = "bin", dtype: torch.dtype = torch.bfloat16) -> Path:
    """A LLaVA-layout chat folder; ``state`` (checkpoint names, ``language_shapes``) or seeded random weights.
    The rotary ``inv_freq`` buffers and a tower copy with other values are added as the releases hold them."""
    language = language or tiny_language()
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "config.json", chat_config_dict(language, vision.hidden_size, tower_name))
    _write_json(folder / "generation_config.json", {
        "bos_token_id": 1, "eos_token_id": 2, "max_length": 4096, "pad_token_id": 0, "temperature": 0.9,
        "top_p": 0.6, "transformers_version": "4.31.0"})
    state = dict(state) if state is not None else random_tensors(language_shapes(language, vision.hidden_size), seed)
    for n in range(language.num_hidden_layers):
        state[f"model.layers.{n}.self_attn.rotary_emb.inv_freq"] = _inv_freq(language)
    positions = (vision.image_size // vision.patch_size) ** 2 + 1
    # the tower copy the official loader ignores: other values than the tower folder's, on purpose
    state.update(random_tensors(vision_shapes(vision, positions, prefix="model.vision_tower.vision_tower."), seed + 100))
    write_shards(folder, state, num_shards, dtype, weights_format)
    write_tokenizer_files(folder, tokenizer)
    return folder


def write_tokenizer_files(folder: Path, tokenizer: Path) -> None:
    """``tokenizer.model`` + the slow ``LlamaTokenizer``'s ``tokenizer_config.json`` and ``special_tokens_map.json``
    as the Vicuna-based releases ship them (``legacy`` false, BOS added, no pad token)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(Path(tokenizer).read_bytes())
    special = {"__type": "AddedToken", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    _write_json(folder / "tokenizer_config.json", {
        "add_bos_token": True, "add_eos_token": False, "bos_token": {**special, "content": "<s>"},
        "clean_up_tokenization_spaces": False, "eos_token": {**special, "content": "</s>"}, "legacy": False,
        "model_max_length": 2048, "pad_token": None, "padding_side": "right", "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer", "unk_token": {**special, "content": "<unk>"}})
    _write_json(folder / "special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>",
                                                    "unk_token": "<unk>"})


def write_tiny_chat(root: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """The tiny tower and chat folders side by side under ``root``; returns (chat folder, tower folder)."""
    root = Path(root)
    tower = write_tower(root / TOWER_FOLDER, seed=seed)
    chat = write_chat(root / CHAT_FOLDER, TOWER_FOLDER, seed=seed + 1)
    return chat, tower
