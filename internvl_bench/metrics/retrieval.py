"""Recall@k for cross-modal retrieval, in bounded memory.

Conventions (shared by Tables A, C and D):
- Scores are cosine similarities computed in float32 (``S = T @ I.T`` on L2-normalised embeddings):
  half precision creates ties that flip R@1.
- A query is a hit at k if at least one of its positives ranks in the top k. Image->text (``i2t``) has
  one query per image and all of that image's captions as positives; text->image (``t2i``) has one
  query per caption with exactly one positive image. Values are percentages; ``mean_R`` averages the
  six recalls (Table D's "avg.").
- Ties are broken by index, as a stable sort would: a candidate with the same score as the positive
  ranks ahead of it when its index is lower. Exact ties are rare in float32 but this makes the
  result independent of the top-k kernel.
- Memory and time: the score matrix is produced in row chunks of at most ``max_chunk_bytes`` and
  never stored whole, nor is a positive-pair mask, so 100k images x 500k captions fit in a few GB.
  From embeddings, each chunk of image rows serves both directions: image->text ranks its rows
  directly; text->image keeps, per caption, a running top-k over the image chunks seen so far. The
  matrix product, which dominates the cost, is therefore computed once.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

DEFAULT_KS = (1, 5, 10)
DEFAULT_MAX_CHUNK_BYTES = 256 * 1024 * 1024

ScoreRows = Callable[[int, int], torch.Tensor]


def retrieval_recalls(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_to_image: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> dict[str, float]:
    """R@k both ways from embeddings [n_image, D] and [n_text, D]; ``text_to_image[t]`` = image of caption t."""
    images = image_emb.float()
    texts = text_emb.float()
    text_to_image = _check_mapping(text_to_image, len(texts), len(images))
    n_images, n_texts = len(images), len(texts)
    if n_images == 0 or n_texts == 0:
        raise ValueError("no queries to score")
    i2t_top, t2i_top = min(max(ks), n_texts), min(max(ks), n_images)
    i2t_positives = captions_per_image(text_to_image, n_images)
    i2t_hits = {k: 0 for k in ks}
    t2i = _RunningTop(n_texts, t2i_top)
    t2i_scores = torch.empty(n_texts)
    chunk = max(1, max_chunk_bytes // (4 * n_texts))
    for start in range(0, n_images, chunk):
        end = min(start + chunk, n_images)
        rows = images[start:end] @ texts.T  # [chunk, n_texts]
        best = _best_positive_rank(rows, i2t_positives[start:end], i2t_top, lambda q: rows[q])
        for k in ks:
            i2t_hits[k] += int((best < k).sum())
        t2i.merge(rows, start)
        here = ((text_to_image >= start) & (text_to_image < end)).nonzero().flatten()
        t2i_scores[here] = rows[text_to_image[here] - start, here]
    t2i_rank = _rank_from_top(
        t2i_scores[:, None], text_to_image[:, None], t2i.values, t2i.indices, t2i_top,
        lambda q: texts[q] @ images.T,
    )
    metrics = {f"i2t_R@{k}": 100.0 * i2t_hits[k] / n_images for k in ks}
    metrics |= {f"t2i_R@{k}": 100.0 * int((t2i_rank < k).sum()) / n_texts for k in ks}
    metrics["mean_R"] = sum(metrics.values()) / len(metrics)
    return metrics


class _RunningTop:
    """Per column of a row-chunked matrix: the ``top`` largest values so far and their row indices.

    Once a column holds ``top`` values, a new chunk can only change it through values above its
    smallest kept one; only such columns are re-ranked, which after the first chunks is a few
    percent of them (a strided top-k over every column would cost more than the matrix product).
    Values equal to the smallest kept one are not needed: the set stays a valid top-``top`` set.
    """

    def __init__(self, n_columns: int, top: int) -> None:
        self.top = top
        self.values = torch.empty(n_columns, 0)
        self.indices = torch.empty(n_columns, 0, dtype=torch.long)

    def merge(self, rows: torch.Tensor, row_offset: int) -> None:
        if self.values.shape[1] < self.top:
            self.values, self.indices = self._merged(self.values, self.indices, rows, row_offset)
            return
        columns = (rows > self.values[:, -1]).any(dim=0).nonzero().flatten()
        if len(columns):
            self.values[columns], self.indices[columns] = self._merged(
                self.values[columns], self.indices[columns], rows[:, columns], row_offset
            )

    def _merged(
        self, values: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor, row_offset: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        new_values, new_indices = torch.topk(rows, min(self.top, rows.shape[0]), dim=0)  # [k, columns]
        values = torch.cat([values, new_values.T], dim=1)
        indices = torch.cat([indices, new_indices.T + row_offset], dim=1)
        values, order = torch.topk(values, min(self.top, values.shape[1]), dim=1)
        return values, indices.gather(1, order)


def recalls_from_scores(
    scores: torch.Tensor,
    text_to_image: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> dict[str, float]:
    """R@k both ways from a precomputed [n_text, n_image] score matrix (e.g. after re-ranking)."""
    scores = scores.float()
    text_to_image = _check_mapping(text_to_image, scores.shape[0], scores.shape[1])
    return _both_directions(
        lambda a, b: scores[:, a:b].T,
        lambda a, b: scores[a:b],
        text_to_image,
        scores.shape[1],
        ks,
        max_chunk_bytes,
    )


def _both_directions(
    image_rows: ScoreRows,
    text_rows: ScoreRows,
    text_to_image: torch.Tensor,
    n_images: int,
    ks: Sequence[int],
    max_chunk_bytes: int,
) -> dict[str, float]:
    n_texts = len(text_to_image)
    i2t = hit_rates(image_rows, captions_per_image(text_to_image, n_images), n_texts, ks, max_chunk_bytes)
    t2i = hit_rates(text_rows, text_to_image[:, None], n_images, ks, max_chunk_bytes)
    metrics = {f"i2t_R@{k}": v for k, v in i2t.items()} | {f"t2i_R@{k}": v for k, v in t2i.items()}
    metrics["mean_R"] = sum(metrics.values()) / len(metrics)
    return metrics


def captions_per_image(text_to_image: torch.Tensor, n_images: int) -> torch.Tensor:
    """[n_images, max_captions] caption indices per image, padded with -1."""
    order = torch.argsort(text_to_image, stable=True)
    counts = torch.bincount(text_to_image, minlength=n_images)
    width = max(int(counts.max()) if n_images else 0, 1)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(order)) - starts[text_to_image[order]]
    padded = torch.full((n_images, width), -1, dtype=torch.long)
    padded[text_to_image[order], slot] = order
    return padded


def hit_rates(
    score_rows: ScoreRows,
    positives: torch.Tensor,
    n_candidates: int,
    ks: Sequence[int],
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> dict[int, float]:
    """Percentage of queries with a positive in the top k, for each k.

    ``score_rows(a, b)`` returns float32 scores [b - a, n_candidates] of queries a..b-1;
    ``positives`` is [n_queries, P] candidate indices, -1 for padding. A query without positives
    counts as a miss (it cannot be retrieved).
    """
    n_queries = len(positives)
    if n_queries == 0:
        raise ValueError("no queries to score")
    chunk = max(1, max_chunk_bytes // max(1, 4 * n_candidates))
    top = min(max(ks), n_candidates)
    hits = {k: 0 for k in ks}
    for start in range(0, n_queries, chunk):
        rows = score_rows(start, min(start + chunk, n_queries)).float()
        best_rank = _best_positive_rank(rows, positives[start : start + chunk], top, lambda q: rows[q])
        for k in ks:
            hits[k] += int((best_rank < k).sum())
    return {k: 100.0 * hits[k] / n_queries for k in ks}


def _best_positive_rank(
    rows: torch.Tensor, positives: torch.Tensor, top: int, full_rows: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Rank of each query's best positive among ``rows`` (see ``_rank_from_top``)."""
    valid = positives >= 0
    pos_scores = torch.where(valid, rows.gather(1, positives.clamp(min=0)), torch.tensor(-torch.inf))
    top_values, top_indices = torch.topk(rows, top, dim=1)
    return _rank_from_top(pos_scores, positives, top_values, top_indices, top, full_rows)


def _rank_from_top(
    pos_scores: torch.Tensor,
    positives: torch.Tensor,
    top_values: torch.Tensor,
    top_indices: torch.Tensor,
    top: int,
    full_rows: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Rank (0-based, index tie-break) of each query's best positive; exact below ``top``, else ``top``.

    ``top_values`` / ``top_indices`` [Q, top] are any valid top-``top`` set of each query's scores
    (every score above the set's smallest is in it). They give the exact rank of a positive scoring
    above that smallest value, or tied with it while the set still holds a lower value. Only when the
    set ends in a run of scores equal to the positive's (equal candidates may lie beyond the cut) is
    the query's full row, ``full_rows(query_indices)``, counted -- a rare event.
    """
    valid = positives >= 0
    safe = positives.clamp(min=0)
    equal = top_values[:, None, :] == pos_scores[:, :, None]
    greater = (top_values[:, None, :] > pos_scores[:, :, None]).sum(-1)
    n_equal = equal.sum(-1)
    equal_before = (equal & (top_indices[:, None, :] < safe[:, :, None])).sum(-1)
    rank = torch.where(valid, greater + equal_before, torch.full_like(greater, top))
    cut = valid & (n_equal > 0) & (greater + n_equal == top)
    if cut.any():
        qs, ps = cut.nonzero(as_tuple=True)
        rows, candidates = full_rows(qs), safe[qs, ps]
        scores = rows.gather(1, candidates[:, None])
        before = torch.arange(rows.shape[1])[None, :] < candidates[:, None]
        rank[qs, ps] = (rows > scores).sum(1) + ((rows == scores) & before).sum(1)
    return rank.min(dim=1).values.clamp(max=top)


def _check_mapping(text_to_image: torch.Tensor, n_texts: int, n_images: int) -> torch.Tensor:
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long)
    if text_to_image.shape != (n_texts,):
        raise ValueError(f"text_to_image has shape {tuple(text_to_image.shape)}, expected ({n_texts},)")
    if n_texts and (int(text_to_image.min()) < 0 or int(text_to_image.max()) >= n_images):
        raise ValueError("text_to_image refers to an image index out of range")
    return text_to_image
