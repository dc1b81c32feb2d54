"""Chance levels of the replicas: what a guesser that ignores the image scores, in expectation.

They sit beside the demo numbers so a reader can tell learning from luck. Retrieval: a uniformly random
ranking; classification: a uniform class; yes/no sets: a fair coin (MME: 50% accuracy, 25% acc+ per
image; POPE: expected confusion counts give precision = recall = 50%); open answers: a guess drawn
uniformly from the replica's own answer vocabulary, scored by each benchmark's rule.
"""
from __future__ import annotations

from collections.abc import Sequence
from math import comb

from internvl_bench.metrics.vqa import vqa_accuracy


def retrieval_chance(images: int, captions_per_image: int) -> dict[str, float]:
    """Expected R@1/5/10 (percent) of a uniformly random ranking, both directions, and their mean."""
    captions = images * captions_per_image

    def hit(pool: int, positives: int, k: int) -> float:
        k = min(k, pool)
        return 100 * (1 - comb(pool - positives, k) / comb(pool, k))

    out = {f"i2t_R@{k}": hit(captions, captions_per_image, k) for k in (1, 5, 10)}
    out |= {f"t2i_R@{k}": hit(images, 1, k) for k in (1, 5, 10)}
    out["mean_R"] = sum(out.values()) / 6
    return out


def uniform_vqa_chance(answer_lists: Sequence[Sequence[str]]) -> float:
    """Percent VQA accuracy (the scorer's, ``metrics.vqa.vqa_accuracy``) of a guess drawn uniformly from
    every answer the set holds."""
    vocabulary = sorted({a for answers in answer_lists for a in answers})
    per_question = [sum(vqa_accuracy(v, answers) for v in vocabulary) / len(vocabulary) for answers in answer_lists]
    return 100 * sum(per_question) / len(per_question)


def uniform_exact_chance(truths: Sequence[str]) -> float:
    """Percent exact-match accuracy of a guess drawn uniformly from the set's distinct answers."""
    return 100 / len(set(truths))
