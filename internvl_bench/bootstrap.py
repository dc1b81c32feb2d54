"""Percentile-bootstrap confidence intervals for a record's metrics, over the units a task scored.

A task says what its units are (queries, samples, questions, images) and how to recompute its metrics
on a resample of them; ``bootstrap_intervals`` draws ``resamples`` resamples with replacement from a
seeded generator and returns, per metric, the percentile interval: the ``(1 - level) / 2`` and
``(1 + level) / 2`` quantiles (numpy's linear interpolation) of the resampled values. Same seed, same
sizes, same resample count -> the same interval, on any machine.

Strata: ``n_units`` may be one count per stratum (e.g. an MME subtask's images, a Tiny LVLM category's
samples, a retrieval set's image queries and caption queries); each stratum is resampled with its own
size, independently, and one resample draws from all of them at once, so a total over strata (MME's
perception score, Tiny LVLM's overall, retrieval's ``mean_R``) is recomputed on the same resample as
its parts.

Vectorised: ``statistic`` is called with a batch of resamples -- one int array ``[B, n_stratum]`` of
unit indices per stratum -- and returns ``{metric: array [B]}``; a mean over units is then one gather
and one reduction (``values[indices].mean(axis=1)``). Batches are sized to hold about
``MAX_BATCH_INDICES`` indices (and at most ``MAX_BATCH_RESAMPLES`` resamples), so memory stays bounded
whatever the number of units.

NaN-safe: a resample in which a metric is undefined (precision without a predicted positive, a class
drawn zero times) returns NaN there and is left out of that metric's quantiles; a metric undefined in
every resample (acc5 below five classes) gets ``(nan, nan)``, stored as ``null``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
LEVEL = 0.95
#: a batch of resamples holds at most this many indices (int64: 32 MiB) and this many resamples
#: (a statistic may keep a [B, n_classes] table per batch)
MAX_BATCH_INDICES = 1 << 22
MAX_BATCH_RESAMPLES = 256

#: ``statistic(*draws)``: one ``[B, n]`` index array per stratum -> ``{metric: values [B]}``
Statistic = Callable[..., Mapping[str, np.ndarray]]


def bootstrap_intervals(
    n_units: int | Sequence[int],
    statistic: Statistic,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = LEVEL,
) -> dict[str, tuple[float, float]]:
    """``{metric: (low, high)}``: the percentile interval of each metric ``statistic`` returns.

    ``n_units`` is the number of units, or one number per stratum; ``statistic`` receives one index
    array ``[B, n]`` per stratum (see the module docstring). ``resamples == 0`` or no strata at all
    (nothing was scored) returns ``{}``.
    """
    sizes = [n_units] if isinstance(n_units, int) else list(n_units)
    if resamples < 0:
        raise ValueError(f"resamples must be >= 0, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if sizes and min(sizes) < 1:
        raise ValueError(f"every stratum needs at least one unit, got sizes {sizes}")
    if resamples == 0 or not sizes:
        return {}
    values = _resampled_values(sizes, statistic, resamples, np.random.default_rng(seed))
    return {metric: percentile_interval(column, level) for metric, column in values.items()}


def _resampled_values(
    sizes: list[int], statistic: Statistic, resamples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Each metric's value on every resample, computed batch by batch."""
    batch = max(1, min(MAX_BATCH_RESAMPLES, MAX_BATCH_INDICES // sum(sizes)))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, resamples, batch):
        rows = min(batch, resamples - start)
        draws = [rng.integers(0, size, size=(rows, size)) for size in sizes]
        for metric, column in statistic(*draws).items():
            parts.setdefault(metric, []).append(np.asarray(column, dtype=np.float64).reshape(rows))
    return {metric: np.concatenate(columns) for metric, columns in parts.items()}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The ``(1 -+ level) / 2`` quantiles of the finite ``values``; ``(nan, nan)`` when there are none."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return (float("nan"), float("nan"))
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return (float(low), float(high))


def mean_percent(marks: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``100 * mean`` of per-unit ``marks`` (0/1 or fractional scores) on each resample ``[B, n]``."""
    return 100.0 * np.asarray(marks, dtype=np.float64)[indices].sum(axis=1) / indices.shape[1]


def resampled_sums(values: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """``[B, d]`` column sums of per-unit ``values [n, d]`` over each resample ``[B, n]`` (via counts)."""
    rows, n = len(draws), len(values)
    cells = (np.arange(rows)[:, None] * n + draws).ravel()
    counts = np.bincount(cells, minlength=rows * n).reshape(rows, n)
    return counts @ values
