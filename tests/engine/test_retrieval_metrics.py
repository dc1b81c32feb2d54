"""Recall@k against hand-computed cases and a brute-force stable-sort reference."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from internvl_bench.metrics.retrieval import (
    ranks_from_scores,
    recalls_from_ranks,
    recalls_from_scores,
    retrieval_ranks,
    retrieval_recalls,
)
from tests.fixtures.retrieval_reference import captions_per_image

CASES = json.loads((Path(__file__).parent / "data" / "retrieval_cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_hand_computed_cases(case: dict) -> None:
    scores = torch.tensor(case["scores"])
    metrics = recalls_from_scores(scores, torch.tensor(case["text_to_image"]), ks=case["ks"])
    for key, expected in case["expected"].items():
        assert metrics[key] == pytest.approx(expected), key


def brute_force(scores: torch.Tensor, text_to_image: torch.Tensor, ks: tuple[int, ...]) -> dict[str, float]:
    """Full stable sort per query, lower index first on ties: the definition, written plainly."""
    n_text, n_image = scores.shape
    out = {}
    for k in ks:
        hits = 0
        for image in range(n_image):
            order = sorted(range(n_text), key=lambda t: (-scores[t, image].item(), t))[:k]
            hits += any(int(text_to_image[t]) == image for t in order)
        out[f"i2t_R@{k}"] = 100 * hits / n_image
    for k in ks:
        hits = 0
        for text in range(n_text):
            order = sorted(range(n_image), key=lambda i: (-scores[text, i].item(), i))[:k]
            hits += int(text_to_image[text]) in order
        out[f"t2i_R@{k}"] = 100 * hits / n_text
    return out


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_with_many_ties(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    n_image = int(torch.randint(2, 14, (), generator=generator))
    n_text = 2 * n_image + 1
    text_to_image = torch.randint(0, n_image, (n_text,), generator=generator)
    scores = torch.randint(0, 3, (n_text, n_image), generator=generator).float() / 2  # coarse: many ties
    ks = (1, 3, 5)
    # a tiny chunk budget forces one query per chunk: chunking must not change anything
    ours = recalls_from_scores(scores, text_to_image, ks=ks, max_chunk_bytes=1)
    assert {k: ours[k] for k in brute_force(scores, text_to_image, ks)} == pytest.approx(brute_force(scores, text_to_image, ks))


def test_embeddings_and_score_paths_agree_and_chunking_is_invisible() -> None:
    generator = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(50, 16, generator=generator), dim=-1)
    texts = F.normalize(torch.randn(250, 16, generator=generator), dim=-1)
    text_to_image = torch.arange(250) // 5
    whole = retrieval_recalls(images, texts, text_to_image)
    chunked = retrieval_recalls(images, texts, text_to_image, max_chunk_bytes=4 * 250 * 3)
    from_scores = recalls_from_scores(texts @ images.T, text_to_image)
    assert whole == chunked == from_scores
    assert whole["mean_R"] == pytest.approx(sum(v for k, v in whole.items() if k != "mean_R") / 6)


def test_half_precision_embeddings_are_scored_in_float32() -> None:
    images = F.normalize(torch.randn(20, 8), dim=-1)
    texts = images.clone()
    assert retrieval_recalls(images.half(), texts.half(), torch.arange(20)) == retrieval_recalls(
        images.half().float(), texts.half().float(), torch.arange(20)
    )


def test_captions_per_image_pads_ragged_lists() -> None:
    padded = captions_per_image(torch.tensor([1, 0, 1, 1]), 3)
    assert padded.tolist() == [[1, -1, -1], [0, 2, 3], [-1, -1, -1]]


def test_bad_mapping_is_rejected() -> None:
    with pytest.raises(ValueError):
        recalls_from_scores(torch.zeros(3, 2), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("chunk_bytes", [1, 4 * 64 * 3, 1 << 30])
def test_single_pass_from_embeddings_matches_brute_force_with_ties(seed: int, chunk_bytes: int) -> None:
    """Integer-valued embeddings: every score is exact, so ties are real and identical on both paths."""
    generator = torch.Generator().manual_seed(seed)
    n_image = int(torch.randint(3, 20, (), generator=generator))
    n_text = int(torch.randint(n_image, 3 * n_image, (), generator=generator))
    images = torch.randint(0, 3, (n_image, 3), generator=generator).float()
    texts = torch.randint(0, 3, (n_text, 3), generator=generator).float()
    text_to_image = torch.randint(0, n_image, (n_text,), generator=generator)
    ks = (1, 2, 5)
    ours = retrieval_recalls(images, texts, text_to_image, ks=ks, max_chunk_bytes=chunk_bytes)
    expected = brute_force(texts @ images.T, text_to_image, ks)
    assert {k: ours[k] for k in expected} == pytest.approx(expected)


def brute_force_ranks(scores: torch.Tensor, text_to_image: torch.Tensor, top: int) -> tuple[list[int], list[int]]:
    """Per query, the position of its best positive in a stable sort (lower index first on ties), capped at
    top or the number of candidates; a query without positives gets the cap."""
    n_text, n_image = scores.shape
    i2t = []
    for image in range(n_image):
        order = sorted(range(n_text), key=lambda t: (-scores[t, image].item(), t))
        i2t.append(min([order.index(t) for t in range(n_text) if int(text_to_image[t]) == image] + [min(top, n_text)]))
    t2i = []
    for text in range(n_text):
        order = sorted(range(n_image), key=lambda i: (-scores[text, i].item(), i))
        t2i.append(min(order.index(int(text_to_image[text])), top, n_image))
    return i2t, t2i


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 30])
def test_per_query_ranks_match_brute_force_and_give_the_recalls(seed: int, chunk_bytes: int) -> None:
    """The ranks behind the recalls (and the bootstrap), on both paths, with real ties and an image
    without captions (its rank is the cut-off: a miss)."""
    generator = torch.Generator().manual_seed(seed)
    n_image = int(torch.randint(3, 9, (), generator=generator))  # at times fewer candidates than top
    n_text = int(torch.randint(n_image, 3 * n_image, (), generator=generator))
    images = torch.randint(0, 3, (n_image, 3), generator=generator).float()
    texts = torch.randint(0, 3, (n_text, 3), generator=generator).float()
    text_to_image = torch.randint(1, n_image, (n_text,), generator=generator)  # image 0 has no caption
    top = 5
    i2t, t2i = brute_force_ranks(texts @ images.T, text_to_image, top)
    for ranks in (retrieval_ranks(images, texts, text_to_image, top, chunk_bytes),
                  ranks_from_scores(texts @ images.T, text_to_image, top, chunk_bytes)):
        assert ranks.i2t.tolist() == i2t and ranks.t2i.tolist() == t2i and ranks.units == (n_image, n_text)
    ks = (1, 2, 5)
    assert recalls_from_ranks(retrieval_ranks(images, texts, text_to_image, max(ks)), ks) == retrieval_recalls(
        images, texts, text_to_image, ks=ks)
