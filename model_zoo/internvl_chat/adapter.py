"""``ChatModel`` adapter for InternVL-Chat 1.0 and ``load_internvl_chat``, the one entry point that builds it.

What a request goes through, as in the official eval (``llava/eval/model_vqa_loader.py``):
``build_prompt`` (conversation template) -> ``tokenize_prompt`` (-200 where the image goes) ->
``encode_image`` (tower at the selected layer, projector) -> splice -> greedy decoding (``model_zoo.decoding``)
-> ``decode_answer`` (special tokens skipped, stripped, trailing ``</s>`` cut). Rows of a batch are
left-padded with an attention mask and per-row position ids, so each row is what it would be alone.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from internvl_bench.data import file_sha256
from internvl_bench.errors import BenchError
from model_zoo.base import PRECISION_NAMES
from model_zoo.chat import DecoderChatModel
from model_zoo.decoding import prefill_by_length
from model_zoo.internvl import checkpoint as ckpt
from model_zoo.internvl.config import VisionConfig
from model_zoo.internvl.layers import resolve_backend
from model_zoo.internvl_chat import loader
from model_zoo.internvl_chat.config import ChatConfig, load_chat_config, read_json
from model_zoo.internvl_chat.conversation import DEFAULT_TEMPLATE, Template, get_template
from model_zoo.internvl_chat.preprocess import ChatImageTransform, ImageSettings
from model_zoo.internvl_chat.tokenizer import LlamaTokenizer


class InternVLChatModel(DecoderChatModel):
    """InternVL-Chat 1.0 behind the suite's chat interface."""

    def __init__(self, loaded: loader.LoadedChat, tokenizer: LlamaTokenizer, template: Template,
                 settings: ImageSettings, device: torch.device, dtype: torch.dtype, attention: str,
                 identity: dict[str, Any], fingerprint: str) -> None:
        self.net = loaded.net
        self.config = loaded.config
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_id
        self.template = template
        self.settings = settings
        self.device, self.dtype = device, dtype
        self.attention = attention
        self.image_size = settings.crop_size
        self.name = "internvl-chat"
        for module in self.net.vision_tower.modules():
            if hasattr(module, "backend"):
                module.backend = attention
        self._identity = identity
        self._fingerprint = fingerprint

    # -- ChatModel -------------------------------------------------------------------------------
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return ChatImageTransform(self.settings)

    def build_prompt(self, question: str) -> str:
        return self.template.render(question)

    def tokenize_prompt(self, prompt: str) -> list[int]:
        return self.tokenizer.tokenize_with_image(prompt)

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> [B, N, D] on the model's device, in the model's dtype."""
        return self.net.image_tokens(pixels.to(device=self.device, dtype=self.dtype))

    def prefill(self, pixels: torch.Tensor, prompts: Sequence[str], image_rows: Sequence[int] | None, reserve: int):
        """Prompts through the LM (``prefill_by_length``): logits after each prompt, merged cache, mask."""
        from transformers import DynamicCache

        if image_rows is None:
            image_rows = list(range(len(prompts)))
        if len(image_rows) != len(prompts) or (image_rows and max(image_rows) >= len(pixels)):
            raise ValueError(f"{len(prompts)} prompts, {len(image_rows)} image rows, {len(pixels)} images")
        images = self.encode_image(pixels)
        rows = self.net.splice([self.tokenize_prompt(p) for p in prompts], images, image_rows)
        lm = self.net.language_model

        def prefill_rows(group: list[int]):
            embeds = torch.stack([rows[i] for i in group])
            positions = torch.arange(embeds.shape[1], device=self.device).expand(len(group), -1)
            out = lm(inputs_embeds=embeds, position_ids=positions, cache=DynamicCache(config=lm.config),
                     use_cache=True, logits_to_keep=1)
            return out.logits[:, -1], out.cache

        return prefill_by_length([len(r) for r in rows], prefill_rows, self.device, reserve)

    def decode_step(self, tokens, attention_mask, positions, cache):
        out = self.net.language_model(input_ids=tokens, attention_mask=attention_mask, position_ids=positions,
                                      cache=cache, use_cache=True)
        return out.logits[:, -1]

    def answer_text(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode_answer(token_ids, self.template.sep2)

    def fingerprint(self) -> str:
        return self._fingerprint

    def provenance(self) -> dict[str, Any]:
        return {
            **self._identity,
            "precision": PRECISION_NAMES[self.dtype],
            "attention_backend": {"vision_tower": self.attention,
                                  "language_model": self.net.language_model.config._attn_implementation},
            "image_size": self.image_size,
            "image_preprocessing": {"pad_to_square": self.settings.pad_to_square, "fill": list(self.settings.fill),
                                    "resize_shortest_edge": self.settings.shortest_edge,
                                    "center_crop": self.settings.crop_size, "mean": list(self.settings.mean),
                                    "std": list(self.settings.std), "backend": "CLIPImageProcessorPil",
                                    "settings_from": self.settings.origin, "pillow": version("pillow")},
            "conversation_template": self.template.name,
            "decoding": "greedy (argmax, one beam), stop at </s>",
            "rotary_inv_freq_fp32": True,
            "vision_select_layer": self.config.select_layer,
            "vision_select_feature": self.config.select_feature,
            "projector": self.config.projector_type,
            "tokenizer_legacy": self.tokenizer.legacy,
            "transformers": version("transformers"),
        }


def image_settings(chat_folder: Path, tower_name: str, pad_to_square: bool) -> ImageSettings:
    """``preprocessor_config.json`` of the chat folder when it ships one, else the official rule."""
    path = chat_folder / "preprocessor_config.json"
    if path.is_file():
        return ImageSettings.from_preprocessor_config(read_json(path, "preprocessor_config.json"), path, pad_to_square)
    return ImageSettings.official(tower_name, pad_to_square)


def load_internvl_chat(
    checkpoint: str | None,
    default: ckpt.HubRef | None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    vision_tower: str | None = None,
    conv_template: str = DEFAULT_TEMPLATE,
    attention: str = "auto",
    label: str = "internvl-chat",
) -> InternVLChatModel:
    """Load a chat checkpoint (folder or ``OWNER/NAME@REVISION``) and its tower; see ``loader``."""
    device = torch.device(device)
    template = get_template(conv_template)
    source = ckpt.resolve_source(checkpoint, default, loader.CHAT_PATTERNS)
    if source.kind != "hf":
        raise BenchError(f"{source.path}: an InternVL-Chat checkpoint is a folder with config.json, not a single file")
    backend = resolve_backend(attention, device)
    config = load_chat_config(source.path)
    tower_name = config.vision_tower
    tower = loader.resolve_tower(tower_name, source.path, vision_tower)
    loaded = loader.load_chat_network(config, source.path, tower, device, dtype,
                                      loader.ATTENTION_IMPLEMENTATIONS[backend], label)
    tokenizer = LlamaTokenizer(source.path)
    settings = image_settings(source.path, str(vision_tower or tower_name), loaded.config.image_aspect_ratio == "pad")
    identity = {
        "model_id": source.repo_id or str(source.path), "revision": source.revision,
        "vision_tower": {"name_in_config": tower_name, "model_id": tower.repo_id or str(tower.path),
                         "revision": tower.revision, "found_by": tower.found_by},
        "ignored_tower_copy_tensors": loaded.ignored_tower_copy,
        "weights_format": loaded.chat_files[0].suffix.lstrip("."),
        "tokenizer_sha256": file_sha256(tokenizer.model_file),
        "generation_config_ignored": loader.generation_config_note(source.path),
    }
    extra = {"template": template.name, "image": settings, "attention": backend, "dtype": str(dtype),
             "tokenizer": identity["tokenizer_sha256"]}
    fingerprint = loader.chat_fingerprint(loaded, source, tower, extra)
    identity["checkpoint_fingerprint"] = fingerprint
    return InternVLChatModel(loaded, tokenizer, template, settings, device, dtype, backend, identity, fingerprint)


def build_random_chat(config: ChatConfig, vision: VisionConfig, tokenizer_folder: Path,
                      device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, attention: str = "auto",
                      seed: int = 0, label: str = "random") -> InternVLChatModel:
    """A registered architecture with seeded random weights and a given tokenizer (benchmarks on full-size
    shapes without downloads; the answers mean nothing)."""
    device = torch.device(device)
    backend = resolve_backend(attention, device)
    loaded = loader.random_chat_network(config, vision, device, dtype, loader.ATTENTION_IMPLEMENTATIONS[backend],
                                        label, seed)
    tokenizer = LlamaTokenizer(tokenizer_folder)
    template = get_template(DEFAULT_TEMPLATE)
    settings = ImageSettings.official(config.vision_tower, config.image_aspect_ratio == "pad")
    identity = {"model_id": label, "revision": None, "weights": f"random(seed={seed})"}
    fingerprint = hashlib.sha256(f"random|{seed}|{config}|{vision}|{dtype}|{backend}".encode()).hexdigest()
    return InternVLChatModel(loaded, tokenizer, template, settings, device, dtype, backend, identity, fingerprint)
