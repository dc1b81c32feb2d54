"""Open-ended VQA: VQAv2, VizWiz and TextVQA (paper Table F: VQAv2 test-dev, VizWiz test, TextVQA val).

Paper: InternVL supplementary Table F, evaluated as LLaVA-1.5 does. VQAv2 test-dev and VizWiz test are
scored by the EvalAI servers: those variants write the submission file beside the record
(``<record stem>.submission.json``) and have no local score; the val variants are scored here.

Layout under ``--data-root DIR`` (LLaVA's ``playground/data/eval``)::

    DIR/vqav2/llava_vqav2_mscoco_test-dev2015.jsonl    vqav2_testdev: LLaVA's question file (question_id, image, text)
    DIR/vqav2/llava_vqav2_mscoco_test2015.jsonl        (optional) the full test list the submission is padded to
    DIR/vqav2/test2015/                                images
    DIR/vqav2/v2_OpenEnded_mscoco_val2014_questions.json, v2_mscoco_val2014_annotations.json, val2014/
                                                       vqav2_val: the official v2 files
    DIR/vizwiz/llava_test.jsonl, DIR/vizwiz/test/      vizwiz_test: LLaVA's question file
    DIR/vizwiz/val.json, DIR/vizwiz/val/               vizwiz_val: the VizWiz annotations (image, question, answers)
    DIR/textvqa/TextVQA_0.5.1_val.json, train_images/  textvqa_val: TextVQA 0.5.1
    DIR/textvqa/llava_textvqa_val_v051_ocr.jsonl       (with --textvqa-ocr-tokens) LLaVA's OCR-token prompts

Protocol: prompts as LLaVA-1.5's question files write them -- question + "\\nAnswer the question using a
single word or phrase."; VizWiz adds "\\nWhen the provided information is insufficient, respond with
'Unanswerable'." before it; TextVQA (``--textvqa-ocr-tokens``, LLaVA-1.5's default) puts
"\\nReference OCR token: ..." after the question, as LLaVA's file does (without it: the plain prompt).
Greedy, 128 new tokens. Local scores: VQA accuracy with ``--evaluator`` ``m4c`` (LLaVA's m4c evaluator,
the EvalAI answer processor on both sides; default), ``official`` (GT-Vision-Lab master) or
``official-py3`` (its Python-3 port) -- see ``internvl_bench/metrics/vqa.py``; metrics ``accuracy`` and
``accuracy_<answer type>`` (percent), each with a bootstrap interval over the scored questions (the
server-scored splits have neither). Submissions: answers through the EvalAI answer processor, as
LLaVA's ``convert_vqav2_for_submission.py`` / ``convert_vizwiz_for_submission.py`` do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from internvl_bench.chat_task import SHORT_ANSWER, ChatTask, ScoreInputs, data_root, own_predictions
from internvl_bench.data import ImageFileSource, file_sha256, read_json, read_jsonl
from internvl_bench.errors import BenchError, unknown_name_error
from internvl_bench.generation import GenerationOptions, GenerationRequest
from internvl_bench.metrics.vqa import EVALUATORS, evalai_answer, vqa_accuracy, vqa_metrics, vqa_statistic
from internvl_bench.runner import RunContext
from internvl_bench.task import TaskResult, register_task, split_list

VARIANTS = ("vqav2_val", "vqav2_testdev", "vizwiz_val", "vizwiz_test", "textvqa_val")
TABLE_F = "vqav2_testdev,vizwiz_test,textvqa_val"
UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."
HINT = "LLaVA's playground/data/eval folder with vqav2/, vizwiz/ and textvqa/ (see tasks/vqa.py)"


@dataclass
class Question:
    id: str
    image: Path
    prompt: str
    #: human answers (None for the server-scored test splits)
    answers: list[str] | None = None
    answer_type: str | None = None
    #: what the submission file names the question by
    submission_key: dict[str, Any] = field(default_factory=dict)


@register_task
class VQA(ChatTask):
    """VQAv2, VizWiz and TextVQA open-ended VQA; val splits scored locally, test splits exported (Table F)."""

    name = "vqa"
    version = "1"
    table = "F"
    prediction_keys = ("variant",)
    headline_metrics = ("accuracy",)

    @dataclass
    class Options:
        variants: str = field(default=TABLE_F, metadata={"help": f"comma-separated, from {', '.join(VARIANTS)}"})
        evaluator: str = field(default="m4c", metadata={"help": "local VQA scorer", "choices": list(EVALUATORS)})
        textvqa_ocr_tokens: bool = field(default=True, metadata={
            "help": "TextVQA prompts with 'Reference OCR token:' (LLaVA-1.5's question file)"})
        max_new_tokens: int = field(default=128, metadata={"help": "greedy tokens per answer"})
        skip_bad_items: bool = field(default=False, metadata={"help": "skip images that do not decode (counted)"})

    def variants(self) -> list[str]:
        chosen = split_list(self.options.variants)
        for variant in chosen:
            if variant not in VARIANTS:
                raise unknown_name_error("VQA variant", variant, VARIANTS)
        return chosen

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        root = data_root(ctx, self.name, HINT)
        questions, files, padding = LOADERS[variant](root, self.options)
        source = ImageFileSource([q.image for q in questions])
        options = GenerationOptions(max_new_tokens=self.options.max_new_tokens)
        requests = [GenerationRequest(q.id, source, i, q.prompt, options) for i, q in enumerate(questions)]
        answers = ctx.generate(requests, skip_errors=self.options.skip_bad_items, desc=variant)
        kept = [(q, a) for q, a in zip(questions, answers) if a.error is None]
        details: dict[str, Any] = {"skipped_items": len(questions) - len(kept), "questions": len(questions)}
        artifacts = {}
        intervals: dict[str, tuple[float, float]] = {}
        if questions[0].answers is None:  # a server-scored split: export, no local score
            metrics: dict[str, float] = {}
            artifacts["submission.json"] = submission(variant, kept, padding)
            details["submission"] = "EvalAI submission file beside the record; score it on the EvalAI server"
        else:
            types = [q.answer_type for q, _ in kept] if kept[0][0].answer_type else None
            metrics = vqa_metrics([a.raw_output for _, a in kept], [q.answers for q, _ in kept], types,
                                  self.options.evaluator)
            scores = [vqa_accuracy(a.raw_output, q.answers, self.options.evaluator) for q, a in kept]
            intervals = ctx.intervals(len(kept), vqa_statistic(scores, types))
        predictions = [a.prediction(parsed=evalai_answer(a.raw_output) if a.error is None else None, target=q.answers,
                                    score=(vqa_accuracy(a.raw_output, q.answers, self.options.evaluator)
                                           if q.answers is not None and a.error is None else None),
                                    variant=variant, answer_type=q.answer_type, **q.submission_key)
                       for q, a in zip(questions, answers)]
        return TaskResult(metrics=metrics, intervals=intervals, n_samples=len(kept), data_files=files,
                          predictions=predictions, details=details, artifacts=artifacts)

    @classmethod
    def score_files(cls, inputs: ScoreInputs) -> dict[str, dict[str, float]]:
        evaluator = inputs.evaluator or "m4c"
        rows = own_predictions(inputs.predictions, cls)
        if rows is not None:
            scored = {}
            for variant in VARIANTS:
                mine = [r for r in rows if r["variant"] == variant and "error" not in r and r.get("target")]
                if mine:
                    types = [r.get("answer_type") for r in mine]
                    scored[variant] = vqa_metrics([r["raw_output"] for r in mine], [r["target"] for r in mine],
                                                  types if all(types) else None, evaluator)
            if not scored:
                raise BenchError(f"{inputs.predictions}: no locally scorable answers (test splits are scored by EvalAI)")
            return scored
        return {"vqav2_val": score_official_results(inputs, evaluator)}


# -- the variants' files -------------------------------------------------------------------------------
def _short(question: str) -> str:
    return f"{question}\n{SHORT_ANSWER}"


def load_llava_file(path: Path, images: Path) -> list[Question]:
    rows = read_jsonl(path, "LLaVA question file", HINT, required=("question_id", "image", "text"))
    return [Question(str(r["question_id"]), images / r["image"], r["text"],
                     submission_key={"question_id": r["question_id"], "image": r["image"]}) for r in rows]


def vqav2_testdev(root: Path, options) -> tuple[list[Question], dict[str, str], list[Any]]:
    path = root / "vqav2" / "llava_vqav2_mscoco_test-dev2015.jsonl"
    questions = load_llava_file(path, root / "vqav2" / "test2015")
    files = {str(path): file_sha256(path)}
    full = root / "vqav2" / "llava_vqav2_mscoco_test2015.jsonl"
    padding: list[Any] = []
    if full.is_file():  # EvalAI wants every test question: the rest get '' as LLaVA's converter does
        padding = [r["question_id"] for r in read_jsonl(full, "LLaVA VQAv2 test file", HINT, required=("question_id",))]
        files[str(full)] = file_sha256(full)
    return questions, files, padding


def vqav2_val(root: Path, options) -> tuple[list[Question], dict[str, str], list[Any]]:
    folder = root / "vqav2"
    q_path, a_path = folder / "v2_OpenEnded_mscoco_val2014_questions.json", folder / "v2_mscoco_val2014_annotations.json"
    questions = read_json(q_path, "VQAv2 questions", HINT).get("questions", [])
    annotations = {a["question_id"]: a for a in read_json(a_path, "VQAv2 annotations", HINT).get("annotations", [])}
    loaded = []
    for q in questions:
        if q["question_id"] not in annotations:
            raise BenchError(f"{a_path}: question {q['question_id']} of {q_path.name} has no annotation")
        ann = annotations[q["question_id"]]
        loaded.append(Question(str(q["question_id"]), folder / "val2014" / f"COCO_val2014_{q['image_id']:012d}.jpg",
                               _short(q["question"]), [a["answer"] for a in ann["answers"]], ann.get("answer_type"),
                               {"question_id": q["question_id"]}))
    return loaded, {str(q_path): file_sha256(q_path), str(a_path): file_sha256(a_path)}, []


def vizwiz_test(root: Path, options) -> tuple[list[Question], dict[str, str], list[Any]]:
    path = root / "vizwiz" / "llava_test.jsonl"
    return load_llava_file(path, root / "vizwiz" / "test"), {str(path): file_sha256(path)}, []


def vizwiz_val(root: Path, options) -> tuple[list[Question], dict[str, str], list[Any]]:
    path = root / "vizwiz" / "val.json"
    data = read_json(path, "VizWiz val annotations", HINT)
    loaded = []
    for number, item in enumerate(data):
        try:
            answers = [a["answer"] for a in item["answers"]]
            loaded.append(Question(item["image"], root / "vizwiz" / "val" / item["image"],
                                   f"{item['question']}\n{UNANSWERABLE}\n{SHORT_ANSWER}", answers,
                                   item.get("answer_type"), {"image": item["image"]}))
        except (KeyError, TypeError):
            raise BenchError(f"{path}: entry {number} lacks image / question / answers") from None
    return loaded, {str(path): file_sha256(path)}, []


def textvqa_val(root: Path, options) -> tuple[list[Question], dict[str, str], list[Any]]:
    folder = root / "textvqa"
    path = folder / "TextVQA_0.5.1_val.json"
    data = read_json(path, "TextVQA annotations", HINT)["data"]
    files = {str(path): file_sha256(path)}
    if not options.textvqa_ocr_tokens:
        return [Question(str(d["question_id"]), folder / "train_images" / f"{d['image_id']}.jpg", _short(d["question"]),
                         d["answers"], None, {"question_id": d["question_id"]}) for d in data], files, []
    llava = folder / "llava_textvqa_val_v051_ocr.jsonl"
    files[str(llava)] = file_sha256(llava)
    by_key = {(d["image_id"], d["question"].lower()): d for d in data}
    loaded = []
    for number, row in enumerate(read_jsonl(llava, "LLaVA TextVQA question file", HINT,
                                            required=("question_id", "image", "text")), start=1):
        key = (row["question_id"], textvqa_question(row["text"], llava, number))  # LLaVA's question_id = image id
        if key not in by_key:
            raise BenchError(f"{llava}: line {number} matches no question of {path.name}")
        ann = by_key[key]
        loaded.append(Question(str(ann["question_id"]), folder / "train_images" / row["image"], row["text"],
                               ann["answers"], None, {"question_id": ann["question_id"]}))
    return loaded, files, []


def textvqa_question(prompt: str, path: Path, line: int) -> str:
    """The question inside one of LLaVA's TextVQA prompts, lower-cased (``eval_textvqa.prompt_processor``)."""
    lines = prompt.split("\n")
    if prompt.startswith("OCR tokens: "):
        match = re.search(r"Question: (.*?) Short answer:", prompt, re.DOTALL)
        if match:
            return match.group(1).lower()
    elif "Reference OCR token: " in prompt and len(lines) == 3:
        return (lines[1] if prompt.startswith("Reference OCR token:") else lines[0]).lower()
    elif len(lines) == 2:
        return lines[0].lower()
    raise BenchError(f"{path}: line {line}: prompt is not in LLaVA's TextVQA format")


LOADERS = {"vqav2_val": vqav2_val, "vqav2_testdev": vqav2_testdev, "vizwiz_val": vizwiz_val,
           "vizwiz_test": vizwiz_test, "textvqa_val": textvqa_val}


def submission(variant: str, kept: list, padding: list[Any]) -> list[dict[str, Any]]:
    """The EvalAI upload: answers through the EvalAI answer processor, keyed as the server expects."""
    if variant == "vizwiz_test":
        return [{"image": q.submission_key["image"], "answer": evalai_answer(a.raw_output)} for q, a in kept]
    answered = {q.submission_key["question_id"]: evalai_answer(a.raw_output) for q, a in kept}
    order = padding or list(answered)
    return [{"question_id": qid, "answer": answered.get(qid, "")} for qid in order]


def score_official_results(inputs: ScoreInputs, evaluator: str) -> dict[str, float]:
    """The VQA results json ([{question_id, answer}]) with the v2 annotation and question files."""
    if inputs.annotations is None or inputs.questions is None:
        raise BenchError("scoring a VQA results json needs --annotations (v2 annotations) and --questions (v2 questions)")
    results = read_json(inputs.predictions, "VQA results file", "pass [{question_id, answer}] as the VQA tool reads it")
    annotations = {a["question_id"]: a for a in read_json(inputs.annotations, "VQA annotations", HINT)["annotations"]}
    questions = {q["question_id"] for q in read_json(inputs.questions, "VQA questions", HINT)["questions"]}
    preds, truths, types = [], [], []
    for number, result in enumerate(results):
        qid = result.get("question_id")
        if qid not in annotations or qid not in questions:
            raise BenchError(f"{inputs.predictions}: entry {number}: question {qid} has no annotation / question")
        preds.append(result["answer"])
        truths.append([a["answer"] for a in annotations[qid]["answers"]])
        types.append(annotations[qid]["answer_type"])
    return vqa_metrics(preds, truths, types, evaluator)
