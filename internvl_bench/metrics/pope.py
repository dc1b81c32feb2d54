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
- Responses and labels are aligned by position, as the script zips answers with annotation lines; a
  length mismatch or a label other than "yes"/"no" is refused (the script truncates, or reads any
  label but "no" as yes).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from internvl_bench.errors import BenchError

NEGATIVE_WORDS = frozenset({"No", "not", "no"})


def parse_pope(text: str) -> str:
    """"yes" or "no": the script's reading of a free-form answer (first sentence, space-split words)."""
    first_sentence = text.split(".", 1)[0]
    words = first_sentence.replace(",", "").split(" ")
    return "no" if NEGATIVE_WORDS.intersection(words) else "yes"


def pope_metrics(responses: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and yes ratio in percent, positive = yes (see the module docstring)."""
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
    predicted_yes = [parse_pope(response) == "yes" for response in responses]
    labelled_yes = [label == "yes" for label in labels]
    tp = sum(p and t for p, t in zip(predicted_yes, labelled_yes))
    fp = sum(p and not t for p, t in zip(predicted_yes, labelled_yes))
    tn = sum(not p and not t for p, t in zip(predicted_yes, labelled_yes))
    fn = sum(not p and t for p, t in zip(predicted_yes, labelled_yes))
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    return {
        "accuracy": (tp + tn) / (tp + tn + fp + fn) * 100,
        "precision": precision * 100,
        "recall": recall * 100,
        "f1": _f1(precision, recall) * 100,
        "yes_ratio": sum(predicted_yes) / len(predicted_yes) * 100,
    }


def _f1(precision: float, recall: float) -> float:
    """The script's 2PR / (P + R); NaN propagates, and P = R = 0 gives 0 instead of dividing by zero."""
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
