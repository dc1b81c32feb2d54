"""Zero-shot classification metrics: top-k accuracy and mean per-class recall, in percent.

Conventions (CLIP_benchmark's ``metrics/zeroshot_classification.py``, so numbers compare):
- ``logits`` [N, C] scores, ``targets`` [N] class indices in ``0..C-1``.
- ``acc@k``: percentage of samples whose target is among the k highest scores. Ties are broken by
  class index (a class with the same score as the target ranks ahead of it when its index is lower),
  so the result does not depend on the top-k kernel; ``acc5`` is NaN below 5 classes, where
  top-5 is meaningless (every sample would be a hit).
- ``mean_per_class_recall`` (balanced accuracy): for each class that has samples, the percentage of
  its samples whose arg-max prediction is that class; then the mean over those classes. Classes
  without samples are left out, not counted as zero (sklearn's ``balanced_accuracy_score``). The CLIP
  paper reports this for FGVC-Aircraft, Pets, Caltech-101 and Flowers-102.
- ``classification_statistic``: the three metrics on bootstrap resamples of the samples, from each
  sample's target rank; mean per-class recall is recomputed per resample over the classes it drew.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from internvl_bench.bootstrap import Statistic, mean_percent


def target_ranks(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[N] 0-based rank of each sample's target class (index tie-break)."""
    logits = logits.float()
    targets = torch.as_tensor(targets, dtype=torch.long)
    target_scores = logits.gather(1, targets[:, None])
    higher = (logits > target_scores).sum(1)
    lower_index = torch.arange(logits.shape[1])[None, :] < targets[:, None]
    tied_before = ((logits == target_scores) & lower_index).sum(1)
    return higher + tied_before


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """Percentage of samples whose target ranks in the top ``k``; NaN when there are fewer than k classes."""
    if logits.shape[1] < k:
        return math.nan
    ranks = target_ranks(logits, targets)
    return 100.0 * int((ranks < k).sum()) / len(ranks)


def mean_per_class_recall(predictions: torch.Tensor, targets: torch.Tensor, n_classes: int) -> float:
    """Mean over classes present in ``targets`` of the percentage of their samples predicted correctly."""
    predictions = torch.as_tensor(predictions, dtype=torch.long)
    targets = torch.as_tensor(targets, dtype=torch.long)
    support = torch.bincount(targets, minlength=n_classes).double()
    correct = torch.bincount(targets[predictions == targets], minlength=n_classes).double()
    present = support > 0
    return 100.0 * float((correct[present] / support[present]).mean())


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """``acc1``, ``acc5`` (NaN below 5 classes) and ``mean_per_class_recall`` from logits [N, C]."""
    if len(targets) == 0:
        raise ValueError("no samples to score")
    n_classes = logits.shape[1]
    targets = torch.as_tensor(targets, dtype=torch.long)
    if int(targets.min()) < 0 or int(targets.max()) >= n_classes:
        raise ValueError(f"targets must lie in 0..{n_classes - 1}")
    return {
        "acc1": topk_accuracy(logits, targets, 1),
        "acc5": topk_accuracy(logits, targets, 5),
        # argmax returns the first maximal index: the same tie-break as the ranks above
        "mean_per_class_recall": mean_per_class_recall(logits.float().argmax(1), targets, n_classes),
    }


def classification_statistic(ranks: torch.Tensor, targets: torch.Tensor, n_classes: int) -> Statistic:
    """The bootstrap statistic of ``classification_metrics`` from ``target_ranks`` [N] and targets [N].

    A sample's arg-max prediction is its target exactly when the target's rank is 0 (the same index
    tie-break), so the ranks give all three metrics.
    """
    ranks_np = ranks.numpy()
    targets_np = torch.as_tensor(targets, dtype=torch.long).numpy()
    correct = ranks_np == 0

    def statistic(draws: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "acc1": mean_percent(ranks_np < 1, draws),
            "acc5": mean_percent(ranks_np < 5, draws) if n_classes >= 5 else np.full(len(draws), math.nan),
            "mean_per_class_recall": _resampled_class_recall(correct, targets_np, n_classes, draws),
        }

    return statistic


def _resampled_class_recall(correct: np.ndarray, targets: np.ndarray, n_classes: int, draws: np.ndarray) -> np.ndarray:
    """Mean per-class recall of each resample [B, n], over the classes that resample holds."""
    rows = len(draws)
    cells = (np.arange(rows)[:, None] * n_classes + targets[draws]).ravel()
    support = np.bincount(cells, minlength=rows * n_classes).reshape(rows, n_classes)
    hits = np.bincount(cells, weights=correct[draws].ravel(), minlength=rows * n_classes).reshape(rows, n_classes)
    present = support > 0
    recall = np.where(present, hits / np.maximum(support, 1), 0.0)
    return 100.0 * recall.sum(axis=1) / present.sum(axis=1)
