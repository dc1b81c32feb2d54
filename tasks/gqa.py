"""GQA testdev-balanced (paper Table F, the GQA column).

Paper: InternVL supplementary Table F; benchmark: GQA (Hudson & Manning, 2019), testdev-balanced
(12,578 questions), evaluated as LLaVA-1.5 does.

Layout under ``--data-root DIR`` (LLaVA's ``playground/data/eval/gqa``)::

    DIR/llava_gqa_testdev_balanced.jsonl           LLaVA's question file: question_id, image, text
    DIR/data/testdev_balanced_questions.json       the official GQA questions (answer, isBalanced)
    DIR/data/images/<image>                        GQA images (``data/`` may also be left out)

Protocol: the prompt is the question file's ``text`` verbatim (LLaVA's file already ends with
"\\nAnswer the question using a single word or phrase."), greedy, 128 new tokens; answers converted as
LLaVA's ``convert_gqa_for_eval.py`` (rstrip '.', lower-case) and scored by exact match over the balanced
questions, as GQA's ``eval.py`` (``internvl_bench.metrics.gqa``). Metric ``accuracy`` (percent), with a
bootstrap interval over the balanced questions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from internvl_bench.chat_task import ChatTask, ScoreInputs, data_root, own_predictions
from internvl_bench.data import ImageFileSource, file_sha256, read_json, read_jsonl
from internvl_bench.errors import BenchError
from internvl_bench.generation import GenerationOptions, GenerationRequest
from internvl_bench.metrics.gqa import gqa_accuracy, gqa_marks, gqa_prediction, gqa_statistic
from internvl_bench.runner import RunContext
from internvl_bench.task import TaskResult, register_task

QUESTION_FILE = "llava_gqa_testdev_balanced.jsonl"
OFFICIAL_QUESTIONS = "testdev_balanced_questions.json"
HINT = "LLaVA's playground/data/eval/gqa folder (see tasks/gqa.py)"


@register_task
class GQA(ChatTask):
    """GQA testdev-balanced, exact match after LLaVA's answer conversion (Table F)."""

    name = "gqa"
    version = "1"
    table = "F"
    prediction_keys = ("target",)
    headline_metrics = ("accuracy",)

    @dataclass
    class Options:
        max_new_tokens: int = field(default=128, metadata={"help": "greedy tokens per answer"})
        skip_bad_items: bool = field(default=False, metadata={"help": "skip images that do not decode (counted)"})

    def variants(self) -> list[str]:
        return ["testdev_balanced"]

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        root = data_root(ctx, self.name, HINT)
        data = root / "data" if (root / "data").is_dir() else root
        question_file, official = root / QUESTION_FILE, data / OFFICIAL_QUESTIONS
        rows = read_jsonl(question_file, "LLaVA GQA question file", HINT, required=("question_id", "image", "text"))
        questions = read_official(official)
        for row in rows:
            if str(row["question_id"]) not in questions:
                raise BenchError(f"{question_file}: question {row['question_id']} is not in {official}")
        source = ImageFileSource([data / "images" / row["image"] for row in rows])
        options = GenerationOptions(max_new_tokens=self.options.max_new_tokens)
        requests = [GenerationRequest(str(row["question_id"]), source, i, row["text"], options)
                    for i, row in enumerate(rows)]
        answers = ctx.generate(requests, skip_errors=self.options.skip_bad_items, desc="GQA")
        skipped = {a.id for a in answers if a.error is not None}
        asked = {str(row["question_id"]) for row in rows}
        scored = {qid: q for qid, q in questions.items() if qid in asked and qid not in skipped}
        answered = {a.id: a.raw_output for a in answers if a.error is None}
        marks = gqa_marks(answered, scored)
        predictions = [a.prediction(parsed=gqa_prediction(a.raw_output) if a.error is None else None,
                                    target=questions[a.id]["answer"],
                                    score=int(a.error is None and gqa_prediction(a.raw_output) == questions[a.id]["answer"]),
                                    balanced=bool(questions[a.id].get("isBalanced")))
                       for a in answers]
        return TaskResult(metrics=gqa_accuracy(answered, scored), n_samples=len(marks),
                          intervals=ctx.intervals(len(marks), gqa_statistic(marks)),
                          data_files={str(question_file): file_sha256(question_file), str(official): file_sha256(official)},
                          predictions=predictions, details={"skipped_items": len(skipped)})

    @classmethod
    def score_files(cls, inputs: ScoreInputs) -> dict[str, dict[str, float]]:
        rows = own_predictions(inputs.predictions, cls)
        if rows is not None:
            rows = [r for r in rows if "error" not in r]
            questions = ({str(r["id"]): {"answer": r["target"], "isBalanced": r.get("balanced", True)} for r in rows}
                         if inputs.questions is None else read_official(inputs.questions))
            return {"testdev_balanced": gqa_accuracy({str(r["id"]): r["raw_output"] for r in rows}, questions)}
        if inputs.questions is None:
            raise BenchError("scoring LLaVA GQA answers needs --questions testdev_balanced_questions.json")
        answers = read_jsonl(inputs.predictions, "LLaVA answers file", "pass the answers.jsonl of model_vqa_loader",
                             required=("question_id", "text"))
        return {"testdev_balanced": gqa_accuracy({str(a["question_id"]): a["text"] for a in answers},
                                                 read_official(inputs.questions))}


def read_official(path: Path) -> dict[str, dict]:
    data = read_json(path, "GQA questions file", HINT)
    if not isinstance(data, dict):
        raise BenchError(f"{path}: expected the official GQA questions (an object keyed by question id)")
    return {str(qid): q for qid, q in data.items()}
