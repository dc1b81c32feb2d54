"""Tiny LVLM-eHub's answer check: is a normalised ground truth a whole word of the normalised answer?

Reproduces ``VQAEval.evaluate`` of Multi-Modality-Arena's ``tiny_lvlm_evaluation/utils/tools.py``, as
copied into InternVL (``internvl_chat/eval/tiny_lvlm``). Answers are free-form sentences, so instead of
VQA's exact match a ground truth counts when it occurs in the answer between ``\\b`` word boundaries,
after both went through the VQA tool's normalisation (``vqa.normalize_answer``, Python 3 regexes). A
sample is correct if any of its ground truths occurs; a task's score is the fraction of correct samples.

The boundary test has sharp edges, kept on purpose so scores compare:
- A ground truth that normalises to "" (an article such as "the", or only punctuation) matches any
  answer with at least one word character, and no other.
- One that starts (ends) with a non-word character, such as "'twas" (which is what "twas" normalises to)
  or "c#", needs a word character just before (after) it: after a space or at the ends it never matches,
  not even in an identical answer.
- Partial words do not match: "cat" is not in "category".
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from internvl_bench.metrics.vqa import normalize_answer


def tiny_lvlm_correct(answer: str, gt_answers: str | Sequence[str]) -> bool:
    """Tiny LVLM-eHub's ``VQAEval.evaluate``: does any normalised ground truth occur as a whole word?

    ``gt_answers`` is one string or a list of them, as in the benchmark's JSON.
    """
    truths = [gt_answers] if isinstance(gt_answers, str) else gt_answers
    text = normalize_answer(answer)
    return any(re.search(rf"\b{re.escape(normalize_answer(truth))}\b", text) for truth in truths)
