"""The InternVL network: InternViT + QLLaMA + attention-pooling heads, and the three forward paths.

- ``image_features_c``: ``clip_projector(ViT(x))`` -> [B, E] (not normalised).
- ``image_features_g``: the learned queries alone run through QLLaMA with an all-visible mask, cross-
  attending to the ViT tokens; ``normalize(clip_projector2(Q)) + normalize(clip_projector(V))`` -> [B, E],
  a sum of two unit vectors (callers re-normalise).
- ``text_features``: final-norm hidden state at the last non-pad position (the EOS) ``@ text_projection``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model_zoo.internvl.config import InternVLConfig
from model_zoo.internvl.layers import attention, merge_heads, split_heads
from model_zoo.internvl.qllama import QLLaMA, text_attention_mask
from model_zoo.internvl.vision import InternViT


class PoolingAttention(nn.Module):
    def __init__(self, dim: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.k_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, out_dim)
        self.backend = "sdpa"

    def forward(self, xq: torch.Tensor, xk: torch.Tensor, xv: torch.Tensor) -> torch.Tensor:
        q = split_heads(F.linear(xq, self.q.weight, self.q_bias), self.heads)
        k = split_heads(F.linear(xk, self.k.weight, self.k_bias), self.heads)
        v = split_heads(F.linear(xv, self.v.weight, self.v_bias), self.heads)
        return self.proj(merge_heads(attention(q, k, v, self.backend)))


class AttentionPooling(nn.Module):
    """One query = mean of all tokens (CLS included); separate LayerNorms for q, k, v; no residual."""

    def __init__(self, dim: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self.norm1_q = nn.LayerNorm(dim, eps=1e-5)
        self.norm1_k = nn.LayerNorm(dim, eps=1e-5)
        self.norm1_v = nn.LayerNorm(dim, eps=1e-5)
        self.cross_attn = PoolingAttention(dim, heads, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = x.mean(1, keepdim=True)
        out = self.cross_attn(self.norm1_q(query), self.norm1_k(x), self.norm1_v(x))
        return out.squeeze(1)


class InternVLNet(nn.Module):
    def __init__(self, config: InternVLConfig, with_qllama_queries: bool = True) -> None:
        super().__init__()
        self.config = config
        v, q = config.vision, config.qllama
        self.vision_model = InternViT(v, config.num_positions)
        self.qllama = QLLaMA(q, config.cross_attention_layers(), v.hidden_size, config.num_query_token)
        self.with_queries = with_qllama_queries
        if with_qllama_queries:
            self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_token, q.hidden_size))
            self.clip_projector2 = AttentionPooling(q.hidden_size, config.attn_pool_num_heads, config.clip_embed_dim)
        self.text_projection = nn.Parameter(torch.zeros(q.hidden_size, config.clip_embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.clip_projector = AttentionPooling(v.hidden_size, config.attn_pool_num_heads, config.clip_embed_dim)

    # -- backends --------------------------------------------------------------------------------
    def set_attention_backend(self, backend: str) -> None:
        for module in self.modules():
            if hasattr(module, "backend"):
                module.backend = backend

    # -- forward paths ---------------------------------------------------------------------------
    def vision_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision_model(pixels)

    def image_features_c(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.clip_projector(self.vision_tokens(pixels))

    def query_states(self, vision: torch.Tensor) -> torch.Tensor:
        """The QLLaMA outputs of the learned queries (bidirectional, positions 0..Q-1) [B, Q, D]."""
        queries = self.query_tokens.expand(vision.shape[0], -1, -1).to(vision.dtype)
        return self.qllama.model(queries, None, vision)

    def image_features_g(self, pixels: torch.Tensor) -> torch.Tensor:
        vision = self.vision_tokens(pixels)
        backbone = self.clip_projector(vision)
        queries = self.clip_projector2(self.query_states(vision))
        backbone = backbone / backbone.norm(dim=1, keepdim=True)
        queries = queries / queries.norm(dim=1, keepdim=True)
        return queries + backbone

    def text_features(self, ids: torch.Tensor) -> torch.Tensor:
        valid = ids > 0
        embeds = self.qllama.model.embed_tokens(ids)
        mask = text_attention_mask(valid, embeds.dtype)
        hidden = self.qllama.model(embeds, mask, None)
        last = valid.sum(1) - 1
        return hidden[torch.arange(ids.shape[0], device=ids.device), last] @ self.text_projection

    def logits(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """exp(logit_scale) * normalize(img) @ normalize(txt).T -> [B_img, B_txt]."""
        img = image_features / image_features.norm(dim=1, keepdim=True)
        txt = text_features / text_features.norm(dim=1, keepdim=True)
        return self.logit_scale.exp() * img @ txt.t()
