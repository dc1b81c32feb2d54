"""Will the weights fit? Checked before loading, so a too-small device fails in a second, not after minutes.

InternVL-Chat-ViT-6B-Vicuna-7B needs about 26 GB in bf16 (6.7B language model + 5.5B of the 6B tower
actually run + projector); in float32 twice that, which no 24 GiB CPU host holds.
"""
from __future__ import annotations

import logging

import torch

from internvl_bench.errors import BenchError

log = logging.getLogger(__name__)
GIB = 1024 ** 3


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (CUDA: free device memory; CPU: MemAvailable), None if unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits(label: str, parameters: int, dtype: torch.dtype, device: torch.device, headroom: float = 0.1) -> int:
    """Raise a one-line ``BenchError`` when ``parameters`` weights of ``dtype`` (+ ``headroom`` for activations
    and the KV cache) exceed what ``device`` has free; returns the estimate in bytes."""
    need = parameters * torch.empty((), dtype=dtype).element_size()
    free = available_bytes(device)
    log.info("%s: about %.1f GiB of weights (%s) on %s; %s free", label, need / GIB, str(dtype).removeprefix("torch."),
             device, "unknown" if free is None else f"{free / GIB:.1f} GiB")
    if free is not None and need * (1 + headroom) > free:
        raise BenchError(f"{label} needs about {need / GIB:.1f} GiB for its {str(dtype).removeprefix('torch.')} weights "
                         f"(+{headroom:.0%} working memory) but {device} has {free / GIB:.1f} GiB free; use a device "
                         "with more memory, or bf16 on a GPU")
    return need
