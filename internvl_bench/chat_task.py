"""What the chat benchmark tasks share: the model kind, their data root, and rescoring of prediction files.

A chat task (MME, POPE, Tiny LVLM, VQA, GQA, captioning) subclasses ``ChatTask``: ``evaluate`` turns
its dataset into ``GenerationRequest``s, asks ``ctx.generate`` for answers and scores them with the pure
functions of ``internvl_bench/metrics``; ``score_files`` runs the same scorers on prediction files that
already exist -- this project's ``*.predictions.jsonl`` or the official formats other harnesses write --
for ``internvl-bench score TASK --predictions P ...``. Both return metrics under the same names and
units, so a rescored run and a fresh one compare directly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from internvl_bench.data import read_jsonl
from internvl_bench.errors import BenchError
from internvl_bench.runner import RunContext
from internvl_bench.task import Task

#: LLaVA-1.5's short-answer instruction (its question files put it after a newline)
SHORT_ANSWER = "Answer the question using a single word or phrase."


@dataclass(frozen=True)
class ScoreInputs:
    """The files ``internvl-bench score`` was given."""

    predictions: Path
    annotations: Path | None = None
    questions: Path | None = None
    evaluator: str | None = None


class ChatTask(Task):
    model_kind: ClassVar[str] = "chat"
    #: keys every line of this task's own predictions file carries beyond the common ones
    prediction_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def score_files(cls, inputs: ScoreInputs) -> dict[str, dict[str, float]]:
        """{variant: {metric: value}} for existing prediction files (units as in the records)."""
        raise BenchError(f"task '{cls.name}' cannot score prediction files")


def data_root(ctx: RunContext, task: str, hint: str) -> Path:
    if ctx.config.data_root is None:
        raise BenchError(f"{task} needs --data-root DIR ({hint})")
    root = Path(ctx.config.data_root)
    if not root.exists():
        raise BenchError(f"{root}: no such data folder ({hint})")
    return root


def own_predictions(path: Path, task: type[ChatTask]) -> list[dict[str, Any]] | None:
    """The rows of this project's predictions file for ``task``, or None when ``path`` is not one.

    A ``*.predictions.jsonl`` whose record (the ``.json`` beside it) belongs to another task, or whose
    lines lack the task's keys, is refused with a one-line error."""
    if not path.name.endswith(".predictions.jsonl"):
        return None
    record = path.with_name(path.name.removesuffix(".predictions.jsonl") + ".json")
    if record.is_file():
        try:
            owner = json.loads(record.read_text(encoding="utf-8")).get("task")
        except ValueError:
            owner = None
        if owner is not None and owner != task.name:
            raise BenchError(f"{path}: predictions of task '{owner}' (see {record.name}), not '{task.name}'")
    rows = read_jsonl(path, "predictions file", "pass a *.predictions.jsonl written by 'internvl-bench run'",
                      required=("id", "raw_output", *task.prediction_keys))
    return rows
