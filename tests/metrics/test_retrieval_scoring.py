"""The counting scorer: identical ranks to the previous top-k scorer on tie-heavy inputs, whatever the
tiling, thread pool or input path; full float32 products; the run's device."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from internvl_bench.metrics import retrieval
from internvl_bench.metrics.retrieval import (
    full_float32_matmul,
    ranks_from_scores,
    recalls_from_ranks,
    retrieval_ranks,
    retrieval_recalls,
)
from tests.fixtures.retrieval_reference import (
    reference_ranks,
    reference_ranks_from_scores,
)


def tie_heavy(seed: int, sorted_captions: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Small-integer embeddings: every score is exact, so ties are real and the same on every path.
    Some images get no caption; captions are grouped by image (as datasets list them) or shuffled."""
    generator = torch.Generator().manual_seed(seed)
    n_images = int(torch.randint(2, 30, (), generator=generator))
    n_texts = int(torch.randint(n_images, 5 * n_images, (), generator=generator))
    dim = int(torch.randint(1, 5, (), generator=generator))
    images = torch.randint(-1, 3, (n_images, dim), generator=generator).float()
    texts = torch.randint(-1, 3, (n_texts, dim), generator=generator).float()
    text_to_image = torch.randint(0, n_images, (n_texts,), generator=generator)
    if sorted_captions:
        text_to_image = text_to_image.sort().values
    return images, texts, text_to_image


def assert_same(ours, theirs) -> None:
    assert ours.i2t.tolist() == theirs.i2t.tolist() and ours.t2i.tolist() == theirs.t2i.tolist()


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("chunk_bytes", [4, 4 * 7 * 5, 1 << 30])
def test_embedding_ranks_equal_the_previous_scorer_on_ties(seed: int, chunk_bytes: int) -> None:
    images, texts, text_to_image = tie_heavy(seed, sorted_captions=seed % 2 == 0)
    top = [1, 5, 10, 1000][seed % 4]
    assert_same(retrieval_ranks(images, texts, text_to_image, top, chunk_bytes), reference_ranks(images, texts, text_to_image, top))


@pytest.mark.parametrize("seed", range(20))
def test_counting_in_row_chunks_changes_nothing(seed: int, monkeypatch) -> None:
    """The CPU counts each tile a few rows at a time: chunks of 1 and 3 rows, any tile size."""
    images, texts, text_to_image = tie_heavy(seed, sorted_captions=seed % 2 == 0)
    expected = reference_ranks(images, texts, text_to_image, 10)
    for count_bytes in (4 * 1, 4 * 3 * 30):
        monkeypatch.setattr(retrieval, "CPU_COUNT_BYTES", count_bytes)
        for chunk_bytes in (4 * 7 * 5, 1 << 30):
            assert_same(retrieval_ranks(images, texts, text_to_image, 10, chunk_bytes), expected)
            assert_same(ranks_from_scores(texts @ images.T, text_to_image, 10, chunk_bytes),
                        reference_ranks_from_scores(texts @ images.T, text_to_image))


@pytest.mark.parametrize("seed", range(20))
def test_score_matrix_ranks_equal_the_previous_scorer_on_ties(seed: int) -> None:
    images, texts, text_to_image = tie_heavy(seed, sorted_captions=seed % 2 == 1)
    scores = texts @ images.T
    for chunk_bytes in (4, 4 * 3 * 11, 1 << 30):
        assert_same(ranks_from_scores(scores, text_to_image, 10, chunk_bytes), reference_ranks_from_scores(scores, text_to_image))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("gather_below", [0, 10**9])
@pytest.mark.parametrize("inclusive", [False, True])
def test_every_way_of_counting_a_stored_matrix_agrees(seed: int, gather_below: int, inclusive, monkeypatch) -> None:
    """A stored matrix is counted strictly above or at or above its queries' thresholds, and its
    open queries are checked for ties by gathering their lines (few open) or by a masked pass first
    (many open): every combination gives the reference ranks, whatever the chunking."""
    monkeypatch.setattr(retrieval, "GATHER_BELOW", gather_below)
    monkeypatch.setattr(retrieval, "_inclusive_counts", lambda *args: inclusive)
    images, texts, text_to_image = tie_heavy(seed, sorted_captions=seed % 2 == 0)
    scores = texts @ images.T
    for top in (1, 5, 1000):
        expected = reference_ranks_from_scores(scores, text_to_image, top)
        for chunk_bytes in (4, 4 * 3 * 30, 1 << 30):
            assert_same(ranks_from_scores(scores, text_to_image, top, chunk_bytes), expected)


@pytest.mark.parametrize("gather_below", [0, 10**9])
@pytest.mark.parametrize("inclusive", [False, True, None])
def test_a_strong_model_with_repeated_images_and_captions_ranks_by_index(gather_below: int, inclusive,
                                                                        monkeypatch) -> None:
    """Near-matching captions (most queries in the top 10, most images' best caption first) with exact
    ties from repeated images and captions: every way of counting (None: as the sample decides) ranks
    the repeats by index, as a stable sort of the stored product does."""
    monkeypatch.setattr(retrieval, "GATHER_BELOW", gather_below)
    if inclusive is not None:
        monkeypatch.setattr(retrieval, "_inclusive_counts", lambda *args: inclusive)
    generator = torch.Generator().manual_seed(11)
    images = F.normalize(torch.randn(200, 64, generator=generator), dim=-1)
    images[1::9] = images[0::9][: len(images[1::9])]  # every ninth image repeated by the next
    owners = torch.arange(200).repeat_interleave(5)
    texts = F.normalize(images[owners] + 0.3 * torch.randn(1000, 64, generator=generator), dim=-1)
    texts[1::7] = texts[0::7][: len(texts[1::7])]  # and every seventh caption
    expected = reference_ranks(images, texts, owners, 10)
    assert (expected.t2i < 10).float().mean() > 0.9 and (expected.i2t == 0).float().mean() > 0.8
    assert_same(retrieval_ranks(images, texts, owners, 10), expected)


def test_the_sample_counts_a_strong_model_at_or_above_and_random_scores_strictly_above() -> None:
    generator = torch.Generator().manual_seed(2)
    images = F.normalize(torch.randn(300, 64, generator=generator), dim=-1)
    owners = torch.arange(300).repeat_interleave(5)
    for noise, expected in ((0.3, True), (None, False)):
        noisy = torch.randn(1500, 64, generator=generator)
        texts = F.normalize(noisy if noise is None else images[owners] + noise * noisy, dim=-1)
        scores = texts @ images.T
        captions = retrieval._Queries.of(scores[torch.arange(1500), owners], owners, 300)
        assert retrieval._inclusive_counts(scores, captions, 10) == expected


def test_float_embeddings_give_the_previous_scorers_recalls() -> None:
    """Continuous scores (no ties): the same recalls at a Flickr-like size, several tilings."""
    generator = torch.Generator().manual_seed(3)
    images = F.normalize(torch.randn(300, 32, generator=generator), dim=-1)
    owners = torch.arange(300).repeat_interleave(5)
    texts = F.normalize(images[owners] + 0.8 * torch.randn(1500, 32, generator=generator), dim=-1)
    expected = recalls_from_ranks(reference_ranks(images, texts, owners))
    for chunk_bytes in (4 * 64 * 100, 1 << 30):
        assert retrieval_recalls(images, texts, owners, max_chunk_bytes=chunk_bytes) == expected


@pytest.mark.parametrize("sorted_captions", [True, False])
def test_duplicate_captions_rank_by_index_on_every_path(sorted_captions: bool) -> None:
    """Continuous scores with exact duplicates (datasets repeat captions): tiled, whole-product and
    score-matrix paths all rank a duplicate by its index, as a stable sort of the stored product does --
    the positives' scores are the product's own bits, not a differently rounded dot product."""
    generator = torch.Generator().manual_seed(5)
    images = F.normalize(torch.randn(120, 256, generator=generator), dim=-1)
    owners = torch.arange(120).repeat_interleave(5)
    texts = F.normalize(images[owners] + 0.9 * torch.randn(600, 256, generator=generator), dim=-1)
    texts[1::7] = texts[0::7][: len(texts[1::7])]  # every seventh caption repeated by the next, of another image
    if not sorted_captions:
        order = torch.randperm(600, generator=generator)
        texts, owners = texts[order], owners[order]
    expected = reference_ranks_from_scores(texts @ images.T, owners, 1000)
    for chunk_bytes in (4 * 100 * 50, 1 << 30):
        assert_same(retrieval_ranks(images, texts, owners, 1000, chunk_bytes), expected)


def test_the_thread_pool_changes_nothing_and_restores_the_thread_count() -> None:
    images, texts, text_to_image = tie_heavy(7, sorted_captions=True)
    alone = retrieval_ranks(images, texts, text_to_image, 5, 4 * 3 * 4)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        pooled = retrieval_ranks(images, texts, text_to_image, 5, 4 * 3 * 4)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert_same(pooled, alone)


def test_positive_own_entry_never_counts_against_it() -> None:
    """Identical image and caption embeddings: every caption is its image's exact match, R@1 = 100."""
    generator = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(40, 16, generator=generator), dim=-1)
    recalls = retrieval_recalls(images, images.clone(), torch.arange(40), max_chunk_bytes=4 * 8 * 8)
    assert recalls["i2t_R@1"] == recalls["t2i_R@1"] == 100.0


def test_products_are_full_float32_even_when_the_process_allows_less() -> None:
    seen = []
    original = torch.mm

    def spy(*args, **kwargs):
        seen.append(torch.get_float32_matmul_precision())
        return original(*args, **kwargs)

    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(torch, "mm", spy)
            images, texts, text_to_image = tie_heavy(1, sorted_captions=True)
            retrieval_ranks(images, texts, text_to_image)
        assert seen and set(seen) == {"highest"}
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(previous)
    with full_float32_matmul():
        assert torch.get_float32_matmul_precision() == "highest"


def test_scoring_runs_on_the_requested_device_and_returns_cpu_ranks() -> None:
    """On CPU the device is honoured end to end; the same code runs on CUDA when there is one."""
    images, texts, text_to_image = tie_heavy(2, sorted_captions=True)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = [retrieval_ranks(images, texts, text_to_image, device=device) for device in devices]
    for ranks in results:
        assert ranks.i2t.device.type == ranks.t2i.device.type == "cpu"
        assert_same(ranks, results[0])


def test_cuda_tiles_are_sized_to_free_memory(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 4 * 1000, 10**12))
    rows, cols, count_rows = retrieval._tile_shape(10**6, 10**5, 1 << 30, torch.device("cuda"))
    assert rows * cols * 4 <= 4 * 1000 and rows >= 1 and cols >= 1 and count_rows == rows
    cpu_rows, cpu_cols, cpu_count_rows = retrieval._tile_shape(10**6, 10**5, 1 << 30, torch.device("cpu"))
    assert cpu_rows * cpu_cols * 4 <= retrieval.CPU_TILE_BYTES * torch.get_num_threads()
    assert 1 <= cpu_count_rows < cpu_rows and cpu_count_rows * cpu_cols * 4 <= retrieval.CPU_COUNT_BYTES


def test_more_candidates_than_exact_float_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="2\\*\\*24"):
        ranks_from_scores(torch.zeros(1, 2**24).expand(1, 2**24), torch.zeros(1, dtype=torch.long))
