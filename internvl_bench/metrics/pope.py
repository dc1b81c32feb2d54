"""POPE object-hallucination metrics (Li et al., 2023), as LLaVA's ``llava/eval/eval_pope.py`` computes them.

Protocol (the script InternVL's LLaVA-based evaluation runs, once per POPE category file):
- ``parse_pope``: keep the text before the first "." (the first sentence), delete every ",", split on
  single spaces -- not on any whitespace, so "No\\tthere" is one word -- and answer "no" when one of the
  words is exactly ``No``, ``not`` or ``no`` (case-sensitive: "NO" and "Not" read as yes); anything
  else, the empty answer included, is "yes".
- Positive class = "yes". ``accuracy`` = (TP + TN) / N, ``precision`` = TP / (TP + FP), ``recall`` =
  TP / (TP + FN), ``f1`` = 2PR / (P + R), ``yes_ratio`` = share of answers read as yes. Values are in
  percent, unrounded (the script prints fractions to three decimals); each is the script's fraction
  times 100, so the numbers match it exactly.
- Zero denominators, where the script raises ZeroDivisionError: ``precision`` is NaN when nothing is
  read as yes, ``recall`` is NaN when no label is yes, ``f1`` is NaN when either is NaN and 0 when both
  are 0 (no true positive: the harmonic mean's limit, and 2TP / (2TP + FP + FN)).
- Intervals: ``pope_statistic`` recomputes every metric on bootstrap resamples of the questions.
- Responses and labels are aligned by position, as the script zips answers with annotation lines; a
  length mismatch or a label other than "yes"/"no" is refused (the script truncates, or reads any
  label but "no" as yes).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from internvl_bench.bootstrap import Statistic
from internvl_bench.errors import BenchError

NEGATIVE_WORDS = frozenset({"No", "not", "no"})


def parse_pope(text: str) -> str:
    """"yes" or "no": the script's reading of a free-form answer (first sentence, space-split words)."""
    first_sentence = text.split(".", 1)[0]
    words = first_sentence.replace(",", "").split(" ")
    return "no" if NEGATIVE_WORDS.intersection(words) else "yes"


def pope_metrics(responses: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and yes ratio in percent, positive = yes (see the module docstring)."""
    predicted_yes, labelled_yes = pope_marks(responses, labels)
    counts = _counts(predicted_yes, labelled_yes)
    return {metric: float(value) for metric, value in _rates(*counts).items()}


def pope_marks(responses: Sequence[str], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per question, bool: answer read as yes, label yes -- all the metrics need (and the bootstrap)."""
    if len(responses) != len(labels):
        raise BenchError(
            f"POPE: {len(responses)} responses for {len(labels)} labels; pass one response per annotation line, "
            "in the annotation file's order"
        )
    if not labels:
        raise BenchError("no POPE answers to score: pass the responses to at least one question")
    for index, label in enumerate(labels):
        if label not in ("yes", "no"):
            raise BenchError(
                f"POPE label {label!r} at position {index} is not 'yes' or 'no'; pass the annotation's 'label' field"
            )
    predicted_yes = np.array([parse_pope(response) == "yes" for response in responses], dtype=bool)
    return predicted_yes, np.array([label == "yes" for label in labels], dtype=bool)


def pope_statistic(predicted_yes: np.ndarray, labelled_yes: np.ndarray) -> Statistic:
    """The bootstrap statistic of ``pope_metrics`` over resampled questions (NaN where a resample has no
    predicted or no labelled yes, as the point estimate would)."""

    def statistic(draws: np.ndarray) -> dict[str, np.ndarray]:
        return _rates(*_counts(predicted_yes[draws], labelled_yes[draws]))

    return statistic


def _counts(predicted_yes: np.ndarray, labelled_yes: np.ndarray) -> tuple[Any, Any, Any, Any]:
    """TP, FP, TN, FN over the last axis (one question per entry)."""
    return ((predicted_yes & labelled_yes).sum(axis=-1), (predicted_yes & ~labelled_yes).sum(axis=-1),
            (~predicted_yes & ~labelled_yes).sum(axis=-1), (~predicted_yes & labelled_yes).sum(axis=-1))


def _rates(tp: Any, fp: Any, tn: Any, fn: Any) -> dict[str, Any]:
    """The script's fractions times 100, for counts that are numbers or arrays over resamples."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), math.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), math.nan)
        # the script's 2PR / (P + R); NaN propagates, and P = R = 0 gives 0 instead of dividing by zero
        f1 = np.where(precision + recall == 0, 0.0, 2 * precision * recall / (precision + recall))
    return {
        "accuracy": (tp + tn) / (tp + tn + fp + fn) * 100,
        "precision": precision * 100,
        "recall": recall * 100,
        "f1": f1 * 100,
        "yes_ratio": (tp + fp) / (tp + tn + fp + fn) * 100,
    }
