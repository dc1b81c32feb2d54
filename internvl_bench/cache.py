"""On-disk embedding cache, in chunks, so re-runs are instant and killed runs resume.

Layout: ``<cache_dir>/<key>/<start>-<end>.safetensors`` holds the float32 embeddings of items
``start..end-1``; each chunk is written atomically once all its batches are encoded. ``key`` hashes
everything the embeddings depend on (model fingerprint, data fingerprint, preprocessing, precision,
normalisation), so a changed model, file or option never reads stale vectors. A chunk is also the
unit of work that ``torchrun`` ranks share out.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``INTERNVL_BENCH_CACHE`` or ``~/.cache/internvl_bench``: embeddings, responses, tiny checkpoints."""
    return Path(os.environ.get("INTERNVL_BENCH_CACHE", Path.home() / ".cache" / "internvl_bench"))


def cache_key(**parts: Any) -> str:
    """Stable hash of the keyword parts (JSON with sorted keys)."""
    text = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ChunkCache:
    """Chunks of one embedding matrix; ``root=None`` disables caching (nothing is read or written)."""

    def __init__(self, root: Path | None, key: str) -> None:
        self.folder = None if root is None else Path(root) / key

    def _path(self, start: int, end: int) -> Path:
        assert self.folder is not None
        return self.folder / f"{start:010d}-{end:010d}.safetensors"

    def load(self, start: int, end: int) -> torch.Tensor | None:
        if self.folder is None:
            return None
        path = self._path(start, end)
        if not path.is_file():
            return None
        try:
            return load_file(str(path))["embeddings"]
        except Exception:  # noqa: BLE001 - a damaged chunk is recomputed, never trusted
            path.unlink(missing_ok=True)
            return None

    def store(self, start: int, end: int, embeddings: torch.Tensor) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(start, end)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({"embeddings": embeddings.contiguous()}, str(tmp))
        os.replace(tmp, path)
