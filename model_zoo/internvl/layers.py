"""Building blocks shared by InternViT, QLLaMA and the pooling heads, with selectable attention backends.

Attention backends (all compute ``softmax(q k^T * scale + mask) v``):

- ``flash``: ``flash_attn.flash_attn_func`` -- only when the package is importable, the tensors are on
  CUDA in fp16/bf16 and there is no mask (InternViT, pooling heads, G-mode queries);
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention``;
- ``math``: explicit matmul + softmax, the order of operations of the official eager code.

``auto`` picks flash where it applies, else sdpa. Every call site that has a mask or cannot use flash
falls back to sdpa (or math when math was asked for), so the three agree to rounding.
"""
from __future__ import annotations

import importlib.util
import math

import torch
import torch.nn.functional as F
from torch import nn

from internvl_bench.errors import BenchError

BACKENDS = ("auto", "flash", "sdpa", "math")


def flash_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None


def resolve_backend(name: str, device: torch.device) -> str:
    """The backend actually used for ``name`` on ``device`` ('auto' -> 'flash' or 'sdpa')."""
    if name not in BACKENDS:
        raise BenchError(f"unknown attention backend '{name}'; choose from {', '.join(BACKENDS)}")
    if name == "auto":
        return "flash" if device.type == "cuda" and flash_available() else "sdpa"
    if name == "flash" and not (device.type == "cuda" and flash_available()):
        raise BenchError("attention backend 'flash' needs the flash-attn package and a CUDA device; use 'sdpa'")
    return name


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    backend: str,
    mask: torch.Tensor | None = None,
    softmax_fp32: bool = False,
) -> torch.Tensor:
    """[B, H, Nq, D] x [B, H, Nk, D] -> [B, H, Nq, D], scale D^-0.5.

    ``mask`` is additive [B, 1, Nq, Nk] (0 or a large negative number). ``softmax_fp32`` makes the math
    backend take the softmax in float32 and cast back, as the official LLaMA attention does.
    """
    if backend == "flash" and mask is None and q.dtype in (torch.float16, torch.bfloat16):
        from flash_attn import flash_attn_func  # imported lazily: optional dependency

        out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    if backend in ("flash", "sdpa"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scale = q.shape[-1] ** -0.5
    weights = torch.matmul(q * scale, k.transpose(-2, -1)) if not softmax_fp32 else (
        torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    )
    if mask is not None:
        weights = weights + mask
        weights = torch.maximum(weights, torch.tensor(torch.finfo(weights.dtype).min, device=weights.device))
    if softmax_fp32:
        weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(q.dtype)
    else:
        weights = weights.softmax(dim=-1)
    return torch.matmul(weights, v)


class RMSNorm(nn.Module):
    """RMSNorm with the statistics in float32, cast back to the input dtype, then scaled by the weight."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def activation(name: str):
    if name == "gelu":
        return nn.GELU()
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return nn.GELU(approximate="tanh")
    if name == "silu":
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    if name == "quick_gelu":
        return _QuickGELU()
    raise BenchError(f"unsupported activation '{name}'")


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, N, H*D] -> [B, H, N, D]."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, N, D] -> [B, N, H*D]."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)
