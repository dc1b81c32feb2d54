"""Tiny InternVL checkpoints in the exact official format, for tests and ``make demo``.

``write_checkpoint`` writes what ``OpenGVLab/InternVL-14B-224px`` ships, at toy size: ``config.json``
(official structure), sharded ``model-0000i-of-0000n.safetensors`` with ``model.safetensors.index.json``
and a SentencePiece ``tokenizer.model``. ``random_state_dict`` gives seeded weights under the official
key names (including the unused ``qllama.lm_head`` and ``itm_head``), scaled so every block matters.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from model_zoo.internvl.config import InternVLConfig, VisionConfig

#: sentences for training the tiny SentencePiece model (English, digits, a little Chinese)
_CORPUS = [
    "a photo of a red panda sitting on a tree",
    "two cats sleeping on a sofa in the living room",
    "a man riding a bicycle down the street",
    "a dog running on the beach with a ball",
    "the quick brown fox jumps over the lazy dog",
    "summarize: a bowl of fruit on a wooden table",
    "a group of people standing around a kitchen",
    "an airplane flying in the blue sky over clouds",
    "a close up photo of a small bird on a branch",
    "children playing football in a green park 2024",
    "一张熊猫的照片",
    "两只猫在沙发上睡觉",
]


def train_tokenizer(path: str | Path, vocab_size: int = 384, corpus: Sequence[str] = tuple(_CORPUS),
                    **trainer_options) -> Path:
    """Train a small BPE SentencePiece model with byte fallback (unk 0, bos 1, eos 2, like LLaMA);
    ``trainer_options`` override or add SentencePiece trainer settings."""
    import sentencepiece

    buffer = io.BytesIO()
    options = dict(
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        normalization_rule_name="identity",
        num_threads=1,
        minloglevel=2,
    )
    options.update(trainer_options)
    sentencepiece.SentencePieceTrainer.Train(sentence_iterator=iter(list(corpus) * 20), model_writer=buffer, **options)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def vision_shapes(vision: VisionConfig, num_positions: int, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Every tensor name of an InternViT state dict (``embeddings.*``, ``encoder.layers.N.*``) and its shape."""
    v, c = vision, vision.hidden_size
    shapes: dict[str, tuple[int, ...]] = {
        prefix + "embeddings.class_embedding": (1, 1, c),
        prefix + "embeddings.patch_embedding.weight": (c, v.num_channels, v.patch_size, v.patch_size),
        prefix + "embeddings.patch_embedding.bias": (c,),
        prefix + "embeddings.position_embedding": (1, num_positions, c),
    }
    for i in range(v.num_hidden_layers):
        p = f"{prefix}encoder.layers.{i}."
        shapes.update({
            p + "attn.qkv.weight": (3 * c, c), p + "attn.proj.weight": (c, c), p + "attn.proj.bias": (c,),
            p + "mlp.fc1.weight": (v.intermediate_size, c), p + "mlp.fc1.bias": (v.intermediate_size,),
            p + "mlp.fc2.weight": (c, v.intermediate_size), p + "mlp.fc2.bias": (c,),
            p + "norm1.weight": (c,), p + "norm2.weight": (c,), p + "ls1": (c,), p + "ls2": (c,),
        })
        if v.qkv_bias:
            shapes[p + "attn.qkv.bias"] = (3 * c,)
        if v.qk_normalization:
            shapes[p + "attn.q_norm.weight"] = (c,)
            shapes[p + "attn.k_norm.weight"] = (c,)
    return shapes


def official_shapes(config: InternVLConfig, with_unused: bool = True) -> dict[str, tuple[int, ...]]:
    """Every tensor name of the official InternVLModel state dict and its shape."""
    v, q = config.vision, config.qllama
    c, d, e = v.hidden_size, q.hidden_size, config.clip_embed_dim
    shapes = vision_shapes(v, config.num_positions, prefix="vision_model.")
    shapes["qllama.model.embed_tokens.weight"] = (q.vocab_size, d)
    cross = set(config.cross_attention_layers())
    for i in range(q.num_hidden_layers):
        p = f"qllama.model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[p + f"self_attn.{name}.weight"] = (d, d)
        if i in cross:
            shapes.update({
                p + "cross_attn.q_proj.weight": (d, d), p + "cross_attn.o_proj.weight": (d, d),
                p + "cross_attn.k_proj.weight": (d, c), p + "cross_attn.v_proj.weight": (d, c),
                p + "cross_attn.norm1.weight": (d,), p + "cross_attn.norm2.weight": (c,),
            })
        shapes.update({
            p + "mlp.gate_proj.weight": (q.intermediate_size, d), p + "mlp.up_proj.weight": (q.intermediate_size, d),
            p + "mlp.down_proj.weight": (d, q.intermediate_size),
            p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
        })
    shapes["qllama.model.norm.weight"] = (d,)
    shapes["query_tokens"] = (1, config.num_query_token, d)
    shapes["text_projection"] = (d, e)
    shapes["logit_scale"] = ()
    for head, dim in (("clip_projector", c), ("clip_projector2", d)):
        for norm in ("norm1_q", "norm1_k", "norm1_v"):
            shapes[f"{head}.{norm}.weight"] = (dim,)
            shapes[f"{head}.{norm}.bias"] = (dim,)
        for name in ("q", "k", "v"):
            shapes[f"{head}.cross_attn.{name}.weight"] = (dim, dim)
            shapes[f"{head}.cross_attn.{name}_bias"] = (dim,)
        shapes[f"{head}.cross_attn.proj.weight"] = (e, dim)
        shapes[f"{head}.cross_attn.proj.bias"] = (e,)
    if with_unused:
        shapes["qllama.lm_head.weight"] = (q.vocab_size, d)
        shapes["itm_head.weight"] = (2, d)
        shapes["itm_head.bias"] = (2,)
    return shapes


def random_state_dict(config: InternVLConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights under the official InternVLModel names (see ``random_tensors``)."""
    return random_tensors(official_shapes(config), seed)


def random_tensors(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded values for named tensors, drawn in ``shapes`` order: norms near 1, layer scales near 0.5,
    projections ~1/sqrt(fan_in), values representable in bfloat16."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=gen)
        leaf = name.rsplit(".", 1)[-1]
        if name == "logit_scale":
            value = torch.tensor(math.log(1 / 0.07))
        elif "norm" in name and leaf == "weight":
            value = 1.0 + 0.2 * noise
        elif leaf in ("ls1", "ls2"):
            value = 0.5 + 0.1 * noise
        elif leaf == "bias" or leaf.endswith("_bias"):
            value = 0.1 * noise
        elif len(shape) >= 2 and "embed" not in name and name not in ("query_tokens",):
            fan_in = math.prod(shape[1:]) if name != "text_projection" else shape[0]
            value = noise / math.sqrt(fan_in)
        else:  # embeddings, positions, class token, queries
            value = 0.5 * noise
        # rounded to bfloat16 so a bf16 checkpoint of these weights reloads them exactly
        state[name] = value.float().to(torch.bfloat16).float()
    return state


def write_checkpoint(folder: str | Path, config: InternVLConfig, state: dict[str, torch.Tensor],
                     num_shards: int = 2, dtype: torch.dtype = torch.float32,
                     tokenizer: str | Path | None = None, config_overrides: dict | None = None) -> Path:
    """Write ``config.json``, sharded safetensors + index and (optionally) a copy of ``tokenizer.model``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = config.to_official_dict()
    data.update(config_overrides or {})
    data = {k: v for k, v in data.items() if v is not _DROP}
    (folder / "config.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    write_shards(folder, state, num_shards, dtype, "safetensors")
    if tokenizer is not None:
        (folder / "tokenizer.model").write_bytes(Path(tokenizer).read_bytes())
    return folder


def write_shards(folder: Path, state: dict[str, torch.Tensor], num_shards: int, dtype: torch.dtype,
                 weights_format: str) -> None:
    """Hub-style shards + index: ``model-0000N-of-0000M.safetensors`` + ``model.safetensors.index.json``, or
    (``weights_format="bin"``) ``pytorch_model-0000N-of-0000M.bin`` pickles of plain tensor dicts +
    ``pytorch_model.bin.index.json``, as older releases ship them."""
    from safetensors.torch import save_file

    stem, suffix = ("model", "safetensors") if weights_format == "safetensors" else ("pytorch_model", "bin")
    names = list(state)
    per = math.ceil(len(names) / num_shards)
    weight_map, total = {}, 0
    for i in range(num_shards):
        shard = f"{stem}-{i + 1:05d}-of-{num_shards:05d}.{suffix}"
        part = {n: state[n].to(dtype).contiguous() for n in names[i * per:(i + 1) * per]}
        total += sum(t.numel() * t.element_size() for t in part.values())
        if weights_format == "safetensors":
            save_file(part, str(folder / shard), metadata={"format": "pt"})
        else:
            torch.save(part, folder / shard)
        weight_map.update({n: shard for n in part})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / f"{stem}.{suffix}.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


#: marker for ``config_overrides``: remove the key from config.json
_DROP = object()
DROP = _DROP


def build_tiny(mode: str, device, dtype: torch.dtype, tokenizer_file: str | Path, seed: int = 0):
    """The registered ``internvl-{c,g}-tiny``: ``TINY`` with ``random_state_dict(seed)``, loaded through the
    same streamed loader as real checkpoints (so it equals a tiny checkpoint written by ``write_checkpoint``)."""
    import hashlib

    from model_zoo.internvl.adapter import InternVLModel
    from model_zoo.internvl.checkpoint import load_network
    from model_zoo.internvl.config import TINY
    from model_zoo.internvl.tokenizer import InternVLTokenizer

    device = torch.device(device)
    state = random_state_dict(TINY, seed)
    net = load_network(TINY, iter(state.items()), device, dtype, f"tiny(seed={seed})")
    tokenizer = InternVLTokenizer(tokenizer_file, max_length=TINY.max_text_length)
    identity = {"model_id": "internvl-tiny", "revision": None, "weights": f"random(seed={seed})"}
    fingerprint = hashlib.sha256(f"tiny|{seed}|{TINY}".encode()).hexdigest()
    return InternVLModel(net, tokenizer, mode, device, dtype, "auto", identity, fingerprint)
