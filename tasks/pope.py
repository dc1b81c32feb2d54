"""POPE object hallucination on COCO val2014 (paper Table F, the POPE column = mean F1 of the 3 splits).

Paper: InternVL supplementary Table F; benchmark: POPE (Li et al., 2023). Reported number: the mean of
the per-split F1 scores (random, popular, adversarial), as LLaVA-1.5 and InternVL report it.

Layout under ``--data-root DIR``::

    DIR/coco_pope_{random,popular,adversarial}.json   JSON lines: question_id, image, text, label (yes|no)
    DIR/val2014/COCO_val2014_*.jpg                    (the annotation files may also sit in DIR/coco/)

Protocol (LLaVA-1.5 / InternVL-Chat 1.0: ``llava_pope_test.jsonl`` + ``llava/eval/eval_pope.py``): the
prompt is the question text + "\\nAnswer the question using a single word or phrase." (LLaVA's question
file puts the instruction on a new line; ``--prompt-suffix`` changes it), greedy, 128 new tokens; answers
are read with ``internvl_bench.metrics.pope.parse_pope``. One record per split with ``accuracy``,
``precision``, ``recall``, ``f1``, ``yes_ratio`` (percent), each with a bootstrap interval over the
split's questions (Table F's mean F1 over the three split records gets none). The POPE version is
detected from the files and recorded: the one LLaVA-1.5 and InternVL pinned (POPE commit e3e3926) has
8,910 questions (random: 2,910); later versions have 9,000.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from internvl_bench.chat_task import SHORT_ANSWER, ChatTask, ScoreInputs, data_root, own_predictions
from internvl_bench.data import ImageFileSource, file_sha256, read_jsonl
from internvl_bench.errors import BenchError, unknown_name_error
from internvl_bench.generation import GenerationOptions, GenerationRequest
from internvl_bench.metrics.pope import parse_pope, pope_marks, pope_metrics, pope_statistic
from internvl_bench.runner import RunContext
from internvl_bench.task import TaskResult, register_task, split_list

SPLITS = ("random", "popular", "adversarial")
ANNOTATION = "coco_pope_{}.json"
HINT = "the folder with coco_pope_{random,popular,adversarial}.json and val2014/ (see tasks/pope.py)"
#: total questions of the three files -> POPE version
VERSIONS = {8910: "e3e3926 (8,910 questions; the version LLaVA-1.5 and InternVL evaluated)",
            9000: "9,000 questions (POPE after e3e3926)"}


@register_task
class POPE(ChatTask):
    """POPE yes/no object hallucination, random / popular / adversarial (Table F: mean F1)."""

    name = "pope"
    version = "1"
    table = "F"
    prediction_keys = ("split", "target")
    headline_metrics = ("f1", "accuracy", "yes_ratio")

    @dataclass
    class Options:
        splits: str = field(default=",".join(SPLITS), metadata={"help": "comma-separated POPE splits"})
        prompt_suffix: str = field(default="\n" + SHORT_ANSWER, metadata={
            "help": "appended to each question (LLaVA's question file: newline + the short-answer instruction)"})
        max_new_tokens: int = field(default=128, metadata={"help": "greedy tokens per answer"})
        skip_bad_items: bool = field(default=False, metadata={"help": "skip images that do not decode (counted)"})

    def variants(self) -> list[str]:
        splits = split_list(self.options.splits)
        for split in splits:
            if split not in SPLITS:
                raise unknown_name_error("POPE split", split, SPLITS)
        return splits

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        root = data_root(ctx, self.name, HINT)
        path = annotation_file(root, variant)
        rows = read_annotations(path)
        images = root / "val2014"
        source = ImageFileSource([images / row["image"] for row in rows])
        options = GenerationOptions(max_new_tokens=self.options.max_new_tokens)
        requests = [GenerationRequest(f"{variant}/{row['question_id']}", source, i,
                                      row["text"] + self.options.prompt_suffix, options)
                    for i, row in enumerate(rows)]
        answers = ctx.generate(requests, skip_errors=self.options.skip_bad_items, desc=f"POPE {variant}")
        kept = [(row, a) for row, a in zip(rows, answers) if a.error is None]
        responses, labels = [a.raw_output for _, a in kept], [row["label"] for row, _ in kept]
        predictions = [a.prediction(parsed=parse_pope(a.raw_output) if a.error is None else None, target=row["label"],
                                    score=int(a.error is None and parse_pope(a.raw_output) == row["label"]),
                                    split=variant, question_id=row["question_id"], image=row["image"])
                       for row, a in zip(rows, answers)]
        return TaskResult(metrics=pope_metrics(responses, labels), n_samples=len(kept),
                          intervals=ctx.intervals(len(kept), pope_statistic(*pope_marks(responses, labels))),
                          data_files={str(path): file_sha256(path)},
                          predictions=predictions,
                          details={"pope_version": detect_version(root), "questions": len(rows),
                                   "skipped_items": len(rows) - len(kept)})

    @classmethod
    def score_files(cls, inputs: ScoreInputs) -> dict[str, dict[str, float]]:
        rows = own_predictions(inputs.predictions, cls)
        if rows is not None:
            scored: dict[str, dict[str, float]] = {}
            for split in SPLITS:
                mine = [r for r in rows if r["split"] == split and "error" not in r]
                if mine:
                    scored[split] = pope_metrics([r["raw_output"] for r in mine], [r["target"] for r in mine])
            return scored
        return score_llava_answers(inputs)


def annotation_file(root: Path, split: str) -> Path:
    for folder in (root, root / "coco"):
        if (folder / ANNOTATION.format(split)).is_file():
            return folder / ANNOTATION.format(split)
    raise BenchError(f"{root / ANNOTATION.format(split)}: POPE annotation file not found; pass {HINT}")


def read_annotations(path: Path) -> list[dict]:
    rows = read_jsonl(path, "POPE annotation file", HINT, required=("question_id", "image", "text", "label"))
    for number, row in enumerate(rows, start=1):
        if row["label"] not in ("yes", "no"):
            raise BenchError(f"{path}: question {row['question_id']} (entry {number}) has label '{row['label']}'; "
                             "expected yes or no")
    return rows


def detect_version(root: Path) -> str:
    try:
        total = sum(len(read_jsonl(annotation_file(root, split), "POPE annotation file", HINT)) for split in SPLITS)
    except BenchError:
        return "unknown (not all three split files present)"
    return VERSIONS.get(total, f"unknown ({total} questions)")


def score_llava_answers(inputs: ScoreInputs) -> dict[str, dict[str, float]]:
    """LLaVA's ``answers.jsonl`` (question_id, text) with the POPE annotation folder, as ``eval_pope.py``:
    per split, the answers of that split (from ``--questions`` llava_pope_test.jsonl's ``category``, or
    by question id when the annotation files' ids are unique) paired in order with the annotation labels."""
    if inputs.annotations is None:
        raise BenchError("scoring LLaVA POPE answers needs --annotations DIR (the coco_pope_*.json folder)")
    answers = read_jsonl(inputs.predictions, "LLaVA answers file", "pass the answers.jsonl of model_vqa_loader",
                         required=("question_id", "text"))
    splits = {split: read_annotations(annotation_file(inputs.annotations, split)) for split in SPLITS
              if (inputs.annotations / ANNOTATION.format(split)).is_file()
              or (inputs.annotations / "coco" / ANNOTATION.format(split)).is_file()}
    if not splits:
        raise BenchError(f"{inputs.annotations}: no coco_pope_<split>.json files")
    if inputs.questions is not None:
        questions = read_jsonl(inputs.questions, "LLaVA question file", "pass llava_pope_test.jsonl",
                               required=("question_id", "category"))
        category = {q["question_id"]: q["category"] for q in questions}
        missing = [a["question_id"] for a in answers if a["question_id"] not in category]
        if missing:
            raise BenchError(f"{inputs.predictions}: question {missing[0]} is not in {inputs.questions}")
        split_of = [category[a["question_id"]] for a in answers]
    else:
        owner = {}
        for split, rows in splits.items():
            for row in rows:
                if row["question_id"] in owner:
                    raise BenchError(f"{inputs.annotations}: question id {row['question_id']} is in more than one split "
                                     "file; pass --questions llava_pope_test.jsonl to tell the splits apart")
                owner[row["question_id"]] = split
        missing = [a["question_id"] for a in answers if a["question_id"] not in owner]
        if missing:
            raise BenchError(f"{inputs.predictions}: question {missing[0]} has no annotation in {inputs.annotations}")
        split_of = [owner[a["question_id"]] for a in answers]
    scored = {}
    for split, rows in splits.items():
        texts = [a["text"] for a, s in zip(answers, split_of) if s == split]
        if texts:
            scored[split] = pope_metrics(texts, [row["label"] for row in rows])
    return scored
