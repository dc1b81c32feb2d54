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
- Memory: queries are processed in chunks so that a chunk's score rows stay under ``max_chunk_bytes``;
  no full score matrix or positive-pair mask is ever built, so 100k images x 500k captions fit in a
  few GB.
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
    return _both_directions(
        lambda a, b: images[a:b] @ texts.T,
        lambda a, b: texts[a:b] @ images.T,
        text_to_image,
        len(images),
        ks,
        max_chunk_bytes,
    )


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
        best_rank = _best_positive_rank(rows, positives[start : start + chunk], top)
        for k in ks:
            hits[k] += int((best_rank < k).sum())
    return {k: 100.0 * hits[k] / n_queries for k in ks}


def _best_positive_rank(rows: torch.Tensor, positives: torch.Tensor, top: int) -> torch.Tensor:
    """Rank (0-based, index tie-break) of each query's best positive; exact below ``top``, else ``top``.

    The top-``top`` scores and their indices give the exact rank of any positive whose score is
    above the list's last value, or tied with it while the list still holds a lower value. Only when
    the list ends in a run of scores equal to the positive's (equal candidates may lie beyond the
    cut) is the row counted in full.
    """
    valid = positives >= 0
    safe = positives.clamp(min=0)
    pos_scores = torch.where(valid, rows.gather(1, safe), torch.full(safe.shape, -torch.inf))
    top_values, top_indices = torch.topk(rows, top, dim=1)
    above = top_values[:, None, :] > pos_scores[:, :, None]
    equal = top_values[:, None, :] == pos_scores[:, :, None]
    greater = above.sum(-1)
    n_equal = equal.sum(-1)
    equal_before = (equal & (top_indices[:, None, :] < safe[:, :, None])).sum(-1)
    rank = torch.where(valid, greater + equal_before, torch.full_like(greater, top))
    cut = valid & (n_equal > 0) & (greater + n_equal == top)
    if cut.any():
        qs, ps = cut.nonzero(as_tuple=True)
        full_rows, scores, candidates = rows[qs], pos_scores[qs, ps], safe[qs, ps]
        before = torch.arange(rows.shape[1])[None, :] < candidates[:, None]
        rank[qs, ps] = (full_rows > scores[:, None]).sum(1) + ((full_rows == scores[:, None]) & before).sum(1)
    return rank.min(dim=1).values.clamp(max=top)


def _check_mapping(text_to_image: torch.Tensor, n_texts: int, n_images: int) -> torch.Tensor:
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long)
    if text_to_image.shape != (n_texts,):
        raise ValueError(f"text_to_image has shape {tuple(text_to_image.shape)}, expected ({n_texts},)")
    if n_texts and (int(text_to_image.min()) < 0 or int(text_to_image.max()) >= n_images):
        raise ValueError("text_to_image refers to an image index out of range")
    return text_to_image
