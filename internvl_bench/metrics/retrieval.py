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
  on CPU a few MiB, as fast to produce as one big product) and each tile is read twice right after
  its product, on CPU in row chunks that stay in cache: against the caption queries' thresholds (its
  rows) and against the image queries' thresholds (its columns).
  The matrix is never stored and the product is computed once; the counting costs a few percent of it.
- A stored matrix -- ``ranks_from_scores``' input, or a small problem's whole product (within
  ``WHOLE_PRODUCT_BYTES`` and the byte budget) -- is counted more simply: its thresholds are its own
  entries and it can be read again, so one pass in row chunks counts the candidates above each
  threshold -- strictly, or at or above it where a sample of queries says a strong model ranks most
  of them first -- and ties are looked for afterwards, only in the queries that count leaves open.
  No positive pass and no straddling tiles: at 1k x 5k the scoring takes 1.10-1.15x the bare
  product's time at 2 threads, random or near-matching captions (counted as tiles: 1.78x).
- Counting needs every query's threshold before the tiles exist, so from embeddings the positive
  pairs' scores are computed first, by small products of each run of captions with their images (a
  dot product per caption rounds differently: on the CPU's BLAS, product entries of the same pair
  are the same bits whatever the product's shape, a dot product's were not in 13.7k of 15k pairs --
  and a duplicate caption then ranked by that last bit instead of its index). Where the bits could
  still differ (another BLAS, a GPU), the positive's own entry is excluded from its count and the
  other candidates' entries are compared with the threshold: the rank can then differ from ranking
  stored product entries only for a candidate within float32 rounding (~1e-7) of the positive. From
  a score matrix (``ranks_from_scores``) the thresholds are the matrix's own entries.
- Per query: ``retrieval_ranks`` / ``ranks_from_scores`` return each query's best-positive rank
  (``QueryRanks``, exact below max(ks)); the recalls are counts of ranks below k, and
  ``recall_statistic`` recomputes them on bootstrap resamples of the queries
  (``internvl_bench.bootstrap``) without touching the scores again.
- Device: scoring runs where ``device`` says (default: where the embeddings are; tasks pass the run's
  device); the inputs are moved there once and the ranks come back on the CPU. On a multi-threaded
  CPU, the tiles' row blocks go to a pool of Python threads running one torch thread each (see
  ``_block_map``); a stored matrix's chunks are large enough for torch's own threads.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from internvl_bench.bootstrap import Statistic, mean_percent

DEFAULT_KS = (1, 5, 10)
DEFAULT_MAX_CHUNK_BYTES = 256 * 1024 * 1024
#: a product of at most this many bytes (and within the byte budget) is computed whole, then counted
WHOLE_PRODUCT_BYTES = 64 * 1024 * 1024
#: CPU tile bytes per torch thread: large enough for the product to run at the speed of one big one
#: (1024 x 1024 tiles: within 2% of it on the benchmark machine, 512 x 1024: 4-6% slower)
CPU_TILE_BYTES = 4 * 1024 * 1024
#: on CPU the counting passes go over each tile in row chunks of at most this many bytes, so that a
#: chunk and its flags stay in a core's L2 cache (whole 2 MiB tiles: passes 3x slower per entry)
CPU_COUNT_BYTES = 512 * 1024
#: preferred tile height (caption rows); the width follows from the byte budget
TILE_ROWS = 1024
#: caption rows per step when computing the positive pairs' scores, and per product where a step's
#: captions are not listed by image (each then costs that many dot products)
POSITIVE_BLOCK, POSITIVE_DIAGONAL = 128, 32
#: a stored matrix's open queries have their entries at the threshold counted from their gathered
#: lines when fewer than one query in this many is open, else by one masked pass (``_at_threshold_counts``)
GATHER_BELOW = 8
#: caption queries sampled to decide how a stored matrix is counted (``_inclusive_counts``)
MODE_SAMPLE = 64
#: at most this many Python worker threads on CPU (beyond, the GIL-held share of a tile would grow)
MAX_WORKERS = 8
#: with a thread pool, row blocks are dealt to this many tasks at most, each reusing its buffers over
#: its blocks; without one, all blocks are one task
MAX_TASKS = 32

#: ``block_map(work, n)`` -> the results of ``work((start, end))`` over spans that cover range(n)
BlockMap = Callable[[Callable[[tuple[int, int]], object], int], Iterable]


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
    with full_float32_matmul():
        if 4 * len(texts) * len(images) <= min(WHOLE_PRODUCT_BYTES, max_chunk_bytes):
            return _ranks_of_matrix(torch.mm(texts, images.T), text_to_image, top, max_chunk_bytes)
        with _block_map(device) as block_map:
            positive = _positive_scores(texts, images, text_to_image, block_map)
            return _ranks(texts, images, positive, text_to_image, top, max_chunk_bytes, block_map)


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
    text_to_image = _check_mapping(text_to_image, *scores.shape).to(device)
    return _ranks_of_matrix(scores, text_to_image, top, max_chunk_bytes)


def _ranks_of_matrix(scores: torch.Tensor, text_to_image: torch.Tensor, top: int, max_chunk_bytes: int) -> QueryRanks:
    """``ranks_from_scores`` on a checked float32 matrix on its device. The thresholds are the matrix's
    own entries and the matrix stays, so no pass has to split candidates at the positive: one pass
    counts, per query, the candidates above its threshold -- strictly, or at or above it where that
    leaves fewer queries open (``_inclusive_counts``) -- and only the open queries, whose rank the
    count does not settle, are looked at again, for ties (``_count_ties``)."""
    n_texts, n_images = scores.shape
    _check_sizes(n_texts, n_images)
    positive = scores[torch.arange(n_texts, device=scores.device), text_to_image]
    captions = _Queries.of(positive, text_to_image, n_images)
    images = _best_captions(positive, text_to_image, n_images)
    chunk_rows = _chunk_rows(n_texts, n_images, max_chunk_bytes, scores.device)
    inclusive = _inclusive_counts(scores, captions, top)
    bars = (captions.below, images.below) if inclusive else (captions.threshold, images.threshold)
    counts = _line_counts(scores, torch.gt, bars, chunk_rows)
    captions.count, images.count = (count.long() for count in counts)
    _count_ties(scores, (captions, images), inclusive, top, chunk_rows)
    return QueryRanks(i2t=images.ranks(min(top, n_texts)), t2i=captions.ranks(min(top, n_images)))


def _line_counts(
    scores: torch.Tensor,
    compare: Callable[..., torch.Tensor],
    thresholds: tuple[torch.Tensor | None, torch.Tensor | None],
    chunk_rows: int,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per row and per column of a stored matrix: its entries for which ``compare(entry, threshold)``
    holds (``torch.gt``, ``torch.eq``), against each row's threshold [n_rows] and each column's
    [n_cols] (``None``: that side is not counted). Chunks of ``chunk_rows`` rows, read by both
    comparisons while in cache; their 0/1 flags are summed by matrix-vector products (exact in float32
    below 2**24). Float counts. Torch's own threads share each operation: at this chunk size a thread
    pool's hand-offs cost more than they save (1k x 5k at 2 threads: 1.6 ms against 1.3 ms)."""
    n_rows, n_cols = scores.shape
    row_thresholds, column_thresholds = thresholds
    row_counts = None if row_thresholds is None else torch.zeros(n_rows, device=scores.device)
    column_counts = None if column_thresholds is None else torch.zeros(n_cols, device=scores.device)
    flags = torch.empty(chunk_rows * n_cols, device=scores.device)
    ones = torch.ones(max(chunk_rows, n_cols), device=scores.device)
    for a in range(0, n_rows, chunk_rows):
        b = min(a + chunk_rows, n_rows)
        part, chunk_flags = scores[a:b], flags[: (b - a) * n_cols].view(b - a, n_cols)
        if row_counts is not None:
            row_counts[a:b].addmv_(compare(part, row_thresholds[a:b, None], out=chunk_flags), ones[:n_cols])
        if column_counts is not None:
            column_counts.addmv_(compare(part, column_thresholds[None, :], out=chunk_flags).T, ones[: b - a])
    return row_counts, column_counts


def _inclusive_counts(scores: torch.Tensor, captions: _Queries, top: int) -> bool:
    """Whether to count candidates at or above the thresholds (the own entry too) rather than strictly
    above. Strictly above leaves open the queries ranked below ``top``, at or above those not ranked
    first: a strong model ranks most queries first, the benchmark's random embeddings almost none.
    Decided on ``MODE_SAMPLE`` evenly spread caption queries, for both directions: an image's best of
    several captions tends to rank at least as well as a caption's one image, and gathering columns
    for a sample of image queries cost 0.5 ms at 1k x 5k, more than a good guess saves. Only the speed
    depends on it: the ranks are the same either way."""
    sample = torch.linspace(0, len(captions.threshold) - 1, MODE_SAMPLE, device=scores.device).long().unique()
    lines = scores.index_select(0, sample)
    above = torch.gt(lines, captions.threshold[sample, None], out=torch.empty_like(lines)).sum(1)
    return bool((above > 0).sum() < (above < top).sum())


def _count_ties(
    scores: torch.Tensor, queries: tuple[_Queries, _Queries], inclusive: bool, top: int, chunk_rows: int
) -> None:
    """Settles the open queries of (captions, images): a count of candidates strictly above the
    threshold gets those of lower index at exactly the threshold added; a count at or above it
    (``inclusive``) first loses all those at it, its own entry included. Only queries with a candidate
    at their threshold besides their own -- in practice few -- need their lines searched by index."""
    opened = [query.open(top, inclusive) for query in queries]
    if inclusive:  # a settled count at or above is the own entry alone: ranked first
        for query in queries:
            query.count.masked_fill_(query.count <= 1, 0)
    line_bytes = 4 * chunk_rows * scores.shape[1]
    at_threshold = _at_threshold_counts(scores, queries, opened, line_bytes, chunk_rows)
    for query, indices, equal, dim in zip(queries, opened, at_threshold, (1, 0)):
        if inclusive:
            query.count[indices] -= equal
        tied = indices[(equal > 1) & (query.count[indices] < top)]
        shape = (-1, 1) if dim == 1 else (1, -1)
        candidates = torch.arange(scores.shape[dim], device=scores.device).view(shape[::-1])
        for group, lines in _gathered_lines(scores, tied, dim, line_bytes):
            equal_lines = lines == query.threshold[group].view(shape)
            query.count[group] += (equal_lines & (candidates < query.positive[group].view(shape))).sum(dim)


def _at_threshold_counts(
    scores: torch.Tensor,
    queries: tuple[_Queries, _Queries],
    opened: list[torch.Tensor],
    line_bytes: int,
    chunk_rows: int,
) -> list[torch.Tensor]:
    """Per direction, each open query's entries exactly at its threshold (its own included): from its
    gathered lines where fewer than one query in ``GATHER_BELOW`` is open, else by one masked pass over
    the matrix for both directions at once (gathering costs 4-5x a pass per entry)."""
    many = [len(indices) * GATHER_BELOW >= len(query.count) for indices, query in zip(opened, queries)]
    masked = [
        torch.full_like(query.threshold, torch.nan).index_copy_(0, indices, query.threshold[indices])
        if is_many else None
        for query, indices, is_many in zip(queries, opened, many)
    ]
    passed = _line_counts(scores, torch.eq, (masked[0], masked[1]), chunk_rows) if any(many) else (None, None)
    counts = []
    for query, indices, from_pass, dim in zip(queries, opened, passed, (1, 0)):
        if from_pass is not None:
            counts.append(from_pass[indices].long())
            continue
        shape = (-1, 1) if dim == 1 else (1, -1)
        pieces = [
            torch.eq(lines, query.threshold[group].view(shape), out=torch.empty_like(lines)).sum(dim).long()
            for group, lines in _gathered_lines(scores, indices, dim, line_bytes)
        ]
        counts.append(torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long, device=scores.device))
    return counts


def _gathered_lines(
    scores: torch.Tensor, indices: torch.Tensor, dim: int, line_bytes: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(group, lines) for the listed queries, in groups within ``line_bytes``: their rows of the matrix
    (``dim`` 1, caption queries) or columns (``dim`` 0, image queries)."""
    for group in indices.split(max(1, line_bytes // (4 * scores.shape[dim]))):
        yield group, scores.index_select(1 - dim, group)


def _chunk_rows(n_rows: int, n_cols: int, max_chunk_bytes: int, device: torch.device) -> int:
    """Rows of a stored matrix counted at a time, within ``_byte_budget`` (on CPU ``CPU_COUNT_BYTES``
    per torch thread)."""
    return min(n_rows, max(1, _byte_budget(max_chunk_bytes, device, CPU_COUNT_BYTES) // (4 * n_cols)))


def _byte_budget(max_chunk_bytes: int, device: torch.device, cpu_bytes_per_thread: int) -> int:
    """The bytes one piece of scores may take: within ``max_chunk_bytes``, on CPU within
    ``cpu_bytes_per_thread`` per torch thread (cache-sized), on CUDA within an eighth of the free memory."""
    if device.type == "cpu":
        return min(max_chunk_bytes, cpu_bytes_per_thread * torch.get_num_threads())
    if device.type == "cuda":
        return min(max_chunk_bytes, torch.cuda.mem_get_info(device)[0] // 8)
    return max_chunk_bytes


@contextmanager
def full_float32_matmul() -> Iterator[None]:
    """Products in full float32 while scoring, whatever the process set (TF32 on CUDA, bf16 on CPU)."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _positive_scores(
    texts: torch.Tensor, images: torch.Tensor, text_to_image: torch.Tensor, block_map: BlockMap
) -> torch.Tensor:
    """[n_texts] float32 score of each caption with its image, as the tiles' product computes it: per
    run of ``POSITIVE_BLOCK`` captions, their product with the images they belong to: the range of
    images between the run's lowest and highest when that is no wider than the run (captions listed
    by image), else in steps of ``POSITIVE_DIAGONAL`` captions against their images one per caption
    (the diagonal); always with at least two images (a one-column product is a matrix-vector
    product, which rounds differently). This runs before the product and must cost little next to
    it: at most ``POSITIVE_BLOCK`` dot products' work per caption, ``POSITIVE_DIAGONAL`` unsorted."""
    n_texts, n_images = len(texts), len(images)
    out = torch.empty(n_texts, dtype=torch.float32, device=texts.device)

    def span(start_end: tuple[int, int]) -> None:
        start, end = start_end
        for a in range(start, end, POSITIVE_BLOCK):
            b = min(a + POSITIVE_BLOCK, end)
            owners = text_to_image[a:b]
            low, high = int(owners.min()), int(owners.max()) + 1
            if high - low <= max(b - a, 2) and n_images >= 2:
                low = min(low, n_images - 2)  # widen a one-image run to two (high <= n_images)
                high = max(high, low + 2)
                block = torch.mm(texts[a:b], images[low:high].T)
                out[a:b] = block.gather(1, (owners - low)[:, None]).flatten()
            else:
                for c in range(a, b, POSITIVE_DIAGONAL):
                    d = min(c + POSITIVE_DIAGONAL, b)
                    rows = text_to_image[c:d] if d - c > 1 else text_to_image[c:d].repeat(2)
                    out[c:d] = torch.mm(texts[c:d], images[rows].T).diagonal()[: d - c]

    list(block_map(span, n_texts))
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

    def open(self, top: int, inclusive: bool = False) -> torch.Tensor:
        """Indices of the queries with a positive whose rank their count does not settle: counted
        strictly above the threshold, those counted below ``top`` (ties could still rank ahead);
        counted at or above it (``inclusive``: their own entry too), those with any other candidate."""
        unsettled = self.count > 1 if inclusive else self.count < top
        return (unsettled & (self.positive < self.n_candidates)).nonzero().flatten()

    def ranks(self, top: int) -> torch.Tensor:
        """Counts capped at ``top``; a query without a positive gets ``top`` (a miss at every k <= top)."""
        capped = self.count.clamp(max=top)
        return torch.where(self.positive >= self.n_candidates, top, capped).cpu()


@dataclass(frozen=True)
class _Grid:
    """Tiles of ``rows`` captions x ``cols`` images, counted ``count_rows`` rows at a time; a block is
    one row of tiles."""

    n_texts: int
    n_images: int
    rows: int
    cols: int
    count_rows: int

    @property
    def n_blocks(self) -> int:
        return -(-self.n_texts // self.rows)

    @property
    def n_tiles(self) -> int:
        return -(-self.n_images // self.cols)


def _ranks(
    texts: torch.Tensor,
    images: torch.Tensor,
    positive: torch.Tensor,
    text_to_image: torch.Tensor,
    top: int,
    max_chunk_bytes: int,
    block_map: BlockMap,
) -> QueryRanks:
    """Both directions' ranks from the product's tiles, given each caption's positive score."""
    n_texts, n_images = len(texts), len(images)
    _check_sizes(n_texts, n_images)
    captions = _Queries.of(positive, text_to_image, n_images)
    best = _best_captions(positive, text_to_image, n_images)
    grid = _Grid(n_texts, n_images, *_tile_shape(n_texts, n_images, max_chunk_bytes, positive.device))
    straddles = _caption_straddles(captions, grid), _image_straddles(best, grid)
    counter = _Counter(texts, images, grid, captions, best, *straddles)
    for column_counts in block_map(counter.blocks, grid.n_blocks):
        best.count += column_counts
    return QueryRanks(i2t=best.ranks(min(top, n_texts)), t2i=captions.ranks(min(top, n_images)))


def _best_captions(positive: torch.Tensor, text_to_image: torch.Tensor, n_images: int) -> _Queries:
    """Image queries: the best caption's score and index (highest score, lowest index among equals);
    an image without a caption gets -inf and ``n_texts``."""
    n_texts, device = len(positive), positive.device
    best_score = torch.full((n_images,), -torch.inf, device=device).scatter_reduce_(0, text_to_image, positive, "amax")
    is_best = positive == best_score[text_to_image]
    text = torch.arange(n_texts, device=device)
    best_caption = torch.full((n_images,), n_texts, device=device).scatter_reduce_(
        0, text_to_image[is_best], text[is_best], "amin"
    )
    return _Queries.of(best_score, best_caption, n_texts)


@dataclass(frozen=True)
class _Straddle:
    """The queries of one tile whose positive lies inside it: their indices along the tile's query
    axis (a slice when consecutive), thresholds [n, 1], the positive's offset along the candidate
    axis [n, 1] and the largest such offset. In that tile they were counted with ``> threshold``
    throughout; ``correction`` fixes it.
    """

    rows: slice | torch.Tensor
    threshold: torch.Tensor
    at: torch.Tensor
    width: int

    def correction(self, scores: torch.Tensor, scratch: torch.Tensor, dim: int) -> torch.Tensor:
        """Per query: minus one if the positive's own entry exceeds the threshold (a candidate is not
        its own competitor), plus the equal-scoring candidates before it. ``dim`` is the tile's
        candidate axis (1: the queries are its rows, 0: its columns -- read in place, row-major).
        Only the candidates before the last positive are compared, and the exact per-query prefix
        only for queries with a tie there."""
        shape = (-1, 1) if dim == 1 else (1, -1)
        threshold, at = self.threshold.view(shape), self.at.view(shape)
        queries = scores[self.rows] if dim == 1 else scores[:, self.rows]
        own = queries.gather(dim, at)
        prefix = queries.narrow(dim, 0, self.width)
        equal = torch.eq(prefix, threshold, out=scratch[: prefix.numel()].view(prefix.shape))
        own_in_prefix = (own == threshold) & (at < self.width)
        correction = -(own > threshold).float().flatten()
        tied = (equal.sum(dim=dim, keepdim=True) > own_in_prefix).flatten().nonzero().flatten()
        if len(tied):
            equal_tied = equal.index_select(1 - dim, tied)
            before = torch.arange(self.width, device=scores.device).view(shape[::-1]) < at.flatten()[tied].view(shape)
            correction[tied] += (equal_tied * before).sum(dim=dim)
        return correction


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
    """Counts, block by block, the candidates ahead of every query's positive, over tiles of the
    product of the caption and image embeddings."""

    text_emb: torch.Tensor
    image_emb: torch.Tensor
    grid: _Grid
    captions: _Queries
    images: _Queries
    caption_straddles: dict[int, _Straddle]
    image_straddles: dict[int, _Straddle]
    #: per worker thread: the tile and flags buffers and a vector of ones, made once (fresh memory per
    #: span costs page faults that weigh on small problems)
    scratch: threading.local = field(default_factory=threading.local)

    def blocks(self, span: tuple[int, int]) -> torch.Tensor:
        """Blocks span[0]..span[1]-1: writes their captions' counts and returns what they add to each
        image query's (summed over spans by the caller), with this thread's buffers."""
        grid, device = self.grid, self.captions.threshold.device
        if not hasattr(self.scratch, "buffers"):
            size = grid.rows * grid.cols
            self.scratch.buffers = (torch.empty(size, device=device), torch.empty(size, device=device))
            self.scratch.ones = torch.ones(max(grid.rows, grid.cols), device=device)
        buffers, ones = self.scratch.buffers, self.scratch.ones
        column_hits = torch.zeros(grid.n_images, device=device)
        first_row = span[0] * grid.rows
        caption_tiles = (self.captions.positive[first_row : span[1] * grid.rows] // grid.cols)[:, None]
        for block in range(*span):
            r0, r1 = block * grid.rows, min((block + 1) * grid.rows, grid.n_texts)
            tiles_of_rows = caption_tiles[r0 - first_row : r1 - first_row]
            row_hits = self._block(block, r0, r1, buffers, ones, column_hits, tiles_of_rows)
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
        sums are exact below 2**24). The straddling corrections use the flags buffer as scratch before
        the passes write their flags into it."""
        grid, captions, images = self.grid, self.captions, self.images
        n_rows = r1 - r0
        below, threshold = captions.below[r0:r1, None], captions.threshold[r0:r1, None]
        # an image query counts ">= threshold" (> below) in blocks before its best caption's
        columns = torch.where(images.positive >= r1, images.below, images.threshold)[None, :]
        row_hits = torch.zeros(n_rows, device=threshold.device)
        for number in range(grid.n_tiles):
            c0, c1 = number * grid.cols, min((number + 1) * grid.cols, grid.n_images)
            width = c1 - c0
            out = buffers[0][: n_rows * width].view(n_rows, width)
            scores = torch.mm(self.text_emb[r0:r1], self.image_emb[c0:c1].T, out=out)
            hits = column_hits[c0:c1]
            key = block * grid.n_tiles + number
            if key in self.caption_straddles:
                straddle = self.caption_straddles[key]
                row_hits[straddle.rows] += straddle.correction(scores, buffers[1], dim=1)
            if key in self.image_straddles:
                straddle = self.image_straddles[key]
                hits[straddle.rows] += straddle.correction(scores, buffers[1], dim=0)
            # a caption row counts ">= threshold" (> below) in tiles before its image's
            row_thresholds = torch.where(caption_tiles > number, below, threshold)
            for a in range(0, n_rows, grid.count_rows):
                b = min(a + grid.count_rows, n_rows)
                part, flags = scores[a:b], buffers[1][: (b - a) * width].view(b - a, width)
                torch.gt(part, row_thresholds[a:b], out=flags)
                row_hits[a:b].addmv_(flags, ones[:width])
                torch.gt(part, columns[:, c0:c1], out=flags)
                hits.addmv_(flags.T, ones[: b - a])
        return row_hits


def _spans(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, max(1, size))]


def _tile_shape(n_rows: int, n_cols: int, max_chunk_bytes: int, device: torch.device) -> tuple[int, int, int]:
    """(rows, cols) of a float32 tile within ``_byte_budget`` (on CPU ``CPU_TILE_BYTES`` per torch
    thread), and the rows counted at a time (on CPU within ``CPU_COUNT_BYTES``, elsewhere the whole tile)."""
    elements = max(1, _byte_budget(max_chunk_bytes, device, CPU_TILE_BYTES) // 4)
    cols = min(n_cols, max(1, elements // min(n_rows, TILE_ROWS)))
    rows = min(n_rows, max(1, elements // cols))
    count_rows = min(rows, max(1, CPU_COUNT_BYTES // (4 * cols))) if device.type == "cpu" else rows
    return rows, cols, count_rows


@contextmanager
def _block_map(device: torch.device) -> Iterator[BlockMap]:
    """Runs work over spans of ``range(n)``: on a CPU with several torch threads, up to ``MAX_TASKS``
    spans on a pool of Python threads each running one torch thread (torch releases the GIL), so the
    small per-tile operations never wait at an intra-op thread barrier -- on a loaded machine such
    waits cost more than the work itself. Elsewhere (CUDA, one thread) one span, in this thread."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield lambda work, n: [work((0, n))]
        return
    workers = min(threads, MAX_WORKERS)
    torch.set_num_threads(max(1, threads // workers))
    try:
        with ThreadPoolExecutor(workers) as pool:
            yield lambda work, n: pool.map(work, _spans(n, -(-n // MAX_TASKS)))
    finally:
        torch.set_num_threads(threads)


def _check_sizes(n_texts: int, n_images: int) -> None:
    if n_images == 0 or n_texts == 0:
        raise ValueError("no queries to score")
    if max(n_images, n_texts) >= 2**24:
        raise ValueError("2**24 or more candidates: the float32 hit counters would no longer be exact")


def _check_mapping(text_to_image: torch.Tensor, n_texts: int, n_images: int) -> torch.Tensor:
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long)
    if text_to_image.shape != (n_texts,):
        raise ValueError(f"text_to_image has shape {tuple(text_to_image.shape)}, expected ({n_texts},)")
    if n_texts and (int(text_to_image.min()) < 0 or int(text_to_image.max()) >= n_images):
        raise ValueError("text_to_image refers to an image index out of range")
    return text_to_image
