"""GQA accuracy (Hudson & Manning, 2019), as LLaVA's converter and the official GQA ``eval.py`` compute it.

Protocol:
- ``gqa_prediction``: LLaVA's ``scripts/convert_gqa_for_eval.py`` -- strip trailing periods, lower-case;
  nothing else (no whitespace strip, no article or punctuation removal), so " yes" and "yes!" stay wrong.
  It is idempotent, so predictions converted beforehand score the same.
- ``accuracy``: the official evaluation script (``eval.py`` from the GQA website, as vendored by LLaVA at
  ``playground/data/eval/gqa/data/eval/eval.py``) matches predictions to questions by question id,
  scores 1 for an exact string match with ``question["answer"]`` and averages over the questions whose
  ``isBalanced`` is true, in percent. Unbalanced questions are ignored, with or without a prediction.
- Missing predictions: the script refuses to score ("no prediction for question ... Please add
  prediction for all questions") when a balanced question has none; one without a prediction for an
  unbalanced question is fine (without ``--consistency``, as LLaVA runs it) in the copy vendored by
  SHI-Labs/VCoder, while xyang583/ARDS's copy raises KeyError there (LLaVA's balanced question file holds
  no unbalanced questions, so published numbers are unaffected). Mirrored here as a
  ``BenchError``. A prediction for an id that is not among the questions, which the script ignores, is
  refused too: it means the predictions and question file do not belong together.
- The float is the script's ``sum / n * 100``, so it matches exactly.
- Intervals: ``gqa_statistic`` recomputes the accuracy on bootstrap resamples of the balanced questions.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from internvl_bench.bootstrap import Statistic, mean_percent
from internvl_bench.errors import BenchError


def gqa_prediction(text: str) -> str:
    """The answer string LLaVA submits to GQA's evaluator: trailing periods removed, lower-cased."""
    return text.rstrip(".").lower()


def gqa_accuracy(predictions: Mapping[str, str], questions: Mapping[str, Mapping]) -> dict[str, float]:
    """``{"accuracy": percent}`` over the balanced questions; ``predictions`` are raw answers by question id."""
    scores = gqa_marks(predictions, questions)
    return {"accuracy": sum(scores) / len(scores) * 100}


def gqa_statistic(scores: Sequence[float]) -> Statistic:
    """The bootstrap statistic of ``gqa_accuracy`` from ``gqa_marks``: accuracy over resampled questions."""
    values = np.asarray(scores, dtype=np.float64)
    return lambda draws: {"accuracy": mean_percent(values, draws)}


def gqa_marks(predictions: Mapping[str, str], questions: Mapping[str, Mapping]) -> list[float]:
    """1.0 / 0.0 per balanced question (in question-file order): exact match of the converted prediction."""
    unknown = [qid for qid in predictions if qid not in questions]
    if unknown:
        raise BenchError(
            f"GQA prediction for unknown question id {unknown[0]!r} ({len(unknown)} unknown); ids are the "
            "question file's string keys -- predict on the same question file that is scored"
        )
    balanced = [qid for qid, question in questions.items() if _field(qid, question, "isBalanced")]
    if not balanced:
        raise BenchError(
            "no balanced GQA questions to score: pass a question file such as testdev_balanced_questions.json"
        )
    missing = [qid for qid in balanced if qid not in predictions]
    if missing:
        raise BenchError(
            f"no GQA prediction for balanced question {missing[0]!r} ({len(missing)} missing); the official "
            "eval.py refuses to score without one for every balanced question -- answer them all"
        )
    return [float(gqa_prediction(predictions[qid]) == _field(qid, questions[qid], "answer")) for qid in balanced]


def _field(qid: str, question: Mapping, name: str) -> object:
    """``question[name]``, or a BenchError naming the question when the file lacks the field."""
    try:
        return question[name]
    except KeyError:
        raise BenchError(
            f"GQA question {qid!r} has no '{name}' field; pass the questions of the official GQA files"
        ) from None
