"""The demo models: tiny InternVL-C/G and InternVL-Chat trained on the synthetic world (``make demo``).

| name | weights (committed, official layouts) | architecture |
|---|---|---|
| ``internvl-c-demo`` / ``internvl-g-demo`` | ``demo_checkpoints/InternVL-demo/`` (InternVLModel config + safetensors shards) | InternViT 4x64, 64 px, patch 8 + attention pooling + QLLaMA 3x64 |
| ``internvl-chat-demo`` | ``demo_checkpoints/InternVL-Chat-ViT-demo/`` (LLaVA layout) + tower ``InternViT-demo/`` | the InternViT above, trained on in chat stages 4-5 (+3 unused blocks) + mlp2x_gelu + LLaMA 4x128 |

They are loaded by the same loaders as the released checkpoints (``load_internvl``, ``load_internvl_chat``).
``scripts/train_demo_models.py`` trains them (deterministic, CPU); each folder's ``training_log.json`` holds
the seed, the loss curve, the wall time and the sha256 of every file. The random ``*-tiny`` models remain
for unit tests.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from internvl_bench.errors import BenchError
from model_zoo import register_model
from model_zoo.internvl.adapter import InternVLModel, load_internvl
from model_zoo.internvl.config import InternVLConfig, QLlamaConfig, VisionConfig
from model_zoo.internvl_chat.config import LanguageConfig
from model_zoo.internvl_chat.adapter import InternVLChatModel, load_internvl_chat
from model_zoo.internvl_chat.conversation import DEFAULT_TEMPLATE

DEMO_ROOT = Path(__file__).parent / "demo_checkpoints"
CONTRASTIVE_DIR = DEMO_ROOT / "InternVL-demo"
CHAT_DIR = DEMO_ROOT / "InternVL-Chat-ViT-demo"
TOWER_DIR = DEMO_ROOT / "InternViT-demo"

#: the contrastive demo architecture (the vocabulary size is the trained tokenizer's)
CONTRASTIVE_CONFIG = InternVLConfig(
    vision=VisionConfig(hidden_size=64, intermediate_size=192, num_hidden_layers=4, num_attention_heads=4,
                        patch_size=8, image_size=64),
    qllama=QLlamaConfig(hidden_size=64, intermediate_size=176, num_hidden_layers=3, num_attention_heads=4,
                        vocab_size=1600, max_position_embeddings=128),
    clip_embed_dim=64, attn_pool_num_heads=4, num_query_token=8, cross_attention_frequency=2,
    tie_word_embeddings=False,
)

#: the chat demo's tower: the contrastive demo's InternViT (64 px, patch 8: 64 image tokens), as InternVL-Chat's
#: tower is InternVL's, with three more blocks that ``mm_vision_select_layer`` -4 leaves unused (the released
#: chat models run 45 of InternViT-6B's 48 blocks the same way); LLaMA's vocabulary is the trained tokenizer's
CHAT_VISION = replace(CONTRASTIVE_CONFIG.vision, num_hidden_layers=CONTRASTIVE_CONFIG.vision.num_hidden_layers + 3)
CHAT_LANGUAGE = LanguageConfig(hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4,
                               num_key_value_heads=4, vocab_size=900, max_position_embeddings=512)


def _folder(folder: Path, checkpoint: str | None) -> str:
    if checkpoint is not None:
        return checkpoint
    if not (folder / "config.json").is_file():
        raise BenchError(f"{folder}: demo weights missing; run 'python scripts/train_demo_models.py' to train them")
    return str(folder)


@register_model("internvl-c-demo")
def internvl_c_demo(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """Demo InternVL-C trained on the synthetic world (make demo)."""
    return load_internvl(_folder(CONTRASTIVE_DIR, checkpoint), None, "C", device, dtype)


@register_model("internvl-g-demo")
def internvl_g_demo(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """Demo InternVL-G trained on the synthetic world (make demo)."""
    return load_internvl(_folder(CONTRASTIVE_DIR, checkpoint), None, "G", device, dtype)


@register_model("internvl-chat-demo", kind="chat")
def internvl_chat_demo(checkpoint: str | None, device: torch.device, dtype: torch.dtype,
                       vision_tower: str | None = None, conv_template: str = DEFAULT_TEMPLATE,
                       attention: str = "auto") -> InternVLChatModel:
    """Demo InternVL-Chat trained on the synthetic world (make demo)."""
    return load_internvl_chat(_folder(CHAT_DIR, checkpoint), None, device, dtype, vision_tower=vision_tower,
                              conv_template=conv_template, attention=attention, label="internvl-chat-demo")


__all__ = ["CHAT_DIR", "CHAT_LANGUAGE", "CHAT_VISION", "CONTRASTIVE_CONFIG", "CONTRASTIVE_DIR", "TOWER_DIR"]
