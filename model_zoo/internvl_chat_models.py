"""Registered InternVL-Chat 1.0 models (the paper's InternVL-Chat rows of Tables E and F).

| name | checkpoint (default, pinned) | tower (``mm_vision_tower``) | input |
|---|---|---|---|
| ``internvl-chat-vicuna-7b`` | ``OpenGVLab/InternVL-Chat-ViT-6B-Vicuna-7B`` (paper: "InternVL-Chat-13B", Table F) | InternViT-6B-224px | 336 |
| ``internvl-chat-vicuna-13b`` | ``OpenGVLab/InternVL-Chat-ViT-6B-Vicuna-13B`` (paper: "InternVL-Chat-19B", Table E) | InternViT-6B-224px | 336 |
| ``internvl-chat-vicuna-13b-448px`` | ``OpenGVLab/InternVL-Chat-ViT-6B-Vicuna-13B-448px`` (repo README) | InternViT-6B-448px-V1-0 | 448 |
| ``internvl-chat-tiny`` | none: the tiny released-layout checkpoint of ``internvl_chat/tiny.py`` (tests, demos) | tiny | 336 |

``--checkpoint`` takes a local chat folder or ``OWNER/NAME@REVISION``; ``--vision-tower`` a tower folder,
a released tower id or ``OWNER/NAME@REVISION`` (default: what ``mm_vision_tower`` names, see
``internvl_chat/loader.py``); ``--conv-template`` ``vicuna_v1`` (default, the eval scripts') or ``llava_v1``.
Revisions are commit shas from the huggingface.co commit pages: README / config-only commits after the
weights were uploaded (Apr 2024), so the weights behind them are the released ones.

To add a checkpoint: one ``HubRef`` constant and one ``@register_model`` function calling ``_chat``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from internvl_bench.cache import default_cache_dir
from model_zoo import register_model
from model_zoo.internvl import checkpoint as ckpt
from model_zoo.internvl.config import VisionConfig
from model_zoo.internvl_chat.adapter import InternVLChatModel, load_internvl_chat
from model_zoo.internvl_chat.config import ChatConfig, LanguageConfig
from model_zoo.internvl_chat.conversation import DEFAULT_TEMPLATE

VICUNA_7B = ckpt.HubRef("OpenGVLab/InternVL-Chat-ViT-6B-Vicuna-7B", "5a62edecca67848bea28f66156d02e11270cbbd9")
VICUNA_13B = ckpt.HubRef("OpenGVLab/InternVL-Chat-ViT-6B-Vicuna-13B", "597f20625a4c133a5a6998eb858f7e2278431513")
VICUNA_13B_448PX = ckpt.HubRef("OpenGVLab/InternVL-Chat-ViT-6B-Vicuna-13B-448px",
                               "7dbe8af9ef456ab45b678871fedb288127ec1d0c")
TINY_SEED = 0
_VICUNA_7B = LanguageConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                            num_key_value_heads=32, vocab_size=32000)
_VICUNA_13B = LanguageConfig(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                             num_key_value_heads=40, vocab_size=32000)
#: name -> (chat config, tower config) of the released checkpoints, for random-weight timings
ARCHITECTURES = {
    "internvl-chat-vicuna-7b": (ChatConfig(_VICUNA_7B, "OpenGVLab/InternViT-6B-224px", 3200), VisionConfig()),
    "internvl-chat-vicuna-13b": (ChatConfig(_VICUNA_13B, "OpenGVLab/InternViT-6B-224px", 3200), VisionConfig()),
    "internvl-chat-vicuna-13b-448px": (ChatConfig(_VICUNA_13B, "OpenGVLab/InternViT-6B-448px-V1-0", 3200),
                                       VisionConfig(image_size=448)),
}


def _chat(name: str, default: ckpt.HubRef | None, checkpoint: str | None, device: torch.device, dtype: torch.dtype,
          vision_tower: str | None, conv_template: str, attention: str) -> InternVLChatModel:
    return load_internvl_chat(checkpoint, default, device, dtype, vision_tower=vision_tower,
                              conv_template=conv_template, attention=attention, label=name)


@register_model("internvl-chat-vicuna-7b", kind="chat")
def internvl_chat_vicuna_7b(checkpoint: str | None, device: torch.device, dtype: torch.dtype,
                            vision_tower: str | None = None, conv_template: str = DEFAULT_TEMPLATE,
                            attention: str = "auto") -> InternVLChatModel:
    """InternVL-Chat 1.0, InternViT-6B + Vicuna-7B (paper: InternVL-Chat-13B, Table F)."""
    return _chat("internvl-chat-vicuna-7b", VICUNA_7B, checkpoint, device, dtype, vision_tower, conv_template,
                 attention)


@register_model("internvl-chat-vicuna-13b", kind="chat")
def internvl_chat_vicuna_13b(checkpoint: str | None, device: torch.device, dtype: torch.dtype,
                             vision_tower: str | None = None, conv_template: str = DEFAULT_TEMPLATE,
                            attention: str = "auto") -> InternVLChatModel:
    """InternVL-Chat 1.0, InternViT-6B + Vicuna-13B (paper: InternVL-Chat-19B, Table E)."""
    return _chat("internvl-chat-vicuna-13b", VICUNA_13B, checkpoint, device, dtype, vision_tower, conv_template,
                 attention)


@register_model("internvl-chat-vicuna-13b-448px", kind="chat")
def internvl_chat_vicuna_13b_448px(checkpoint: str | None, device: torch.device, dtype: torch.dtype,
                                   vision_tower: str | None = None, conv_template: str = DEFAULT_TEMPLATE,
                                   attention: str = "auto") -> InternVLChatModel:
    """InternVL-Chat 1.0 at 448 px, InternViT-6B-448px-V1-0 + Vicuna-13B."""
    return _chat("internvl-chat-vicuna-13b-448px", VICUNA_13B_448PX, checkpoint, device, dtype, vision_tower,
                 conv_template, attention)


def tiny_checkpoint_root(seed: int = TINY_SEED) -> Path:
    """The tiny checkpoint pair under the cache root, written once (atomically: concurrent ranks agree)."""
    from model_zoo.internvl_chat.tiny import write_tiny_chat

    root = default_cache_dir() / "tiny-checkpoints" / f"internvl-chat-tiny-seed{seed}"
    if not root.is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=root.parent, prefix=".tmp-"))
        write_tiny_chat(scratch, seed=seed)
        try:
            os.rename(scratch, root)
        except OSError:  # another process was first; its copy is identical
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    return root


@register_model("internvl-chat-tiny", kind="chat")
def internvl_chat_tiny(checkpoint: str | None, device: torch.device, dtype: torch.dtype,
                       vision_tower: str | None = None, conv_template: str = DEFAULT_TEMPLATE,
                            attention: str = "auto") -> InternVLChatModel:
    """Tiny InternVL-Chat in the released layout (seeded random weights, offline) for tests and demos."""
    from model_zoo.internvl_chat.tiny import CHAT_FOLDER

    checkpoint = checkpoint or str(tiny_checkpoint_root() / CHAT_FOLDER)
    return _chat("internvl-chat-tiny", None, checkpoint, device, dtype, vision_tower, conv_template,
                 attention)


__all__ = ["ARCHITECTURES", "VICUNA_7B", "VICUNA_13B", "VICUNA_13B_448PX", "tiny_checkpoint_root"]
