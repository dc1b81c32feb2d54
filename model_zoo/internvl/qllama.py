"""QLLaMA: a LLaMA decoder whose first ``num_query_token`` positions cross-attend to the ViT tokens.

Layer ``i`` has a cross-attention block when ``i % cross_attention_frequency == 0``; it runs after
self-attention and before the MLP, only on the query positions, and only when vision tokens are given
(the text path passes none). Names follow the official checkpoint (``model.layers.N.self_attn.q_proj``,
``model.layers.N.cross_attn.k_proj``, ...). With ``cross_attention_frequency = 0`` this is a plain
LLaMA model (the text tower of the ``.pth`` InternVL-C).
"""
from __future__ import annotations

import torch
from torch import nn

from model_zoo.internvl.config import QLlamaConfig
from model_zoo.internvl.layers import RMSNorm, activation, attention, merge_heads, split_heads


def rope_tables(head_dim: int, length: int, base: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [length, head_dim] in float32 (the official ``cat(freqs, freqs)`` layout)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    t = torch.arange(length, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, N, D]; cos/sin [N, D] already in x's dtype."""
    return x * cos + _rotate_half(x) * sin


class SelfAttention(nn.Module):
    def __init__(self, config: QLlamaConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.heads = config.num_attention_heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.backend = "sdpa"

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q = apply_rope(split_heads(self.q_proj(x), self.heads), cos, sin)
        k = apply_rope(split_heads(self.k_proj(x), self.heads), cos, sin)
        v = split_heads(self.v_proj(x), self.heads)
        out = attention(q, k, v, self.backend, mask=mask, softmax_fp32=True)
        return self.o_proj(merge_heads(out))


class CrossAttention(nn.Module):
    """Queries (RMSNorm ``norm1``) attend to the vision tokens (RMSNorm ``norm2``); no RoPE, no mask."""

    def __init__(self, config: QLlamaConfig, vision_width: int) -> None:
        super().__init__()
        d = config.hidden_size
        self.heads = config.num_attention_heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(vision_width, d, bias=False)
        self.v_proj = nn.Linear(vision_width, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.norm1 = RMSNorm(d, eps=config.rms_norm_eps)
        self.norm2 = RMSNorm(vision_width, eps=config.rms_norm_eps)
        self.backend = "sdpa"

    def forward(self, x: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        q = split_heads(self.q_proj(self.norm1(x)), self.heads)
        kv = self.norm2(vision)
        k = split_heads(self.k_proj(kv), self.heads)
        v = split_heads(self.v_proj(kv), self.heads)
        out = attention(q, k, v, self.backend, softmax_fp32=True)
        return self.o_proj(merge_heads(out))


class MLP(nn.Module):
    def __init__(self, config: QLlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act = activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: QLlamaConfig, cross_attention: bool, vision_width: int, num_query_token: int) -> None:
        super().__init__()
        self.self_attn = SelfAttention(config)
        self.cross_attn = CrossAttention(config, vision_width) if cross_attention else None
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.num_query_token = num_query_token

    def forward(self, x, cos, sin, mask, vision):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        if self.cross_attn is not None and vision is not None:
            nq = self.num_query_token
            queries = x[:, :nq]
            queries = queries + self.cross_attn(queries, vision)
            x = torch.cat([queries, x[:, nq:]], dim=1)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaBody(nn.Module):
    def __init__(self, config: QLlamaConfig, cross_layers: list[int], vision_width: int, num_query_token: int) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            DecoderLayer(config, i in cross_layers, vision_width, num_query_token) for i in range(config.num_hidden_layers)
        )
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None, vision: torch.Tensor | None) -> torch.Tensor:
        """embeds [B, N, D], additive mask [B, 1, N, N] or None (all visible) -> final-norm states [B, N, D]."""
        n, head_dim = embeds.shape[1], self.config.hidden_size // self.config.num_attention_heads
        cos, sin = rope_tables(head_dim, n, self.config.rope_base, embeds.device)
        cos, sin = cos.to(embeds.dtype), sin.to(embeds.dtype)
        x = embeds
        for layer in self.layers:
            x = layer(x, cos, sin, mask, vision)
        return self.norm(x)


class QLLaMA(nn.Module):
    """Holds ``model`` (the decoder); the official ``lm_head`` is not needed for features and not kept."""

    def __init__(self, config: QLlamaConfig, cross_layers: list[int], vision_width: int, num_query_token: int) -> None:
        super().__init__()
        self.model = LlamaBody(config, cross_layers, vision_width, num_query_token)


def text_attention_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """valid [B, N] bool (token id > 0) -> additive causal + key-padding mask [B, 1, N, N]."""
    n = valid.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=valid.device).tril()
    allowed = causal[None, None] & valid[:, None, None, :]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=valid.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)
