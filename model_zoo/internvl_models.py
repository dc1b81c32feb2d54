"""Registered InternVL models: the paper's InternVL-C and InternVL-G and their checkpoints.

| name | checkpoint (default, pinned) | resolution |
|---|---|---|
| ``internvl-c`` / ``internvl-g`` | ``OpenGVLab/InternVL-14B-224px`` | 224 |
| ``internvl-c-pth`` | ``OpenGVLab/InternVL`` file ``internvl_c_13b_224px.pth`` (README InternVL-C rows) | 224 |
| ``internvl-{c,g}-flickr30k-ft`` | ``OpenGVLab/InternVL-14B-Flickr30K-FT-364px`` (Table D fine-tuned) | 364 |
| ``internvl-{c,g}-flickrcn-ft`` | ``OpenGVLab/InternVL-14B-FlickrCN-FT-364px`` (Table D fine-tuned) | 364 |
| ``internvl-{c,g}-tiny`` | none: tiny config, seeded random weights, committed tokenizer (tests, ``make demo``) | 16 |

``--checkpoint`` takes a local folder (Hugging Face layout), a local ``.pth`` or ``OWNER/NAME@REVISION``
(``OWNER/NAME@REVISION:FILE`` for a single file). Revisions are pinned commit shas, taken from the
Hugging Face commit pages (see the constants below); weights behind a pinned sha never change.

To add a checkpoint: one ``HubRef`` constant and one ``@register_model`` function calling ``load_internvl``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from model_zoo import register_model
from model_zoo.internvl import checkpoint as ckpt
from model_zoo.internvl.adapter import InternVLModel, load_internvl, pth_config
from model_zoo.internvl.config import FULL_SIZE, TINY

# Commit shas from huggingface.co/<repo>/commit/<sha> pages (README-only commits made after the weights
# were uploaded, so the weights at these revisions are the ones the paper's numbers came from).
INTERNVL_14B_224PX = ckpt.HubRef("OpenGVLab/InternVL-14B-224px", "f64544bca54103b7ea098be7529c274aaf506849")
FLICKR30K_FT_364PX = ckpt.HubRef("OpenGVLab/InternVL-14B-Flickr30K-FT-364px", "d266420e2d43143818bb94115208bb5faa3b0d06")
FLICKRCN_FT_364PX = ckpt.HubRef("OpenGVLab/InternVL-14B-FlickrCN-FT-364px", "a32fcb6a7e4fd7a578831ff474b0ac7b98695ca8")
# OpenGVLab/InternVL at the commit that added seed.jsonl (Apr 2024); internvl_c_13b_224px.pth was uploaded
# in commit 0de5e52 (Dec 2023) and is unchanged since.
INTERNVL_C_PTH = ckpt.HubRef("OpenGVLab/InternVL", "add38bf0704a90a2471cb03a1e492f9a41fdef35", "internvl_c_13b_224px.pth")

_FT_364 = replace(FULL_SIZE, force_image_size=364)
#: name -> (architecture, mode), for building a registered model with random weights (Table G timings)
ARCHITECTURES = {
    "internvl-c": (FULL_SIZE, "C"), "internvl-g": (FULL_SIZE, "G"), "internvl-c-pth": (pth_config(257), "C"),
    "internvl-c-flickr30k-ft": (_FT_364, "C"), "internvl-g-flickr30k-ft": (_FT_364, "G"),
    "internvl-c-flickrcn-ft": (_FT_364, "C"), "internvl-g-flickrcn-ft": (_FT_364, "G"),
    "internvl-c-tiny": (TINY, "C"), "internvl-g-tiny": (TINY, "G"),
}

TINY_TOKENIZER = Path(__file__).parent / "internvl" / "assets" / "tiny_tokenizer.model"
TINY_SEED = 0


@register_model("internvl-c")
def internvl_c(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """InternVL-C (InternViT-6B + attention pooling), OpenGVLab/InternVL-14B-224px."""
    return load_internvl(checkpoint, INTERNVL_14B_224PX, "C", device, dtype)


@register_model("internvl-g")
def internvl_g(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """InternVL-G (InternViT-6B + QLLaMA queries), OpenGVLab/InternVL-14B-224px."""
    return load_internvl(checkpoint, INTERNVL_14B_224PX, "G", device, dtype)


@register_model("internvl-c-pth")
def internvl_c_pth(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """InternVL-C from the PyTorch internvl_c_13b_224px.pth (the repo README's InternVL-C rows)."""
    return load_internvl(checkpoint, INTERNVL_C_PTH, "C", device, dtype)


@register_model("internvl-c-flickr30k-ft")
def internvl_c_flickr30k_ft(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """InternVL-C fine-tuned on Flickr30K at 364 px (Table D)."""
    return load_internvl(checkpoint, FLICKR30K_FT_364PX, "C", device, dtype)


@register_model("internvl-g-flickr30k-ft")
def internvl_g_flickr30k_ft(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """InternVL-G fine-tuned on Flickr30K at 364 px (Table D)."""
    return load_internvl(checkpoint, FLICKR30K_FT_364PX, "G", device, dtype)


@register_model("internvl-c-flickrcn-ft")
def internvl_c_flickrcn_ft(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """InternVL-C fine-tuned on Flickr30K-CN at 364 px (Table D)."""
    return load_internvl(checkpoint, FLICKRCN_FT_364PX, "C", device, dtype)


@register_model("internvl-g-flickrcn-ft")
def internvl_g_flickrcn_ft(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """InternVL-G fine-tuned on Flickr30K-CN at 364 px (Table D)."""
    return load_internvl(checkpoint, FLICKRCN_FT_364PX, "G", device, dtype)


def _tiny(checkpoint: str | None, mode: str, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    if checkpoint is not None:
        return load_internvl(checkpoint, INTERNVL_14B_224PX, mode, device, dtype)
    from model_zoo.internvl.tiny import build_tiny

    return build_tiny(mode, device, dtype, TINY_TOKENIZER, seed=TINY_SEED)


@register_model("internvl-c-tiny")
def internvl_c_tiny(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """Tiny InternVL-C (random seeded weights, offline) for tests and demos; not a real model."""
    return _tiny(checkpoint, "C", device, dtype)


@register_model("internvl-g-tiny")
def internvl_g_tiny(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> InternVLModel:
    """Tiny InternVL-G (random seeded weights, offline) for tests and demos; not a real model."""
    return _tiny(checkpoint, "G", device, dtype)


__all__ = ["ARCHITECTURES", "INTERNVL_14B_224PX", "TINY_TOKENIZER"]
