"""``ContrastiveModel`` adapter for InternVL-C / InternVL-G and the functions that build one.

``load_internvl`` is the one entry point: it resolves the checkpoint (folder, hub id@revision, ``.pth``),
parses the config, streams the weights and wraps the network with its tokenizer. Modes:
- ``C``: image feature = ``clip_projector(ViT(x))``;
- ``G``: image feature = unit(``clip_projector2(QLLaMA queries)``) + unit(``clip_projector(ViT(x))``).
Text features are the same in both modes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from internvl_bench.errors import BenchError
from model_zoo.base import PRECISION_NAMES, ContrastiveModel, build_image_transform, state_dict_fingerprint
from model_zoo.internvl import checkpoint as ckpt
from model_zoo.internvl.config import FULL_SIZE, InternVLConfig, QLlamaConfig, VisionConfig, load_config
from model_zoo.internvl.layers import resolve_backend
from model_zoo.internvl.network import InternVLNet
from model_zoo.internvl.tokenizer import InternVLTokenizer, read_added_tokens

MODES = ("C", "G")
#: where the ``.pth`` InternVL-C gets its tokenizer when no ``tokenizer.model`` lies next to it: the same
#: Chinese-LLaMA/Alpaca vocabulary (49954) ships with the Hugging Face checkpoint
PTH_TOKENIZER_FALLBACK = ckpt.HubRef("OpenGVLab/InternVL-14B-224px", "f64544bca54103b7ea098be7529c274aaf506849",
                                     "tokenizer.model")


class InternVLModel(ContrastiveModel):
    """InternVL-C or InternVL-G behind the suite's interface. Features come back as float32 on CPU."""

    def __init__(self, net: InternVLNet, tokenizer: InternVLTokenizer, mode: str, device: torch.device,
                 dtype: torch.dtype, attention: str, identity: dict[str, Any], fingerprint: str | None = None) -> None:
        if mode not in MODES:
            raise BenchError(f"unknown InternVL mode '{mode}'; choose from {', '.join(MODES)}")
        if mode == "G" and not net.with_queries:
            raise BenchError("InternVL-G needs QLLaMA query tokens; this checkpoint only has the InternVL-C parts")
        self.net = net
        self.tokenizer = tokenizer
        self.mode = mode
        self.device = device
        self.dtype = dtype
        self.config = net.config
        self.image_size = net.config.image_size
        self.embed_dim = net.config.clip_embed_dim
        self.name = f"internvl-{mode.lower()}"
        self.attention = resolve_backend(attention, device)
        net.set_attention_backend(self.attention)
        self._identity = identity
        self._fingerprint = fingerprint

    # -- ContrastiveModel ------------------------------------------------------------------------
    def image_transform(self, mode: str = "squash") -> Callable[[Image.Image], torch.Tensor]:
        return build_image_transform(self.image_size, mode)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        feats = self.net.image_features_c(pixels) if self.mode == "C" else self.net.image_features_g(pixels)
        return _finish(feats, normalize)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        ids = self.tokenize(texts).to(self.device)
        return _finish(self.net.text_features(ids), normalize)

    @torch.no_grad()
    def encode_ids(self, ids: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Text features from already tokenised ids [B, N] (pad id 0)."""
        return _finish(self.net.text_features(ids.to(self.device)), normalize)

    def logit_scale(self) -> float:
        return float(self.net.logit_scale.float().exp())

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = state_dict_fingerprint(self.net)
        digest = hashlib.sha256(f"{self._fingerprint}|mode={self.mode}|{self.dtype}".encode())
        digest.update(hashlib.sha256(self.tokenizer.model_file.read_bytes()).digest())
        return digest.hexdigest()

    def provenance(self) -> dict[str, Any]:
        return {
            **self._identity,
            "mode": f"InternVL-{self.mode}",
            "resolution": self.image_size,
            "precision": PRECISION_NAMES[self.dtype],
            "attention_backend": self.attention,
            "text_prefix": self.tokenizer.prefix,
            "text_max_length": self.tokenizer.max_length,
            "text_padding": self.tokenizer.padding,
        }

    def set_attention_backend(self, backend: str) -> None:
        self.attention = resolve_backend(backend, self.device)
        self.net.set_attention_backend(self.attention)


def _finish(feats: torch.Tensor, normalize: bool) -> torch.Tensor:
    feats = feats.float()
    if normalize:
        feats = feats / feats.norm(dim=-1, keepdim=True)
    return feats.cpu()


def load_internvl(
    checkpoint: str | None,
    default: ckpt.HubRef,
    mode: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    attention: str = "auto",
    tie_policy: str = "official-eval",
) -> InternVLModel:
    """Load an InternVL checkpoint (Hugging Face layout or the ``.pth``) as InternVL-C or InternVL-G."""
    device = torch.device(device)
    source = ckpt.resolve_source(checkpoint, default)
    if source.kind == "pth":
        return _load_pth(source, mode, device, dtype, attention)
    config = load_config(source.path / "config.json")
    files = ckpt.weight_files(source.path)
    net = ckpt.load_network(config, ckpt.iter_tensors(files), device, dtype, source.label, tie_policy=tie_policy)
    tokenizer = InternVLTokenizer(source.path / "tokenizer.model", max_length=config.max_text_length,
                                  added_tokens=read_added_tokens(source.path))
    identity = {"model_id": source.repo_id or str(source.path), "revision": source.revision,
                "weights_format": files[0].suffix.lstrip("."), "tie_policy": tie_policy,
                "tie_word_embeddings": config.tie_word_embeddings}
    fingerprint = ckpt.source_fingerprint(source, config, files, extra=tie_policy)
    identity["checkpoint_fingerprint"] = fingerprint
    return InternVLModel(net, tokenizer, mode, device, dtype, attention, identity, fingerprint)


def pth_config(position_count: int, vocab_size: int = 49954) -> InternVLConfig:
    """The ``.pth`` InternVL-C: InternViT-6B + a plain LLaMA-7B text tower (no cross-attention, no queries)."""
    grid = int(round((position_count - 1) ** 0.5))
    return replace(
        FULL_SIZE,
        vision=replace(VisionConfig(), image_size=grid * 14),
        qllama=replace(QLlamaConfig(), vocab_size=vocab_size),
        cross_attention_frequency=0,
        tie_word_embeddings=False,
    )


def _load_pth(source: ckpt.Source, mode: str, device: torch.device, dtype: torch.dtype, attention: str,
              config: InternVLConfig | None = None) -> InternVLModel:
    if mode != "C":
        raise BenchError(f"{source.label}: the .pth checkpoint holds InternVL-C only; use mode C")
    state = ckpt.load_pickle(source.path)
    if config is None:
        if "pos_embed" not in state or "transformer.embed_tokens.weight" not in state:
            raise BenchError(f"{source.path}: no 'pos_embed' / 'transformer.embed_tokens.weight'; not an InternVL-C .pth")
        config = pth_config(state["pos_embed"].shape[1], state["transformer.embed_tokens.weight"].shape[0])

    def tensors():
        for name in list(state):
            yield name, state.pop(name)

    net = ckpt.load_network(config, tensors(), device, dtype, str(source.path), with_queries=False, rename=ckpt.pth_key)
    for layer in net.vision_model.encoder.layers:
        layer.layerscale_fp32 = True  # the official builds the .pth model with layerscale_force_fp32=True
    tokenizer_file = source.path.parent / "tokenizer.model"
    if not tokenizer_file.is_file():
        tokenizer_file = _fetch_file(PTH_TOKENIZER_FALLBACK)
    tokenizer = InternVLTokenizer(tokenizer_file, max_length=config.max_text_length, padding="longest")
    identity = {"model_id": source.repo_id or str(source.path), "revision": source.revision, "weights_format": "pth",
                "tokenizer": str(tokenizer_file)}
    fingerprint = ckpt.source_fingerprint(source, config, [source.path])
    identity["checkpoint_fingerprint"] = fingerprint
    return InternVLModel(net, tokenizer, mode, device, dtype, attention, identity, fingerprint)


def _fetch_file(ref: ckpt.HubRef) -> Path:
    try:
        import huggingface_hub

        return Path(huggingface_hub.hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision))
    except Exception as exc:
        raise BenchError(f"cannot download {ref} ({type(exc).__name__}); put tokenizer.model next to the .pth file") from exc


def build_random(config: InternVLConfig, tokenizer_file: str | Path, mode: str, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, attention: str = "auto", seed: int = 0,
                 label: str = "random") -> InternVLModel:
    """The architecture of ``config`` with seeded random weights (Table G timing without downloads)."""
    device = torch.device(device)
    net = ckpt.random_network(config, device, dtype, seed=seed)
    tokenizer = InternVLTokenizer(tokenizer_file, max_length=config.max_text_length)
    identity = {"model_id": label, "revision": None, "weights": f"random(seed={seed})"}
    fingerprint = hashlib.sha256(f"random|{seed}|{config}".encode()).hexdigest()
    return InternVLModel(net, tokenizer, mode, device, dtype, attention, identity, fingerprint)
