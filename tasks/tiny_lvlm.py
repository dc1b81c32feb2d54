"""Tiny LVLM-eHub, the updated ability-level set (paper Table E).

Paper: InternVL supplementary Table E; benchmark: Tiny LVLM-eHub (Shao et al., 2023), the updated
2,450-sample set (``updated_datasets.zip`` of the ``OpenGVLab/InternVL`` hub repo): Visual_Reasoning 550,
Visual_Perception 400, Visual_Knowledge_Acquisition 700, Visual_Commonsense 500, Object_Hallucination 300.
Reported numbers: the five category accuracies (x100) and their sum (max 500).

Layout under ``--data-root DIR`` (the unzipped ``updated_datasets``)::

    DIR/<Category>/dataset.json   a list of {"image_path", "question", "gt_answers"} (a list or a string)
    DIR/<Category>/<image_path>   images, relative to the category folder

Protocol (InternVL's ``internvl_chat/eval/tiny_lvlm``): prompt = question + " Answer the question using a
single word or phrase." (a space, as its ``evaluate_lvlm.py`` joins them), greedy with at most 30 and at
least 1 new tokens; an answer is right when a normalised ground truth occurs in it as a whole word
(``internvl_bench.metrics.tiny_lvlm``). Metrics ``VR``, ``VP``, ``VKA``, ``VC``, ``OH`` and ``overall``
(their sum, as ``calculate_score.py`` adds the category accuracies). One variant: ``updated``.

Intervals (every metric): the bootstrap resamples samples within each category (its size fixed, as in
the benchmark) and ``overall`` is the sum of the resampled category scores of the same resample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from internvl_bench.bootstrap import Statistic, mean_percent
from internvl_bench.chat_task import SHORT_ANSWER, ChatTask, ScoreInputs, data_root, own_predictions
from internvl_bench.data import ImageFileSource, file_sha256, read_json
from internvl_bench.errors import BenchError
from internvl_bench.generation import GenerationOptions, GenerationRequest
from internvl_bench.metrics.tiny_lvlm import tiny_lvlm_correct
from internvl_bench.runner import RunContext
from internvl_bench.task import TaskResult, register_task

#: category folder -> metric name, in Table E's order, with the updated set's sizes
CATEGORIES = {"Visual_Reasoning": "VR", "Visual_Perception": "VP", "Visual_Knowledge_Acquisition": "VKA",
              "Visual_Commonsense": "VC", "Object_Hallucination": "OH"}
UPDATED_SIZES = {"Visual_Reasoning": 550, "Visual_Perception": 400, "Visual_Knowledge_Acquisition": 700,
                 "Visual_Commonsense": 500, "Object_Hallucination": 300}
HINT = "the unzipped updated_datasets folder of OpenGVLab/InternVL (see tasks/tiny_lvlm.py)"


@register_task
class TinyLVLM(ChatTask):
    """Tiny LVLM-eHub updated set: five ability categories and their sum (Table E)."""

    name = "tiny_lvlm"
    version = "1"
    table = "E"
    prediction_keys = ("category", "target")
    headline_metrics = ("overall",)

    @dataclass
    class Options:
        prompt_suffix: str = field(default=" " + SHORT_ANSWER, metadata={"help": "appended to each question"})
        max_new_tokens: int = field(default=30, metadata={"help": "greedy tokens per answer (InternVL's script: 30)"})
        min_new_tokens: int = field(default=1, metadata={"help": "end of sequence barred before (InternVL: 1)"})
        skip_bad_items: bool = field(default=False, metadata={"help": "skip images that do not decode (counted)"})

    def variants(self) -> list[str]:
        return ["updated"]

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        root = data_root(ctx, self.name, HINT)
        samples, files = read_samples(root)
        source = ImageFileSource([s.image for s in samples])
        options = GenerationOptions(self.options.max_new_tokens, self.options.min_new_tokens)
        requests = [GenerationRequest(s.id, source, i, s.question + self.options.prompt_suffix, options)
                    for i, s in enumerate(samples)]
        answers = ctx.generate(requests, skip_errors=self.options.skip_bad_items, desc="Tiny LVLM")
        scored = [(s.category, tiny_lvlm_correct(a.raw_output, s.truths))
                  for s, a in zip(samples, answers) if a.error is None]
        predictions = [a.prediction(parsed=a.raw_output if a.error is None else None, target=s.truths,
                                    score=int(a.error is None and tiny_lvlm_correct(a.raw_output, s.truths)),
                                    category=s.category, image_path=str(s.image.relative_to(root)))
                       for s, a in zip(samples, answers)]
        counts = {category: sum(1 for s in samples if s.category == category) for category in CATEGORIES}
        return TaskResult(metrics=category_scores(scored), intervals=ctx.intervals(*category_statistic(scored)),
                          n_samples=len(scored), data_files=files,
                          predictions=predictions,
                          details={"samples_per_category": counts, "updated_set_sizes": counts == UPDATED_SIZES,
                                   "skipped_items": len(samples) - len(scored)})

    @classmethod
    def score_files(cls, inputs: ScoreInputs) -> dict[str, dict[str, float]]:
        rows = own_predictions(inputs.predictions, cls)
        if rows is not None:
            return {"updated": category_scores([(r["category"], tiny_lvlm_correct(r["raw_output"], r["target"]))
                                                for r in rows if "error" not in r])}
        results = read_json(inputs.predictions, "Tiny LVLM results file", "pass the json list evaluate_lvlm.py writes")
        if not isinstance(results, list):
            raise BenchError(f"{inputs.predictions}: expected a list of {{question, answer, gt_answers, image_path}}")
        scored = []
        for number, item in enumerate(results):
            try:
                category = item["image_path"].split("/")[-2]
                scored.append((category, tiny_lvlm_correct(item["answer"], item["gt_answers"])))
            except (KeyError, IndexError, TypeError, AttributeError):
                raise BenchError(f"{inputs.predictions}: entry {number} lacks answer / gt_answers / an image_path "
                                 "inside a category folder") from None
        return {"updated": category_scores(scored)}


@dataclass(frozen=True)
class Sample:
    id: str
    category: str
    image: Path
    question: str
    truths: str | list[str]


def read_samples(root: Path) -> tuple[list[Sample], dict[str, str]]:
    """The samples of every category folder, in file order."""
    samples, files = [], {}
    for category in CATEGORIES:
        path = root / category / "dataset.json"
        data = read_json(path, "Tiny LVLM dataset.json", HINT)
        if not isinstance(data, list):
            raise BenchError(f"{path}: expected a list of {{image_path, question, gt_answers}}")
        for number, item in enumerate(data):
            missing = [k for k in ("image_path", "question", "gt_answers") if not isinstance(item, dict) or k not in item]
            if missing:
                raise BenchError(f"{path}: entry {number} has no '{missing[0]}'")
            samples.append(Sample(f"{category}/{number}", category, root / category / item["image_path"],
                                  item["question"], item["gt_answers"]))
        files[str(path)] = file_sha256(path)
    return samples, files


def category_scores(scored: list[tuple[str, bool]]) -> dict[str, float]:
    """Accuracy x100 per category present, and ``overall``: their sum (only when all five are present)."""
    unknown = sorted({c for c, _ in scored} - set(CATEGORIES))
    if unknown:
        raise BenchError(f"Tiny LVLM category '{unknown[0]}' is not one of {', '.join(CATEGORIES)}")
    metrics = {}
    for category, metric in CATEGORIES.items():
        marks = [ok for c, ok in scored if c == category]
        if marks:
            metrics[metric] = 100.0 * sum(marks) / len(marks)
    if len(metrics) == len(CATEGORIES):
        metrics["overall"] = sum(metrics[m] for m in CATEGORIES.values())
    return metrics


def category_statistic(scored: list[tuple[str, bool]]) -> tuple[list[int], Statistic]:
    """The bootstrap of ``category_scores``: strata (samples per category present, in Table E's order)
    and the statistic (each category's accuracy on its resample; ``overall`` their sum)."""
    marks = {category: np.array([ok for c, ok in scored if c == category], dtype=bool) for category in CATEGORIES}
    present = [category for category in CATEGORIES if len(marks[category])]

    def statistic(*draws: np.ndarray) -> dict[str, np.ndarray]:
        metrics = {CATEGORIES[c]: mean_percent(marks[c], indices) for c, indices in zip(present, draws)}
        if len(metrics) == len(CATEGORIES):
            metrics["overall"] = sum(metrics[m] for m in CATEGORIES.values())
        return metrics

    return [len(marks[category]) for category in present], statistic
