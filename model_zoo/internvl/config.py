"""Typed configuration of InternVL-C / InternVL-G, parsed from the official ``config.json``.

The official file (``architectures: ["InternVLModel"]``) nests a ``vision_config`` (InternViT) and a
``qllama_config`` (a LlamaConfig) under top-level fields. Missing keys take the defaults of the
official config classes, so a config written by the official code parses to the same architecture.

Facts the official code hard-codes (vision width 3200 and 96 queries inside QLLaMA) are taken from
the config here: ``vision_config.hidden_size`` and the top-level ``num_query_token``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from internvl_bench.errors import BenchError

#: activation names of the official configs -> our implementation names
ACTIVATIONS = ("gelu", "silu", "relu", "gelu_new", "gelu_pytorch_tanh", "quick_gelu")


@dataclass(frozen=True)
class VisionConfig:
    """InternViT: defaults are InternViT-6B (hidden 3200, 48 layers, 25 heads, patch 14, 224 px)."""

    hidden_size: int = 3200
    intermediate_size: int = 12800
    num_hidden_layers: int = 48
    num_attention_heads: int = 25
    patch_size: int = 14
    image_size: int = 224
    num_channels: int = 3
    qkv_bias: bool = False
    qk_normalization: bool = True
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu"

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class QLlamaConfig:
    """QLLaMA: defaults are LLaMA-7B with the Chinese-LLaMA vocabulary (49954)."""

    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    vocab_size: int = 49954
    rms_norm_eps: float = 1e-6
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    #: RoPE base; the official QLLaMA ignores ``rope_theta`` and always uses 10000
    rope_base: float = 10000.0
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 0


@dataclass(frozen=True)
class InternVLConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    qllama: QLlamaConfig = field(default_factory=QLlamaConfig)
    clip_embed_dim: int = 768
    attn_pool_num_heads: int = 16
    num_query_token: int = 96
    #: cross-attention in QLLaMA layers with ``idx % frequency == 0``; 0 = no cross-attention (plain LLaMA)
    cross_attention_frequency: int = 2
    force_image_size: int | None = None
    use_backbone_lora: int = 0
    use_qllama_lora: int = 0
    #: top-level ``tie_word_embeddings`` as the official loading sees it (absent in the file -> True)
    tie_word_embeddings: bool = True
    #: text length used by the official tokenizer wrapper
    max_text_length: int = 80

    @property
    def image_size(self) -> int:
        """S: the resolution the checkpoint's position embeddings were stored for."""
        return self.force_image_size or self.vision.image_size

    @property
    def num_positions(self) -> int:
        return (self.image_size // self.vision.patch_size) ** 2 + 1

    def cross_attention_layers(self) -> list[int]:
        if self.cross_attention_frequency <= 0:
            return []
        return [i for i in range(self.qllama.num_hidden_layers) if i % self.cross_attention_frequency == 0]

    # -- official config.json round trip -------------------------------------------------------
    @classmethod
    def from_official_dict(cls, data: dict[str, Any], source: str = "config.json") -> InternVLConfig:
        """Parse the official ``InternVLModel`` config dict (the structure of its config.json)."""
        if data.get("model_type") not in (None, "internvl"):
            raise BenchError(
                f"{source}: model_type is '{data.get('model_type')}', expected 'internvl' (an InternVLModel checkpoint)"
            )
        vision_raw = dict(data.get("vision_config") or {})
        if vision_raw.get("norm_type", "rms_norm") != "rms_norm":
            raise BenchError(f"{source}: vision_config.norm_type '{vision_raw['norm_type']}' is not InternViT-6B's "
                             "rms_norm; this loader supports the InternVL-14B (InternViT-6B + QLLaMA) checkpoints")
        qllama_raw = dict(data.get("qllama_config") or {})
        vision = VisionConfig(**_pick(VisionConfig, vision_raw))
        qkw = _pick(QLlamaConfig, qllama_raw)
        if qllama_raw.get("pad_token_id") is None:
            qkw.pop("pad_token_id", None)
        qllama = QLlamaConfig(**qkw)
        for name, act in (("vision_config.hidden_act", vision.hidden_act), ("qllama_config.hidden_act", qllama.hidden_act)):
            if act not in ACTIVATIONS:
                raise BenchError(f"{source}: {name} '{act}' is not supported; use one of {', '.join(ACTIVATIONS)}")
        config = cls(
            vision=vision,
            qllama=qllama,
            clip_embed_dim=int(data.get("clip_embed_dim", 768)),
            attn_pool_num_heads=int(data.get("attn_pool_num_heads", 16)),
            num_query_token=int(data.get("num_query_token", 96)),
            cross_attention_frequency=int(data.get("cross_attention_frequency", 2)),
            force_image_size=data.get("force_image_size") or None,
            use_backbone_lora=int(data.get("use_backbone_lora", 0) or 0),
            use_qllama_lora=int(data.get("use_qllama_lora", 0) or 0),
            tie_word_embeddings=bool(data.get("tie_word_embeddings", True)),
        )
        config.validate(source)
        return config

    def to_official_dict(self) -> dict[str, Any]:
        """The official config.json structure (what ``InternVLConfig.to_dict`` writes, minus HF bookkeeping)."""
        vision = asdict(self.vision)
        vision.update(model_type="intern_vit_6b", architectures=["InternVisionModel"], use_flash_attn=False,
                      dropout=0.0, drop_path_rate=0.0, attention_dropout=0.0, initializer_range=0.02,
                      initializer_factor=0.1)
        qllama = asdict(self.qllama)
        qllama.pop("rope_base")
        qllama.update(model_type="llama", architectures=["LlamaForCausalLM"], tie_word_embeddings=False,
                      num_query_token=self.num_query_token, cross_attention_frequency=self.cross_attention_frequency,
                      initializer_range=0.02, use_cache=False)
        data: dict[str, Any] = {
            "architectures": ["InternVLModel"],
            "model_type": "internvl",
            "vision_config": vision,
            "qllama_config": qllama,
            "clip_embed_dim": self.clip_embed_dim,
            "attn_pool_num_heads": self.attn_pool_num_heads,
            "num_query_token": self.num_query_token,
            "cross_attention_frequency": self.cross_attention_frequency,
            "force_image_size": self.force_image_size,
            "use_backbone_lora": self.use_backbone_lora,
            "use_qllama_lora": self.use_qllama_lora,
            "hidden_size": self.qllama.hidden_size,
            "label_smoothing": 0.0,
            "initializer_range": 0.02,
            "max_txt_len": 32,
        }
        if not self.tie_word_embeddings:
            data["tie_word_embeddings"] = False
        return data

    def validate(self, source: str = "config") -> None:
        v, q = self.vision, self.qllama
        checks = [
            (v.hidden_size % v.num_attention_heads == 0, "vision_config.hidden_size must divide by num_attention_heads"),
            (q.hidden_size % q.num_attention_heads == 0, "qllama_config.hidden_size must divide by num_attention_heads"),
            (v.hidden_size % self.attn_pool_num_heads == 0, "attn_pool_num_heads must divide vision_config.hidden_size"),
            (q.hidden_size % self.attn_pool_num_heads == 0, "attn_pool_num_heads must divide qllama_config.hidden_size"),
            (self.image_size % v.patch_size == 0, "the image size must be a multiple of patch_size"),
        ]
        for ok, message in checks:
            if not ok:
                raise BenchError(f"{source}: {message}")


def _pick(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in cls.__dataclass_fields__.values()}  # type: ignore[attr-defined]
    return {k: v for k, v in raw.items() if k in names and v is not None}


def load_config(path: str | Path) -> InternVLConfig:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BenchError(f"{path}: cannot read the checkpoint config ({exc.strerror}); pass a checkpoint folder with config.json") from exc
    except ValueError as exc:
        raise BenchError(f"{path}: not valid JSON ({exc}); re-download the checkpoint") from exc
    return InternVLConfig.from_official_dict(data, str(path))


#: The full-size InternVL-14B architecture (InternViT-6B + QLLaMA-8B), as in OpenGVLab/InternVL-14B-224px.
FULL_SIZE = InternVLConfig()

#: A tiny architecture for tests and ``make demo``: different vision / text widths and head counts so
#: transposition bugs show, two cross-attention layers out of three.
TINY = InternVLConfig(
    vision=VisionConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=3,
                        patch_size=4, image_size=16),
    qllama=QLlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                        vocab_size=384, max_position_embeddings=128),
    clip_embed_dim=16,
    attn_pool_num_heads=4,
    num_query_token=6,
    cross_attention_frequency=2,
)

__all__ = ["FULL_SIZE", "TINY", "InternVLConfig", "QLlamaConfig", "VisionConfig", "load_config"]
