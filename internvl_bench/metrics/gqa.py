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
  unbalanced question is fine (without ``--consistency``, as LLaVA runs it). Mirrored here as a
  ``BenchError``. A prediction for an id that is not among the questions, which the script ignores, is
  refused too: it means the predictions and question file do not belong together.
- The float is the script's ``sum / n * 100``, so it matches exactly.
"""
from __future__ import annotations

from collections.abc import Mapping

from internvl_bench.errors import BenchError


def gqa_prediction(text: str) -> str:
    """The answer string LLaVA submits to GQA's evaluator: trailing periods removed, lower-cased."""
    return text.rstrip(".").lower()


def gqa_accuracy(predictions: Mapping[str, str], questions: Mapping[str, Mapping]) -> dict[str, float]:
    """``{"accuracy": percent}`` over the balanced questions; ``predictions`` are raw answers by question id."""
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
    scores = [float(gqa_prediction(predictions[qid]) == _field(qid, questions[qid], "answer")) for qid in balanced]
    return {"accuracy": sum(scores) / len(scores) * 100}


def _field(qid: str, question: Mapping, name: str) -> object:
    """``question[name]``, or a BenchError naming the question when the file lacks the field."""
    try:
        return question[name]
    except KeyError:
        raise BenchError(
            f"GQA question {qid!r} has no '{name}' field; pass the questions of the official GQA files"
        ) from None
