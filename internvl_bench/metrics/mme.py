"""MME scores (Fu et al., 2023), as the MME eval_tool's ``calculation.py`` computes them.

Protocol (the copy in InternVL's ``internvl_chat/eval/mme/calculation.py``, which produced the paper's numbers):
- A response is lower-cased, not stripped, then ``parse_mme`` reads it: exactly "yes" or "no" is taken as is;
  otherwise only its first four characters count -- "yes" among them gives yes, else "no" gives no, else
  "other". Hence " No." -> no, "not sure" -> no, "Yeah" -> other, "  yes" -> other (the word leaves the
  window), "I think no" -> other (a "no" after the fourth character is never seen).
- "other" is a wrong answer: it counts in the denominators but never matches the Yes/No label.
- Per subtask: ``acc`` = percentage of questions answered right; ``acc_plus`` = percentage of images whose
  two questions are both right, an image being two consecutive items of its subtask (the layout of the
  MME files); score = 100*acc + 100*acc+ (at most 200). The tool also computes precision/recall, which
  do not enter the score and are not reproduced.
- ``perception`` = sum of the scores of the ten perception subtasks (at most 2000), ``cognition`` of the
  four cognition ones (at most 800), added in the tool's order. The tool needs every subtask file; here
  a group sums the subtasks present, and is left out when none is.
- Floats are formed with the tool's operations in its order, so the numbers match it exactly.

Intervals: ``mme_statistic`` resamples images within each subtask (an image's two questions stay
together, as acc+ needs) and recomputes every subtask's score, acc and acc+ and the group totals on the
same resample (a total is the sum of its resampled subtask scores).

Beyond the tool, which asserts or silently skips, bad input is refused: an unknown subtask, a label other
than "Yes"/"No", an odd number of items in a subtask, and two consecutive items of different images
(the items lost the MME file order, so the acc+ pairs would be wrong).

Responses are parsed as given: InternVL's ``eval.py`` post-processes the model's text (drops newlines,
maps Chinese yes/no and true/false) before writing the result files; that belongs to the generating task.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from internvl_bench.bootstrap import Statistic
from internvl_bench.errors import BenchError, unknown_name_error

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
GROUPS = {"perception": PERCEPTION, "cognition": COGNITION}
LABELS = ("Yes", "No")


@dataclass(frozen=True)
class MMEItem:
    """One question of an MME subtask file and the model's answer to it."""

    subtask: str
    image: str
    question: str
    label: str  # "Yes" or "No" as in the MME txt files
    response: str  # the model's raw answer


def parse_mme(response: str) -> str:
    """"yes", "no" or "other": the tool's ``parse_pred_ans`` on the lower-cased response."""
    answer = response.lower()
    if answer in ("yes", "no"):
        return answer
    prefix = answer[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def mme_scores(items: Sequence[MMEItem]) -> dict[str, float]:
    """Per subtask present: score, ``_acc`` and ``_acc_plus`` (percent); plus each group's summed score.

    ``items`` keep the order of the MME result files: within a subtask an image is two consecutive
    items; items of different subtasks may be interleaved.
    """
    return scores_from_marks(mme_marks(items))


def mme_marks(items: Sequence[MMEItem]) -> dict[str, np.ndarray]:
    """Per subtask, bool [n_images, 2]: whether each image's two questions were answered right.

    The unit of acc+ (and of the bootstrap) is the image, so the two answers stay together.
    """
    if not items:
        raise BenchError("no MME items to score: pass the answered questions of at least one subtask")
    by_subtask: dict[str, list[MMEItem]] = {}
    for item in items:
        if item.subtask not in PERCEPTION + COGNITION:
            raise unknown_name_error("MME subtask", item.subtask, PERCEPTION + COGNITION)
        if item.label not in LABELS:
            raise BenchError(
                f"MME item {item.subtask}/{item.image} has label {item.label!r}; labels must be 'Yes' or 'No' "
                "as in the MME txt files"
            )
        by_subtask.setdefault(item.subtask, []).append(item)
    return {subtask: _image_marks(subtask, subtask_items) for subtask, subtask_items in by_subtask.items()}


def scores_from_marks(marks: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``mme_scores`` from ``mme_marks``: subtask scores in the tool's order, then the group sums."""
    counts = {subtask: (int(m.sum()), int(m.all(axis=1).sum()), len(m)) for subtask, m in marks.items()}
    return {metric: float(value) for metric, value in _grouped_scores(counts).items()}


def mme_statistic(marks: Mapping[str, np.ndarray]) -> tuple[list[int], Statistic]:
    """The bootstrap of ``scores_from_marks``: strata (images per subtask, in the tool's order) and the
    statistic, which resamples each subtask's images -- both questions of a drawn image together -- and
    sums the resampled subtask scores of a group into its total."""
    order = [subtask for subtasks in GROUPS.values() for subtask in subtasks if subtask in marks]

    def statistic(*draws: np.ndarray) -> dict[str, np.ndarray]:
        counts = {}
        for subtask, indices in zip(order, draws):
            drawn = marks[subtask][indices]  # [B, n_images, 2]
            counts[subtask] = (drawn.sum(axis=(1, 2)), drawn.all(axis=2).sum(axis=1), indices.shape[1])
        return _grouped_scores(counts)

    return [len(marks[subtask]) for subtask in order], statistic


def _grouped_scores(counts: Mapping[str, tuple[Any, Any, int]]) -> dict[str, Any]:
    """Subtask scores from (right answers, images with both right, images), then each group's sum.

    Counts may be ints (the point estimate) or arrays over resamples (the bootstrap): the same
    operations in the tool's order either way.
    """
    scores: dict[str, Any] = {}
    for group, subtasks in GROUPS.items():
        present = [subtask for subtask in subtasks if subtask in counts]
        for subtask in present:
            scores |= _subtask_scores(subtask, *counts[subtask])
        if present:
            scores[group] = sum(scores[subtask] for subtask in present)
    return scores


def _image_marks(subtask: str, items: list[MMEItem]) -> np.ndarray:
    """[n_images, 2] right/wrong of a subtask's items, which come in image pairs."""
    if len(items) % 2:
        raise BenchError(
            f"MME subtask '{subtask}' has {len(items)} items, an odd number: every image has two questions; "
            "pass both, in the order of the MME files"
        )
    for index in range(0, len(items), 2):
        first, second = items[index], items[index + 1]
        if first.image != second.image:
            raise BenchError(
                f"MME subtask '{subtask}': items {index} and {index + 1} are for images '{first.image}' and "
                f"'{second.image}'; an image's two questions must be consecutive, as in the MME files"
            )
    correct = [parse_mme(item.response) == item.label.lower() for item in items]
    return np.array(correct, dtype=bool).reshape(-1, 2)


def _subtask_scores(subtask: str, n_correct: Any, n_both: Any, n_images: int) -> dict[str, Any]:
    """Score, acc and acc+ of one subtask: the tool's ``acc * 100 + acc_plus * 100``."""
    acc = n_correct / (2 * n_images)
    acc_plus = n_both / n_images
    return {
        subtask: acc * 100 + acc_plus * 100,
        f"{subtask}_acc": acc * 100,
        f"{subtask}_acc_plus": acc_plus * 100,
    }
