"""InternViT: the vision tower (InternViT-6B at full size).

Parameter names follow the official checkpoint (``embeddings.*``, ``encoder.layers.N.*``) so the state
dict loads without renaming. No pre-norm and no final norm: the encoder output (CLS + patches) is what
the InternVL-C / InternVL-G heads read.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model_zoo.internvl.config import VisionConfig
from model_zoo.internvl.layers import RMSNorm, activation, attention, merge_heads, split_heads


def resize_position_embedding(pos: torch.Tensor, new_grid: int) -> torch.Tensor:
    """[1, 1+g*g, C] -> [1, 1+new_grid^2, C]: bicubic on the patch grid in float32, align_corners=False,
    the CLS position kept as is, result cast back to the input dtype."""
    _, n, c = pos.shape
    old_grid = int(round((n - 1) ** 0.5))
    if old_grid * old_grid != n - 1:
        raise ValueError(f"position embedding with {n - 1} patch positions is not a square grid")
    if old_grid == new_grid:
        return pos
    cls, grid = pos[:, :1], pos[:, 1:]
    grid = grid.reshape(1, old_grid, old_grid, c).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
    grid = grid.to(pos.dtype).reshape(1, c, new_grid * new_grid).permute(0, 2, 1)
    return torch.cat([cls, grid], dim=1)


class VisionEmbeddings(nn.Module):
    def __init__(self, config: VisionConfig, num_positions: int) -> None:
        super().__init__()
        c = config.hidden_size
        self.patch_size = config.patch_size
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, c))
        self.patch_embedding = nn.Conv2d(config.num_channels, c, kernel_size=config.patch_size, stride=config.patch_size)
        self.position_embedding = nn.Parameter(torch.zeros(1, num_positions, c))
        self._resized: tuple[int, torch.Tensor] | None = None  # cache: (grid, resized table)

    def positions_for(self, grid: int) -> torch.Tensor:
        """The position table for a ``grid`` x ``grid`` input, re-interpolated on the fly when it differs."""
        pos = self.position_embedding
        if (pos.shape[1] - 1) == grid * grid:
            return pos
        if self._resized is None or self._resized[0] != grid or self._resized[1].device != pos.device \
                or self._resized[1].dtype != pos.dtype:
            with torch.no_grad():
                self._resized = (grid, resize_position_embedding(pos.detach(), grid))
        return self._resized[1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        dtype = self.patch_embedding.weight.dtype
        x = self.patch_embedding(pixels.to(dtype))  # [B, C, g, g]
        grid = x.shape[-1]
        if x.shape[-2] != grid:
            raise ValueError(f"InternViT needs square inputs, got a {x.shape[-2]}x{grid} patch grid")
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        return x + self.positions_for(grid).to(dtype)


class VisionAttention(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        c = config.hidden_size
        self.heads = config.num_attention_heads
        self.qkv = nn.Linear(c, 3 * c, bias=config.qkv_bias)
        self.qk_normalization = config.qk_normalization
        if config.qk_normalization:
            # over the full hidden vector (all heads jointly), before the heads are split
            self.q_norm = RMSNorm(c, eps=config.layer_norm_eps)
            self.k_norm = RMSNorm(c, eps=config.layer_norm_eps)
        self.proj = nn.Linear(c, c)
        self.backend = "sdpa"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)
        out = attention(split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads), self.backend)
        return self.proj(merge_heads(out))


class VisionMLP(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = activation(config.hidden_act)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VisionLayer(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        c = config.hidden_size
        self.attn = VisionAttention(config)
        self.mlp = VisionMLP(config)
        self.norm1 = RMSNorm(c, eps=config.layer_norm_eps)
        self.norm2 = RMSNorm(c, eps=config.layer_norm_eps)
        self.ls1 = nn.Parameter(torch.ones(c))
        self.ls2 = nn.Parameter(torch.ones(c))
        #: multiply the layer scale in float32 (the .pth InternVL-C path: ``layerscale_force_fp32``)
        self.layerscale_fp32 = False

    def _scale(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        if self.layerscale_fp32:
            return (x.float() * gamma.float()).to(x.dtype)
        return x * gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._scale(self.attn(self.norm1(x)), self.ls1)
        return x + self._scale(self.mlp(self.norm2(x)), self.ls2)


class VisionEncoder(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(VisionLayer(config) for _ in range(config.num_hidden_layers))


class InternViT(nn.Module):
    """pixels [B, 3, S, S] -> last hidden state [B, 1 + (S/patch)^2, C]."""

    def __init__(self, config: VisionConfig, num_positions: int) -> None:
        super().__init__()
        self.config = config
        self.embeddings = VisionEmbeddings(config, num_positions)
        self.encoder = VisionEncoder(config)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(pixels)
        for layer in self.encoder.layers:
            x = layer(x)
        return x
