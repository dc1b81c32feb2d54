"""Data-parallel runs under ``torchrun``.

Each rank encodes the cache chunks ``c`` with ``c % world_size == rank`` (generation: the planned
batches ``b`` with ``b % world_size == rank``); the results are then exchanged so every rank holds
them all in dataset order, and rank 0 alone writes records. Batches are planned identically on every
rank, so the batches -- and therefore the numbers -- are the same whatever the world size.
Backend: NCCL on CUDA, gloo on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment; a single process needs none."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def gather_chunks(own: dict[int, torch.Tensor], info: DistInfo) -> dict[int, torch.Tensor]:
    """Merge every rank's {chunk index: embeddings} into one dict on all ranks."""
    if info.world_size == 1:
        return own
    return gather_dict({index: tensor.cpu() for index, tensor in own.items()}, info)


def gather_dict(own: dict[Any, Any], info: DistInfo) -> dict[Any, Any]:
    """Merge every rank's dict (picklable values, disjoint keys) into one dict on all ranks."""
    if info.world_size == 1:
        return own
    gathered: list[dict[Any, Any] | None] = [None] * info.world_size
    dist.all_gather_object(gathered, own)
    merged: dict[Any, Any] = {}
    for part in gathered:
        merged.update(part or {})
    return merged


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
