"""Batched, cached, data-parallel encoding of image sources and text lists.

The work is cut into chunks of ``chunk_batches * batch_size`` items (see ``cache.py``); chunks found
in the cache are loaded, the rest are encoded by their rank in batches, each chunk stored as soon as
it is complete. Images are decoded and transformed in DataLoader worker processes; a worker reports
a bad item as a message (never a half-pickled exception) so the main process can raise one clean
``BenchError`` -- after every finished chunk has been saved -- or, with ``skip_errors``, fill the
item's row with NaN.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from internvl_bench.cache import ChunkCache
from internvl_bench.data import ImageSource
from internvl_bench.distributed import DistInfo, gather_chunks
from internvl_bench.errors import BenchError
from model_zoo.base import ContrastiveModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodePlan:
    """How ``n_items`` are cut into chunks and batches, identical on every rank."""

    n_items: int
    batch_size: int
    chunk_batches: int

    def chunks(self) -> list[tuple[int, int]]:
        size = self.batch_size * self.chunk_batches
        return [(start, min(start + size, self.n_items)) for start in range(0, self.n_items, size)]

    def batches(self, start: int, end: int) -> list[list[int]]:
        return [list(range(b, min(b + self.batch_size, end))) for b in range(start, end, self.batch_size)]


class _TransformedItems(Dataset):
    """Worker-side loading: item -> (index, pixels [F, 3, S, S], error message or None)."""

    def __init__(self, source: ImageSource, transform: Callable) -> None:
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            item = self.source.load(index)
        except BenchError as exc:
            return index, None, str(exc)
        frames = item if isinstance(item, list) else [item]
        if not frames:
            return index, None, f"item {index} has no frames"
        return index, torch.stack([self.transform(frame) for frame in frames]), None


def _collate(batch: list[tuple[int, torch.Tensor | None, str | None]]) -> list:
    return batch


class Encoder:
    """Encodes image sources and texts with one model, one cache folder and one rank layout."""

    def __init__(
        self,
        model: ContrastiveModel,
        cache_root: Path | None,
        dist_info: DistInfo,
        batch_size: int,
        chunk_batches: int = 8,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.cache_root = cache_root
        self.dist = dist_info
        self.batch_size = batch_size
        self.chunk_batches = chunk_batches
        self.progress = progress and dist_info.is_main

    # -- public -----------------------------------------------------------------------------
    def images(
        self, source: ImageSource, key: str, mode: str, normalize: bool, skip_errors: bool, workers: int, desc: str
    ) -> torch.Tensor:
        transform = self.model.image_transform(mode)
        dataset = _TransformedItems(source, transform)

        def run_batches(batches: list[list[int]]) -> Iterator[torch.Tensor]:
            loader = DataLoader(
                dataset,
                batch_sampler=batches,
                num_workers=min(workers, len(batches)),
                collate_fn=_collate,
                persistent_workers=False,
            )
            for batch in loader:
                yield self._encode_items(batch, normalize, skip_errors)

        return self._run(len(source), key, run_batches, desc)

    def texts(self, texts: Sequence[str], key: str, normalize: bool, desc: str) -> torch.Tensor:
        texts = list(texts)

        def run_batches(batches: list[list[int]]) -> Iterator[torch.Tensor]:
            for indices in batches:
                features = self.model.encode_text([texts[i] for i in indices], normalize=normalize)
                yield features.float().cpu()

        return self._run(len(texts), key, run_batches, desc)

    # -- internals ----------------------------------------------------------------------------
    def _encode_items(self, batch: list, normalize: bool, skip_errors: bool) -> torch.Tensor:
        """Encode a batch of items; frames are flattened into one forward pass and averaged per item."""
        for _, _, error in batch:
            if error is not None:
                if not skip_errors:
                    raise BenchError(error)
                log.warning("skipped: %s", error)
        rows = [position for position, (_, _, error) in enumerate(batch) if error is None]
        out = torch.full((len(batch), self.model.embed_dim), torch.nan)
        if not rows:
            return out
        counts = [len(batch[row][1]) for row in rows]
        frames = torch.cat([batch[row][1] for row in rows])
        single = all(count == 1 for count in counts)
        features = self.model.encode_image(frames, normalize=normalize and single).float().cpu()
        if not single:
            features = torch.stack([part.mean(0) for part in features.split(counts)])
            if normalize:
                features = F.normalize(features, dim=-1)
        out[rows] = features
        return out

    def _run(
        self,
        n_items: int,
        key: str,
        run_batches: Callable[[list[list[int]]], Iterator[torch.Tensor]],
        desc: str,
    ) -> torch.Tensor:
        plan = EncodePlan(n_items, self.batch_size, self.chunk_batches)
        cache = ChunkCache(self.cache_root, key)
        chunks = plan.chunks()
        done: dict[int, torch.Tensor] = {}
        todo: list[int] = []
        for index, (start, end) in enumerate(chunks):
            if index % self.dist.world_size != self.dist.rank:
                continue
            cached = cache.load(start, end)
            if cached is not None and len(cached) == end - start:
                done[index] = cached
            else:
                todo.append(index)
        batches = [batch for index in todo for batch in plan.batches(*chunks[index])]
        bar = tqdm(total=sum(len(b) for b in batches), desc=desc, unit="item", disable=None if self.progress and batches else True)
        pending: list[torch.Tensor] = []
        chunk_iter = iter(todo)
        current = next(chunk_iter, None)
        for features in run_batches(batches) if batches else iter(()):
            pending.append(features)
            bar.update(len(features))
            start, end = chunks[current]
            if sum(len(p) for p in pending) == end - start:
                done[current] = torch.cat(pending)
                cache.store(start, end, done[current])
                pending = []
                current = next(chunk_iter, None)
        bar.close()
        merged = gather_chunks(done, self.dist)
        if n_items == 0:
            return torch.empty(0, self.model.embed_dim)
        return torch.cat([merged[index] for index in range(len(chunks))])
