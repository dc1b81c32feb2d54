"""MME: 14 yes/no subtasks of perception and cognition (paper Table F, the MME column = perception).

Paper: InternVL supplementary Table F; benchmark: MME (Fu et al., 2023). Reported number: the
perception total (sum of the 10 perception subtask scores, max 2000).

Layout under ``--data-root DIR`` (``--source release``, the release folder as it ships)::

    DIR/<subtask>/images/<name>.jpg + DIR/<subtask>/questions_answers_YN/<name>.txt
        for artwork, celebrity, landmark, posters, scene
    DIR/<subtask>/<name>.jpg|png + DIR/<subtask>/<name>.txt
        for existence, count, position, color, OCR, commonsense_reasoning, numerical_calculation,
        text_translation, code_reasoning

Each txt line is ``question<TAB>Yes|No``, two lines per image. ``--source parquet``: the Hugging Face
dataset ``lmms-lab/MME`` (columns question_id -- shared by an image's two questions --, image,
question, answer, category) as a local folder of its parquet files, read with ``datasets``.
``--source auto`` (default) picks whichever layout DIR holds and records it.

Protocol (LLaVA-1.5 / InternVL-Chat 1.0 eval: ``llava_mme.jsonl`` + the MME eval tool): the prompt is
the question verbatim (``--prompt question``); ``--prompt lmms-eval`` is lmms-eval's variant (question
stripped, " Please answer yes or no." removed, "\\nAnswer the question using a single word or phrase."
appended). Greedy, 128 new tokens. Scoring: ``internvl_bench.metrics.mme`` (the MME tool's rules).
Metrics: each subtask's score (``existence`` ... ``code_reasoning``, 100*acc + 100*acc+),
``<subtask>_acc``, ``<subtask>_acc_plus``, ``perception`` and ``cognition`` (sums over the subtasks
present), each with a bootstrap interval over the subtask's images (an image's two questions stay
together; a total sums the resampled subtask scores). The variant is ``all`` for the 14 subtasks,
``perception`` / ``cognition`` for exactly one group, ``custom`` otherwise.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from internvl_bench.chat_task import ChatTask, ScoreInputs, data_root, own_predictions
from internvl_bench.data import BytesImageSource, ImageFileSource, file_sha256, read_lines
from internvl_bench.errors import BenchError, unknown_name_error
from internvl_bench.generation import GenerationOptions, GenerationRequest
from internvl_bench.metrics.mme import (
    COGNITION,
    PERCEPTION,
    MMEItem,
    mme_marks,
    mme_scores,
    mme_statistic,
    parse_mme,
    scores_from_marks,
)
from internvl_bench.runner import RunContext
from internvl_bench.task import TaskResult, register_task, split_list

SUBTASKS = PERCEPTION + COGNITION
#: subtasks whose release folders keep images and question files apart
SPLIT_FOLDERS = ("artwork", "celebrity", "landmark", "posters", "scene")
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")
LMMS_EVAL_DROPPED = " Please answer yes or no."
LMMS_EVAL_SUFFIX = "\nAnswer the question using a single word or phrase."
HINT = "the MME_Benchmark_release_version folder or a local copy of lmms-lab/MME (see tasks/mme.py)"


@dataclass(frozen=True)
class Question:
    subtask: str
    image: str
    question: str
    label: str
    #: where the image comes from, for the generation request
    source_index: int


@register_task
class MME(ChatTask):
    """MME yes/no perception + cognition subtasks; Table F reports the perception total."""

    name = "mme"
    version = "1"
    table = "F"
    prediction_keys = ("subtask", "image", "target")
    headline_metrics = ("perception", "cognition")

    @dataclass
    class Options:
        subtasks: str = field(default=",".join(SUBTASKS), metadata={"help": "comma-separated MME subtasks"})
        source: str = field(default="auto", metadata={"help": "data layout", "choices": ["auto", "release", "parquet"]})
        prompt: str = field(default="question", metadata={
            "help": "question: verbatim (LLaVA-1.5 / InternVL-Chat 1.0); lmms-eval: its short-answer variant",
            "choices": ["question", "lmms-eval"]})
        max_new_tokens: int = field(default=128, metadata={"help": "greedy tokens per answer"})
        skip_bad_items: bool = field(default=False, metadata={"help": "skip images that do not decode (counted)"})

    def selected(self) -> list[str]:
        chosen = split_list(self.options.subtasks)
        for subtask in chosen:
            if subtask not in SUBTASKS:
                raise unknown_name_error("MME subtask", subtask, SUBTASKS)
        return [s for s in SUBTASKS if s in chosen]

    def variants(self) -> list[str]:
        chosen = self.selected()
        if chosen == list(SUBTASKS):
            return ["all"]
        for group, members in (("perception", PERCEPTION), ("cognition", COGNITION)):
            if chosen == list(members):
                return [group]
        return ["custom"]

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        root = data_root(ctx, self.name, HINT)
        source_kind = resolve_source(root, self.options.source)
        if source_kind == "release":
            questions, source, files = read_release(root, self.selected())
        else:
            questions, source, files = read_parquet(root, self.selected())
        options = GenerationOptions(max_new_tokens=self.options.max_new_tokens)
        requests = [GenerationRequest(f"{q.subtask}/{q.image}#{n % 2}", source, q.source_index,
                                      build_prompt(q.question, self.options.prompt), options)
                    for n, q in enumerate(questions)]
        answers = ctx.generate(requests, skip_errors=self.options.skip_bad_items, desc="MME")
        kept = [(q, a) for q, a in zip(questions, answers) if a.error is None]
        broken = {(q.subtask, q.image) for q, a in zip(questions, answers) if a.error is not None}
        kept = [(q, a) for q, a in kept if (q.subtask, q.image) not in broken]  # acc+ needs both questions
        marks = mme_marks([MMEItem(q.subtask, q.image, q.question, q.label, a.raw_output) for q, a in kept])
        predictions = [a.prediction(parsed=parse_mme(a.raw_output) if a.error is None else None, target=q.label,
                                    score=int(a.error is None and parse_mme(a.raw_output) == q.label.lower()),
                                    subtask=q.subtask, image=q.image, question=q.question)
                       for q, a in zip(questions, answers)]
        return TaskResult(metrics=scores_from_marks(marks), intervals=ctx.intervals(*mme_statistic(marks)),
                          n_samples=len(kept), data_files=files, predictions=predictions,
                          details={"source": source_kind, "skipped_items": len(questions) - len(kept),
                                   "images": len({(q.subtask, q.image) for q in questions})})

    @classmethod
    def score_files(cls, inputs: ScoreInputs) -> dict[str, dict[str, float]]:
        rows = own_predictions(inputs.predictions, cls)
        if rows is not None:
            items = [MMEItem(r["subtask"], r["image"], r.get("question", ""), r["target"], r["raw_output"])
                     for r in rows if "error" not in r]
        else:
            items = read_eval_tool_results(inputs.predictions)
        subtasks = [s for s in SUBTASKS if any(item.subtask == s for item in items)]
        return {variant_of(subtasks): mme_scores(items)}


def variant_of(subtasks: list[str]) -> str:
    return MME(MME.Options(subtasks=",".join(subtasks))).variants()[0]


def build_prompt(question: str, style: str) -> str:
    if style == "lmms-eval":
        return question.strip().replace(LMMS_EVAL_DROPPED, "") + LMMS_EVAL_SUFFIX
    return question


def resolve_source(root: Path, source: str) -> str:
    if source != "auto":
        return source
    if any((root / subtask).is_dir() for subtask in SUBTASKS):
        return "release"
    if any(root.rglob("*.parquet")):
        return "parquet"
    raise BenchError(f"{root}: neither MME subtask folders nor parquet files; pass {HINT}")


def read_release(root: Path, subtasks: list[str]) -> tuple[list[Question], ImageFileSource, dict[str, str]]:
    """Questions of the release folder, image by image (sorted names), two per image, in file order."""
    questions: list[Question] = []
    paths: list[Path] = []
    files: dict[str, str] = {}
    for subtask in subtasks:
        folder = root / subtask
        if not folder.is_dir():
            raise BenchError(f"{folder}: MME subtask folder missing; pass {HINT} or choose --subtasks")
        text_dir = folder / "questions_answers_YN" if subtask in SPLIT_FOLDERS else folder
        image_dir = folder / "images" if subtask in SPLIT_FOLDERS else folder
        texts = sorted(text_dir.glob("*.txt"))
        if not texts:
            raise BenchError(f"{text_dir}: no question files (*.txt); the MME release has one per image")
        for text in texts:
            image = _image_for(image_dir, text.stem)
            lines = [line for line in read_lines(text, "MME question file", HINT) if line.strip()]
            if len(lines) != 2:
                raise BenchError(f"{text}: {len(lines)} questions; MME has two per image (one line each)")
            for number, line in enumerate(lines, start=1):
                fields = line.strip().split("\t")  # as LLaVA's convert_answer_to_mme reads them
                if len(fields) != 2:
                    raise BenchError(f"{text}: line {number} has {len(fields) - 1} tabs; expected 'question<TAB>Yes|No'")
                question, label = fields
                if label not in ("Yes", "No"):
                    raise BenchError(f"{text}: line {number} has label '{label}'; expected Yes or No")
                questions.append(Question(subtask, image.name, question, label, len(paths)))
            paths.append(image)
            files[str(text)] = file_sha256(text)
    return questions, ImageFileSource(paths), files


def _image_for(folder: Path, stem: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    raise BenchError(f"{folder / stem}.jpg: image of {stem}.txt not found; re-extract the MME release")


def read_parquet(root: Path, subtasks: list[str]) -> tuple[list[Question], BytesImageSource, dict[str, str]]:
    """Questions of a local copy of lmms-lab/MME (its parquet files), grouped by image in file order."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BenchError("reading lmms-lab/MME needs the datasets package") from exc
    shards = sorted(str(p) for p in root.rglob("*.parquet"))
    if not shards:
        raise BenchError(f"{root}: no parquet files; download lmms-lab/MME (its data/*.parquet) there")
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as scratch:  # read into memory; leave no Arrow cache behind
        table = datasets.load_dataset("parquet", data_files=shards, split="train", cache_dir=scratch,
                                      keep_in_memory=True).cast_column("image", datasets.Image(decode=False))
    missing = [c for c in ("question_id", "image", "question", "answer", "category") if c not in table.column_names]
    if missing:
        raise BenchError(f"{root}: parquet files lack column '{missing[0]}'; not lmms-lab/MME")
    by_image: dict[str, list[dict]] = {}
    for number, row in enumerate(table):
        if row["category"] in subtasks:
            by_image.setdefault(row["question_id"], []).append({**row, "row": number})
    questions: list[Question] = []
    blobs: list[bytes] = []
    names: list[str] = []
    for image_id, rows in by_image.items():
        if len(rows) != 2:
            raise BenchError(f"{root}: image '{image_id}' has {len(rows)} questions in the parquet files; MME has two")
        for row in rows:
            if row["answer"] not in ("Yes", "No"):
                raise BenchError(f"{root}: row {row['row']} ({image_id}) has answer '{row['answer']}'; expected Yes or No")
            questions.append(Question(row["category"], image_id.split("/")[-1], row["question"], row["answer"],
                                      len(blobs)))
        blobs.append(rows[0]["image"]["bytes"])
        names.append(f"{root}:{image_id}")
    order = {s: i for i, s in enumerate(SUBTASKS)}
    questions.sort(key=lambda q: order[q.subtask])  # stable: image pairs stay consecutive
    return questions, BytesImageSource(blobs, names), {shard: file_sha256(shard) for shard in shards}


def read_eval_tool_results(folder: Path) -> list[MMEItem]:
    """The MME eval tool's results folder: ``<subtask>.txt`` with ``image<TAB>question<TAB>GT<TAB>response``."""
    if not folder.is_dir():
        raise BenchError(f"{folder}: expected the MME eval_tool results folder (<subtask>.txt files) or a "
                         "*.predictions.jsonl of this project")
    items: list[MMEItem] = []
    found = False
    for subtask in SUBTASKS:
        path = folder / f"{subtask}.txt"
        if not path.is_file():
            continue
        found = True
        for number, line in enumerate(read_lines(path, "MME results file", "write it with the MME tool's format"), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 4:
                raise BenchError(f"{path}: line {number} has {len(parts)} tab-separated fields; expected "
                                 "image, question, GT, response")
            image, question, label, response = parts
            items.append(MMEItem(subtask, image, question, label, response))
    if not found:
        raise BenchError(f"{folder}: no <subtask>.txt results files (e.g. existence.txt)")
    return items
