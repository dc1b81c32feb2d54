"""Typed configuration of InternVL-Chat 1.0, parsed from the released LLaVA ``config.json``.

The file (``architectures: ["LlavaLlamaForCausalLM"]``, ``model_type: "llava"``) is a LlamaConfig plus the
LLaVA multimodal keys. Only the settings the released checkpoints use are accepted; anything else is a
one-line error naming the key, because a silently different projector or feature layer would change
every answer:

- ``mm_projector_type``: ``linear`` or ``mlp<N>x_gelu`` (the released models: ``mlp2x_gelu``);
- ``mm_vision_select_layer``: an index into the tower's hidden states (embeddings = 0; released: -4);
- ``mm_vision_select_feature``: ``patch`` (CLS dropped) or ``cls_patch``;
- ``image_aspect_ratio``: ``pad`` (pad to a square with the mean colour) or absent (no padding);
- ``mm_use_im_start_end`` / ``tie_word_embeddings``: false.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from internvl_bench.errors import BenchError
from model_zoo.internvl.config import VisionConfig

PROJECTOR = re.compile(r"^(linear|mlp(?P<depth>\d+)x_gelu)$")
SELECT_FEATURES = ("patch", "cls_patch")
ASPECT_RATIOS = ("pad", None)


@dataclass(frozen=True)
class LanguageConfig:
    """The LLaMA decoder (Vicuna v1.5 7B / 13B at full size)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    hidden_act: str = "silu"
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 0

    def to_transformers(self, attn_implementation: str):
        """The equivalent ``transformers.LlamaConfig``."""
        from transformers import LlamaConfig

        config = LlamaConfig(
            hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads, vocab_size=self.vocab_size,
            max_position_embeddings=self.max_position_embeddings, rms_norm_eps=self.rms_norm_eps,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta}, hidden_act=self.hidden_act,
            bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id,
            tie_word_embeddings=False, attention_bias=False, mlp_bias=False, use_cache=True,
        )
        config._attn_implementation = attn_implementation
        return config

    def parameter_count(self) -> int:
        h, i, kv = self.hidden_size, self.intermediate_size, self.num_key_value_heads
        head = h // self.num_attention_heads
        per_layer = 2 * h * h + 2 * h * kv * head + 3 * h * i + 2 * h
        return 2 * self.vocab_size * h + self.num_hidden_layers * per_layer + h


@dataclass(frozen=True)
class ChatConfig:
    language: LanguageConfig
    #: ``mm_vision_tower`` as written (a hub id or a path)
    vision_tower: str
    mm_hidden_size: int
    projector_type: str = "mlp2x_gelu"
    select_layer: int = -4
    select_feature: str = "patch"
    image_aspect_ratio: str | None = "pad"

    @property
    def projector_depth(self) -> int:
        match = PROJECTOR.match(self.projector_type)
        assert match is not None
        return int(match.group("depth") or 1)

    def layers_to_run(self, vision: VisionConfig) -> int:
        """How many tower blocks produce ``hidden_states[select_layer]`` (entry 0 is the embeddings)."""
        count = vision.num_hidden_layers + 1
        index = self.select_layer if self.select_layer >= 0 else count + self.select_layer
        return index

    def check_tower(self, vision: VisionConfig, tower_source: str, chat_source: str) -> None:
        """The tower must feed the projector and reach the selected layer."""
        if vision.hidden_size != self.mm_hidden_size:
            raise BenchError(f"{tower_source}: tower hidden_size {vision.hidden_size} but {chat_source} has "
                             f"mm_hidden_size {self.mm_hidden_size}; pass the tower the chat model was trained with")
        count = vision.num_hidden_layers + 1
        if not -count <= self.select_layer < count:
            raise BenchError(f"{chat_source}: mm_vision_select_layer {self.select_layer} is outside the tower's "
                             f"{count} hidden states ({tower_source}); fix config.json or the tower")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> ChatConfig:
        if data.get("model_type") not in ("llava", "llava_llama"):
            raise BenchError(f"{source}: model_type is '{data.get('model_type')}', expected 'llava' "
                             "(an InternVL-Chat 1.0 / LLaVA-1.5 checkpoint)")
        if "mm_vision_tower" not in data:
            raise BenchError(f"{source}: no 'mm_vision_tower' key; not a LLaVA chat checkpoint")
        projector = str(data.get("mm_projector_type", "linear"))
        if not PROJECTOR.match(projector):
            raise BenchError(f"{source}: mm_projector_type '{projector}' is not supported; "
                             "use 'linear' or 'mlp<N>x_gelu' (the released models use mlp2x_gelu)")
        feature = data.get("mm_vision_select_feature", "patch")
        if feature not in SELECT_FEATURES:
            raise BenchError(f"{source}: mm_vision_select_feature '{feature}' is not supported; use patch or cls_patch")
        layer = data.get("mm_vision_select_layer", -4)
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise BenchError(f"{source}: mm_vision_select_layer must be an integer, got {layer!r}")
        aspect = data.get("image_aspect_ratio", None)
        if aspect not in ASPECT_RATIOS:
            raise BenchError(f"{source}: image_aspect_ratio '{aspect}' is not supported; use 'pad' (the released "
                             "models) or remove the key")
        for key in ("mm_use_im_start_end", "tie_word_embeddings"):
            if data.get(key):
                raise BenchError(f"{source}: {key} true is not supported (the released models have false)")
        if data.get("rope_scaling"):
            raise BenchError(f"{source}: rope_scaling {data['rope_scaling']!r} is not supported (Vicuna v1.5 has none)")
        try:
            heads = int(data["num_attention_heads"])
            language = LanguageConfig(
                hidden_size=int(data["hidden_size"]), intermediate_size=int(data["intermediate_size"]),
                num_hidden_layers=int(data["num_hidden_layers"]), num_attention_heads=heads,
                num_key_value_heads=int(data.get("num_key_value_heads") or heads),
                vocab_size=int(data["vocab_size"]),
                max_position_embeddings=int(data.get("max_position_embeddings", 4096)),
                rms_norm_eps=float(data.get("rms_norm_eps", 1e-5)),
                rope_theta=float(data.get("rope_theta", 10000.0)),
                hidden_act=str(data.get("hidden_act", "silu")),
                bos_token_id=int(data.get("bos_token_id", 1)), eos_token_id=int(data.get("eos_token_id", 2)),
                pad_token_id=int(data.get("pad_token_id") or 0),
            )
            mm_hidden = int(data["mm_hidden_size"])
        except KeyError as exc:
            raise BenchError(f"{source}: missing key {exc.args[0]!r}; re-download config.json") from None
        if language.hidden_size % language.num_attention_heads:
            raise BenchError(f"{source}: hidden_size must divide by num_attention_heads")
        if language.hidden_act != "silu":
            raise BenchError(f"{source}: hidden_act '{language.hidden_act}' is not Vicuna's silu")
        return cls(language=language, vision_tower=str(data["mm_vision_tower"]), mm_hidden_size=mm_hidden,
                   projector_type=projector, select_layer=layer, select_feature=feature, image_aspect_ratio=aspect)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path`` with one-line errors naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{path}: {what} not found; pass a complete checkpoint folder") from None
    except OSError as exc:
        raise BenchError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except ValueError as exc:
        raise BenchError(f"{path}: {what} is not valid JSON ({exc}); re-download it") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: {what} must be a JSON object")
    return data


def load_chat_config(folder: Path) -> ChatConfig:
    path = Path(folder) / "config.json"
    return ChatConfig.from_dict(read_json(path, "chat config.json"), str(path))


def load_tower_config(folder: Path) -> VisionConfig:
    """``InternVisionConfig`` of an InternViT folder (``model_type: intern_vit_6b``; a top-level InternVL
    config's ``vision_config`` is accepted too)."""
    path = Path(folder) / "config.json"
    data = read_json(path, "vision tower config.json")
    if "vision_config" in data:
        data = data["vision_config"]
    if data.get("model_type") not in (None, "intern_vit_6b"):
        raise BenchError(f"{path}: model_type '{data.get('model_type')}' is not an InternViT tower (intern_vit_6b)")
    if data.get("norm_type", "rms_norm") != "rms_norm":
        raise BenchError(f"{path}: norm_type '{data['norm_type']}' is not InternViT-6B's rms_norm")
    names = {f for f in VisionConfig.__dataclass_fields__}  # type: ignore[attr-defined]
    return VisionConfig(**{k: v for k, v in data.items() if k in names and v is not None})
