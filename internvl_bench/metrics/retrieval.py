"""Recall@k for cross-modal retrieval, in bounded memory and close to the cost of the matrix product.

Conventions (shared by Tables A, C and D):
- Scores are cosine similarities computed in float32 (``S = T @ I.T`` on L2-normalised embeddings):
  half precision creates ties that flip R@1. The product is kept in full float32 while scoring, even
  where the process allows TF32 (CUDA) or bf16 (CPU) products.
- A query is a hit at k if at least one of its positives ranks in the top k. Image->text (``i2t``) has
  one query per image and all of that image's captions as positives; text->image (``t2i``) has one
  query per caption with exactly one positive image. Values are percentages; ``mean_R`` averages the
  six recalls (Table D's "avg.").
- Ties are broken by index, as a stable sort would: a candidate with the same score as the positive
  ranks ahead of it when its index is lower. Of several positives the best is the highest-scoring one,
  the lowest index among equals; recall@k needs only its rank.
- That rank is a count: candidates scoring above the best positive, plus equal ones of lower index.
  No top-k or sort is needed, so the scores are produced tile by tile (at most ``max_chunk_bytes``;
  on CPU small enough to stay in cache) and each tile is read twice right after its product: against
  the caption queries' thresholds (its rows) and against the image queries' thresholds (its columns).
  The matrix is never stored and the product is computed once; the counting costs a few percent of it.
- Counting needs every query's threshold before the tiles exist, so from embeddings the positive
  pairs' scores are computed first, one float32 dot product per caption. A product entry can differ
  from that dot product in the last bit, so the positive's own entry is excluded from its count and
  the other candidates' entries are compared with the threshold. On exactly representable scores this
  is the stable-sort rank; otherwise it can differ from ranking stored product entries only for a
  candidate within float32 rounding (~1e-7) of the positive -- as two float32 products can. From a
  score matrix (``ranks_from_scores``) the thresholds are the matrix's own entries.
- Per query: ``retrieval_ranks`` / ``ranks_from_scores`` return each query's best-positive rank
  (``QueryRanks``, exact below max(ks)); the recalls are counts of ranks below k, and
  ``recall_statistic`` recomputes them on bootstrap resamples of the queries
  (``internvl_bench.bootstrap``) without touching the scores again.
- Device: scoring runs where ``device`` says (default: where the embeddings are; tasks pass the run's
  device); the inputs are moved there once and the ranks come back on the CPU. On a multi-threaded
  CPU, row blocks go to a pool of Python threads running one torch thread each (see ``_block_map``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from internvl_bench.bootstrap import Statistic, mean_percent

DEFAULT_KS = (1, 5, 10)
DEFAULT_MAX_CHUNK_BYTES = 256 * 1024 * 1024
#: CPU tile bytes per torch thread: small enough that the counting passes after each product find the
#: tile in cache (at 4 MiB those passes were 1.6x slower on the benchmark machine)
CPU_TILE_BYTES = 2 * 1024 * 1024
#: preferred tile height (caption rows); the width follows from the byte budget
TILE_ROWS = 512
#: caption rows per step when computing the positive pairs' scores (a cache-sized buffer)
POSITIVE_BLOCK = 256
#: at most this many Python worker threads on CPU (beyond, the GIL-held share of a tile would grow)
MAX_WORKERS = 8
#: row blocks are dealt to this many tasks at most, each reusing its buffers over its blocks
MAX_TASKS = 32

#: ``tile(r0, r1, c0, c1, out)`` -> float32 scores [r1 - r0, c1 - c0] of captions r0.. against images
#: c0.., written into ``out`` (which the counter then overwrites)
Tiles = Callable[[int, int, int, int, torch.Tensor], torch.Tensor]
BlockMap = Callable[[Callable, Iterable], Iterable]


@dataclass(frozen=True)
class QueryRanks:
    """0-based rank of each query's best positive (index tie-break), exact below ``top``, else ``top``.

    ``i2t`` [n_images]: image queries among the captions; ``t2i`` [n_texts]: caption queries among the
    images. ``top`` = ``max(ks)`` (at most the number of candidates) is all recall@k needs: a query is a
    hit at k exactly when its rank is below k. Kept per query so that a bootstrap can resample queries
    without scoring again (``recall_statistic``).
    """

    i2t: torch.Tensor
    t2i: torch.Tensor

    @property
    def units(self) -> tuple[int, int]:
        """The bootstrap strata: image queries, caption queries."""
        return (len(self.i2t), len(self.t2i))


def retrieval_recalls(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_to_image: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """R@k both ways from embeddings [n_image, D] and [n_text, D]; ``text_to_image[t]`` = image of caption t."""
    ranks = retrieval_ranks(image_emb, text_emb, text_to_image, max(ks), max_chunk_bytes, device)
    return recalls_from_ranks(ranks, ks)


def retrieval_ranks(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_to_image: torch.Tensor,
    top: int = max(DEFAULT_KS),
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    device: torch.device | str | None = None,
) -> QueryRanks:
    """Each query's best-positive rank (see ``QueryRanks``) from embeddings, one product tile by tile."""
    device = torch.device(device) if device is not None else image_emb.device
    images = image_emb.to(device, torch.float32)
    texts = text_emb.to(device, torch.float32)
    text_to_image = _check_mapping(text_to_image, len(texts), len(images)).to(device)

    def tile(r0: int, r1: int, c0: int, c1: int, out: torch.Tensor) -> torch.Tensor:
        return torch.mm(texts[r0:r1], images[c0:c1].T, out=out)

    with full_float32_matmul(), _block_map(device) as block_map:
        positive = _positive_scores(texts, images, text_to_image, block_map)
        return _ranks(tile, positive, text_to_image, len(images), top, max_chunk_bytes, block_map)


def recalls_from_ranks(ranks: QueryRanks, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """``i2t_R@k``, ``t2i_R@k`` (percent of queries ranked below k) and ``mean_R``, their mean."""
    metrics = {f"i2t_R@{k}": 100.0 * int((ranks.i2t < k).sum()) / len(ranks.i2t) for k in ks}
    metrics |= {f"t2i_R@{k}": 100.0 * int((ranks.t2i < k).sum()) / len(ranks.t2i) for k in ks}
    metrics["mean_R"] = sum(metrics.values()) / len(metrics)
    return metrics


def recall_statistic(ranks: QueryRanks, ks: Sequence[int] = DEFAULT_KS) -> Statistic:
    """The bootstrap statistic of ``recalls_from_ranks``: i2t over resampled image queries, t2i over
    resampled caption queries (``ranks.units``), ``mean_R`` over both of the same resample."""
    i2t, t2i = ranks.i2t.numpy(), ranks.t2i.numpy()

    def statistic(image_draws: np.ndarray, text_draws: np.ndarray) -> dict[str, np.ndarray]:
        metrics = {f"i2t_R@{k}": mean_percent(i2t < k, image_draws) for k in ks}
        metrics |= {f"t2i_R@{k}": mean_percent(t2i < k, text_draws) for k in ks}
        metrics["mean_R"] = sum(metrics.values()) / len(metrics)
        return metrics

    return statistic


def recalls_from_scores(
    scores: torch.Tensor,
    text_to_image: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """R@k both ways from a precomputed [n_text, n_image] score matrix (e.g. after re-ranking)."""
    return recalls_from_ranks(ranks_from_scores(scores, text_to_image, max(ks), max_chunk_bytes, device), ks)


def ranks_from_scores(
    scores: torch.Tensor,
    text_to_image: torch.Tensor,
    top: int = max(DEFAULT_KS),
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    device: torch.device | str | None = None,
) -> QueryRanks:
    """Each query's best-positive rank (see ``QueryRanks``) from a [n_text, n_image] score matrix."""
    device = torch.device(device) if device is not None else scores.device
    scores = scores.to(device, torch.float32)
    n_texts, n_images = scores.shape
    text_to_image = _check_mapping(text_to_image, n_texts, n_images).to(device)
    positive = scores[torch.arange(n_texts, device=device), text_to_image]

    def tile(r0: int, r1: int, c0: int, c1: int, out: torch.Tensor) -> torch.Tensor:
        return out.copy_(scores[r0:r1, c0:c1])  # a copy: the counter overwrites its tile

    with _block_map(device) as block_map:
        return _ranks(tile, positive, text_to_image, n_images, top, max_chunk_bytes, block_map)


@contextmanager
def full_float32_matmul() -> Iterator[None]:
    """Products in full float32 while scoring, whatever the process set (TF32 on CUDA, bf16 on CPU)."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def captions_per_image(text_to_image: torch.Tensor, n_images: int) -> torch.Tensor:
    """[n_images, max_captions] caption indices per image (ascending), padded with -1."""
    device = text_to_image.device
    order = torch.argsort(text_to_image, stable=True)
    counts = torch.bincount(text_to_image, minlength=n_images)
    width = max(int(counts.max()) if n_images else 0, 1)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(order), device=device) - starts[text_to_image[order]]
    padded = torch.full((n_images, width), -1, dtype=torch.long, device=device)
    padded[text_to_image[order], slot] = order
    return padded


def _positive_scores(
    texts: torch.Tensor, images: torch.Tensor, text_to_image: torch.Tensor, block_map: BlockMap
) -> torch.Tensor:
    """[n_texts] float32 score of each caption with its image: a dot product per caption, in steps of
    a cache-sized buffer (this runs before the product and must cost little next to it)."""
    n_texts = len(texts)
    out = torch.empty(n_texts, dtype=torch.float32, device=texts.device)

    def span(start_end: tuple[int, int]) -> None:
        start, end = start_end
        pairs = torch.empty(min(end - start, POSITIVE_BLOCK), texts.shape[1], device=texts.device)
        for a in range(start, end, POSITIVE_BLOCK):
            b = min(a + POSITIVE_BLOCK, end)
            block = torch.index_select(images, 0, text_to_image[a:b], out=pairs[: b - a])
            torch.sum(block.mul_(texts[a:b]), dim=1, out=out[a:b])

    list(block_map(span, _spans(n_texts, -(-n_texts // MAX_TASKS))))
    return out


@dataclass
class _Queries:
    """One direction's queries: threshold (the best positive's score) and where that positive is among
    the ``n_candidates`` (``n_candidates`` when there is none); ``count`` collects the candidates ranked
    ahead of it.

    ``below`` is the largest float32 under ``threshold``: ``score > below`` is ``score >= threshold``,
    which is how candidates of lower index than the positive count (ties rank them ahead).
    """

    threshold: torch.Tensor
    below: torch.Tensor
    positive: torch.Tensor
    n_candidates: int
    count: torch.Tensor

    @classmethod
    def of(cls, threshold: torch.Tensor, positive: torch.Tensor, n_candidates: int) -> _Queries:
        below = torch.nextafter(threshold, torch.full_like(threshold, -torch.inf))
        count = torch.zeros(len(threshold), dtype=torch.long, device=threshold.device)
        return cls(threshold, below, positive, n_candidates, count)

    def ranks(self, top: int) -> torch.Tensor:
        """Counts capped at ``top``; a query without a positive gets ``top`` (a miss at every k <= top)."""
        capped = self.count.clamp(max=top)
        return torch.where(self.positive >= self.n_candidates, top, capped).cpu()


@dataclass(frozen=True)
class _Grid:
    """Tiles of ``rows`` captions x ``cols`` images; a block is one row of tiles."""

    n_texts: int
    n_images: int
    rows: int
    cols: int

    @property
    def n_blocks(self) -> int:
        return -(-self.n_texts // self.rows)

    @property
    def n_tiles(self) -> int:
        return -(-self.n_images // self.cols)


def _ranks(
    tile: Tiles,
    positive: torch.Tensor,
    text_to_image: torch.Tensor,
    n_images: int,
    top: int,
    max_chunk_bytes: int,
    block_map: BlockMap,
) -> QueryRanks:
    """Both directions' ranks from the score tiles, given each caption's positive score."""
    n_texts = len(positive)
    if n_images == 0 or n_texts == 0:
        raise ValueError("no queries to score")
    if max(n_images, n_texts) >= 2**24:
        raise ValueError("2**24 or more candidates: the float32 hit counters would no longer be exact")
    captions = _Queries.of(positive, text_to_image, n_images)
    images = _best_captions(positive, text_to_image, n_images)
    grid = _Grid(n_texts, n_images, *_tile_shape(n_texts, n_images, max_chunk_bytes, positive.device))
    counter = _Counter(tile, grid, captions, images, _caption_straddles(captions, grid), _image_straddles(images, grid))
    for column_counts in block_map(counter.blocks, _spans(grid.n_blocks, -(-grid.n_blocks // MAX_TASKS))):
        images.count += column_counts
    return QueryRanks(i2t=images.ranks(min(top, n_texts)), t2i=captions.ranks(min(top, n_images)))


def _best_captions(positive: torch.Tensor, text_to_image: torch.Tensor, n_images: int) -> _Queries:
    """Image queries: the best caption's score and index (highest score, lowest index among equals)."""
    n_texts = len(positive)
    captions = captions_per_image(text_to_image, n_images)
    valid = captions >= 0
    scores = torch.where(valid, positive[captions.clamp(min=0)], -torch.inf)
    best_score = scores.max(dim=1).values
    is_best = valid & (scores == best_score[:, None])
    best_caption = torch.where(is_best, captions, n_texts).min(dim=1).values
    return _Queries.of(best_score, best_caption, n_texts)


@dataclass(frozen=True)
class _Straddle:
    """The queries of one tile whose positive lies inside it: their rows of the tile along the query
    axis (a slice when consecutive), thresholds [n, 1], the positive's offset along the candidate
    axis [n, 1] and the largest such offset. In that tile they were counted with ``> threshold``
    throughout; ``correction`` fixes it.
    """

    rows: slice | torch.Tensor
    threshold: torch.Tensor
    at: torch.Tensor
    width: int

    def correction(self, scores: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
        """Per query: minus one if the positive's own entry exceeds the threshold (a candidate is not
        its own competitor), plus the equal-scoring candidates before it. Only the columns before
        the last positive are compared, and the exact per-row prefix only in rows with a tie there."""
        rows = scores[self.rows]
        own = rows.gather(1, self.at)
        prefix = rows[:, : self.width]
        equal = torch.eq(prefix, self.threshold, out=scratch[: prefix.numel()].view(prefix.shape))
        own_in_prefix = (own == self.threshold) & (self.at < self.width)
        correction = -(own > self.threshold).float()
        tied = (equal.sum(dim=1, keepdim=True) > own_in_prefix).flatten().nonzero().flatten()
        if len(tied):
            before = torch.arange(self.width, device=rows.device) < self.at[tied]
            correction[tied] += (equal[tied] * before).sum(dim=1, keepdim=True)
        return correction.flatten()


def _caption_straddles(captions: _Queries, grid: _Grid) -> dict[int, _Straddle]:
    """(block * n_tiles + tile) -> the captions of that block whose image lies in that tile."""
    text = torch.arange(grid.n_texts, device=captions.positive.device)
    keys = (text // grid.rows) * grid.n_tiles + captions.positive // grid.cols
    return _straddle_groups(keys, text % grid.rows, captions.threshold, captions.positive % grid.cols)


def _image_straddles(images: _Queries, grid: _Grid) -> dict[int, _Straddle]:
    """(block * n_tiles + tile) -> the images of that tile whose best caption is in that block."""
    image = (images.positive < grid.n_texts).nonzero().flatten()
    best = images.positive[image]
    keys = (best // grid.rows) * grid.n_tiles + image // grid.cols
    return _straddle_groups(keys, image % grid.cols, images.threshold[image], best % grid.rows)


def _straddle_groups(
    keys: torch.Tensor, rows: torch.Tensor, threshold: torch.Tensor, at: torch.Tensor
) -> dict[int, _Straddle]:
    """Group queries by tile key, all at once (per-tile grouping would cost more Python than counting)."""
    order = torch.argsort(keys, stable=True)
    rows, threshold, at = rows[order], threshold[order, None], at[order, None]
    numbers, counts = torch.unique_consecutive(keys[order], return_counts=True)
    ends = counts.cumsum(0)
    starts = ends - counts
    consecutive = rows[ends - 1] - rows[starts] + 1 == counts
    group = torch.repeat_interleave(torch.arange(len(counts), device=keys.device), counts)
    widths = torch.zeros(len(counts), dtype=at.dtype, device=keys.device).scatter_reduce(0, group, at.flatten(), "amax")
    groups = {}
    for key, start, end, first, whole, width in zip(
        numbers.tolist(), starts.tolist(), ends.tolist(), rows[starts].tolist(), consecutive.tolist(), widths.tolist()
    ):
        tile_rows = slice(first, first + end - start) if whole else rows[start:end]
        groups[key] = _Straddle(tile_rows, threshold[start:end], at[start:end], width)
    return groups


@dataclass(frozen=True)
class _Counter:
    """Counts, block by block, the candidates ahead of every query's positive."""

    tile: Tiles
    grid: _Grid
    captions: _Queries
    images: _Queries
    caption_straddles: dict[int, _Straddle]
    image_straddles: dict[int, _Straddle]

    def blocks(self, span: tuple[int, int]) -> torch.Tensor:
        """Blocks span[0]..span[1]-1: writes their captions' counts and returns what they add to each
        image query's (summed over spans by the caller), reusing one set of buffers."""
        grid, device = self.grid, self.captions.threshold.device
        buffers = (torch.empty(grid.rows * grid.cols, device=device), torch.empty(grid.rows * grid.cols, device=device))
        ones = torch.ones(max(grid.rows, grid.cols), device=device)
        column_hits = torch.zeros(grid.n_images, device=device)
        caption_tiles = (self.captions.positive // grid.cols)[:, None]
        for block in range(*span):
            r0, r1 = block * grid.rows, min((block + 1) * grid.rows, grid.n_texts)
            row_hits = self._block(block, r0, r1, buffers, ones, column_hits, caption_tiles[r0:r1])
            self.captions.count[r0:r1] = row_hits.long()
        return column_hits.long()

    def _block(
        self,
        block: int,
        r0: int,
        r1: int,
        buffers: tuple[torch.Tensor, torch.Tensor],
        ones: torch.Tensor,
        column_hits: torch.Tensor,
        caption_tiles: torch.Tensor,
    ) -> torch.Tensor:
        """Captions r0..r1-1 against every image tile: per tile, the entries ahead of each row's and
        each column's positive become float 0/1 flags, summed by a matrix-vector product (float32
        sums are exact below 2**24). The straddling corrections read the scores first; the column
        pass then overwrites them with its flags."""
        grid, captions, images = self.grid, self.captions, self.images
        n_rows = r1 - r0
        below, threshold = captions.below[r0:r1, None], captions.threshold[r0:r1, None]
        # an image query counts ">= threshold" (> below) in blocks before its best caption's
        columns = torch.where(images.positive >= r1, images.below, images.threshold)[None, :]
        row_hits = torch.zeros(n_rows, device=threshold.device)
        for number in range(grid.n_tiles):
            c0, c1 = number * grid.cols, min((number + 1) * grid.cols, grid.n_images)
            size = n_rows * (c1 - c0)
            scores = self.tile(r0, r1, c0, c1, buffers[0][:size].view(n_rows, c1 - c0))
            flags = buffers[1][:size].view(n_rows, c1 - c0)
            hits = column_hits[c0:c1]
            key = block * grid.n_tiles + number
            if key in self.caption_straddles:
                straddle = self.caption_straddles[key]
                row_hits[straddle.rows] += straddle.correction(scores, buffers[1])
            if key in self.image_straddles:
                straddle = self.image_straddles[key]
                hits[straddle.rows] += straddle.correction(scores.T, buffers[1])
            # a caption row counts ">= threshold" (> below) in tiles before its image's
            torch.gt(scores, torch.where(caption_tiles > number, below, threshold), out=flags)
            row_hits.addmv_(flags, ones[: c1 - c0])
            scores.gt_(columns[:, c0:c1])
            hits.addmv_(scores.T, ones[:n_rows])
        return row_hits


def _spans(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, max(1, size))]


def _tile_shape(n_rows: int, n_cols: int, max_chunk_bytes: int, device: torch.device) -> tuple[int, int]:
    """(rows, cols) of a float32 tile within the byte budget; on CPU also within ``CPU_TILE_BYTES``
    per torch thread, and on CUDA within an eighth of the free memory."""
    budget = max_chunk_bytes
    if device.type == "cpu":
        budget = min(budget, CPU_TILE_BYTES * torch.get_num_threads())
    elif device.type == "cuda":
        budget = min(budget, torch.cuda.mem_get_info(device)[0] // 8)
    elements = max(1, budget // 4)
    cols = min(n_cols, max(1, elements // min(n_rows, TILE_ROWS)))
    rows = min(n_rows, max(1, elements // cols))
    return rows, cols


@contextmanager
def _block_map(device: torch.device) -> Iterator[BlockMap]:
    """``map`` over spans of work: on a CPU with several torch threads, a pool of Python threads each
    running one torch thread (torch releases the GIL), so the small per-tile operations never wait at
    an intra-op thread barrier -- on a loaded machine such waits cost more than the work itself.
    Elsewhere (CUDA, one thread) plain ``map``."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield map
        return
    workers = min(threads, MAX_WORKERS)
    torch.set_num_threads(max(1, threads // workers))
    try:
        with ThreadPoolExecutor(workers) as pool:
            yield pool.map
    finally:
        torch.set_num_threads(threads)


def _check_mapping(text_to_image: torch.Tensor, n_texts: int, n_images: int) -> torch.Tensor:
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long)
    if text_to_image.shape != (n_texts,):
        raise ValueError(f"text_to_image has shape {tuple(text_to_image.shape)}, expected ({n_texts},)")
    if n_texts and (int(text_to_image.min()) < 0 or int(text_to_image.max()) >= n_images):
        raise ValueError("text_to_image refers to an image index out of range")
    return text_to_image
