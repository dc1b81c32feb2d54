"""Zero-shot image captioning: COCO Karpathy test, Flickr30K Karpathy test, NoCaps val (main paper).

Paper: InternVL (CVPR 2024) main text, captioning; supplementary Table N lists the datasets, Table P
the chat prompt. Protocol of InternVL's ``internvl_chat/eval/caption/evaluate_caption.py``: prompt
"Provide a one-sentence caption for the provided image.", greedy with at most 30 and at least 8 new
tokens, scored with pycocoevalcap (``internvl_bench.metrics.caption``: PTB tokenizer, BLEU-1..4, METEOR,
ROUGE-L, CIDEr; ``--spice`` adds SPICE, which downloads Stanford models). Metrics x100 under
pycocoevalcap's names. Intervals, over resampled images: CIDEr (pycocoevalcap's per-image CIDEr scores
with the document frequencies of the full set held fixed), ROUGE-L and BLEU-1..4; none for METEOR and
SPICE (see ``internvl_bench.metrics.caption``).

Layout under ``--data-root DIR`` (InternVL's caption ``data/`` folder)::

    DIR/coco/annotations/coco_karpathy_test.json      [{"image": "val2014/COCO_val2014_....jpg", ...}]
    DIR/coco/annotations/coco_karpathy_test_gt.json   COCO-format references (images, annotations)
    DIR/coco/val2014/                                 images (paths in the first file, under DIR/coco/)
    DIR/flickr30k/flickr30k_test_karpathy.json        COCO format: images [{id, file_name|image}], annotations
    DIR/flickr30k/<file_name>                         images
    DIR/nocaps/nocaps_val_4500_captions.json          COCO format (NoCaps val, 4,500 images)
    DIR/nocaps/images/<file_name>                     images

COCO image ids are read from the file names (``COCO_val2014_000000391895.jpg`` -> 391895), as InternVL does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from internvl_bench.chat_task import ChatTask, ScoreInputs, data_root, own_predictions
from internvl_bench.data import ImageFileSource, file_sha256, read_json
from internvl_bench.errors import BenchError, unknown_name_error
from internvl_bench.generation import GenerationOptions, GenerationRequest
from internvl_bench.metrics.caption import caption_scores, caption_statistic, evaluate_captions
from internvl_bench.runner import RunContext
from internvl_bench.task import TaskResult, register_task, split_list

VARIANTS = ("coco_karpathy_test", "flickr30k_karpathy_test", "nocaps_val")
PROMPT = "Provide a one-sentence caption for the provided image."
HINT = "InternVL's caption data folder with coco/, flickr30k/ and nocaps/ (see tasks/caption.py)"


@register_task
class Caption(ChatTask):
    """COCO / Flickr30K Karpathy test and NoCaps val captioning with pycocoevalcap (main-paper table)."""

    name = "caption"
    version = "1"
    table = "caption"
    prediction_keys = ("variant", "target")
    headline_metrics = ("CIDEr", "Bleu_4", "METEOR")

    @dataclass
    class Options:
        datasets: str = field(default=",".join(VARIANTS), metadata={"help": f"comma-separated, from {', '.join(VARIANTS)}"})
        prompt: str = field(default=PROMPT, metadata={"help": "the caption request"})
        max_new_tokens: int = field(default=30, metadata={"help": "greedy tokens per caption (InternVL: 30)"})
        min_new_tokens: int = field(default=8, metadata={"help": "end of sequence barred before (InternVL: 8)"})
        spice: bool = field(default=False, metadata={"help": "also SPICE (downloads Stanford models)"})
        skip_bad_items: bool = field(default=False, metadata={"help": "skip images that do not decode (counted)"})

    def variants(self) -> list[str]:
        chosen = split_list(self.options.datasets)
        for variant in chosen:
            if variant not in VARIANTS:
                raise unknown_name_error("caption dataset", variant, VARIANTS)
        return chosen

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        root = data_root(ctx, self.name, HINT)
        images, references, files = LOADERS[variant](root)
        ids = list(images)
        source = ImageFileSource([images[i] for i in ids])
        options = GenerationOptions(self.options.max_new_tokens, self.options.min_new_tokens)
        requests = [GenerationRequest(str(image_id), source, n, self.options.prompt, options)
                    for n, image_id in enumerate(ids)]
        answers = ctx.generate(requests, skip_errors=self.options.skip_bad_items, desc=variant)
        kept = {image_id: a.raw_output for image_id, a in zip(ids, answers) if a.error is None}
        evaluation = evaluate_captions({i: references[i] for i in kept}, kept, spice=self.options.spice)
        predictions = [a.prediction(parsed=a.raw_output if a.error is None else None, target=references[i],
                                    score=None, variant=variant, image_id=i) for i, a in zip(ids, answers)]
        lengths = [len(c.split()) for c in kept.values()]
        return TaskResult(metrics=evaluation.metrics, n_samples=len(kept), data_files=files, predictions=predictions,
                          intervals=ctx.intervals(len(kept), caption_statistic(evaluation)),
                          details={"skipped_items": len(ids) - len(kept),
                                   "mean_caption_words": sum(lengths) / max(len(lengths), 1)})

    @classmethod
    def score_files(cls, inputs: ScoreInputs) -> dict[str, dict[str, float]]:
        rows = own_predictions(inputs.predictions, cls)
        if rows is not None:
            scored = {}
            for variant in VARIANTS:
                mine = [r for r in rows if r["variant"] == variant and "error" not in r]
                if mine:
                    scored[variant] = caption_scores({r["id"]: r["target"] for r in mine},
                                                     {r["id"]: r["raw_output"] for r in mine})
            return scored
        if inputs.annotations is None:
            raise BenchError("scoring a COCO-format caption results file needs --annotations (the COCO-format references)")
        references = coco_references(inputs.annotations)
        results = read_json(inputs.predictions, "caption results", "pass [{image_id, caption}] as COCO's loadRes reads it")
        try:
            candidates = {r["image_id"]: r["caption"] for r in results}
        except (KeyError, TypeError):
            raise BenchError(f"{inputs.predictions}: expected a list of {{image_id, caption}}") from None
        name = inputs.annotations.name
        variant = next((v for v, stem in STEMS.items() if name.startswith(stem)), "captions")
        return {variant: caption_scores(references, candidates)}


def coco_references(path: Path) -> dict[int, list[str]]:
    """image id -> reference captions of a COCO-format annotation file."""
    data = read_json(path, "COCO-format caption annotations", HINT)
    try:
        references: dict[int, list[str]] = {image["id"]: [] for image in data["images"]}
        for annotation in data["annotations"]:
            references[annotation["image_id"]].append(annotation["caption"])
    except (KeyError, TypeError):
        raise BenchError(f"{path}: not COCO format (images [{{id}}], annotations [{{image_id, caption}}])") from None
    return references


def coco(root: Path):
    folder = root / "coco"
    listing, gt = folder / "annotations" / "coco_karpathy_test.json", folder / "annotations" / "coco_karpathy_test_gt.json"
    images = {}
    for number, item in enumerate(read_json(listing, "COCO Karpathy test list", HINT)):
        try:
            images[int(item["image"].split("_")[-1].replace(".jpg", ""))] = folder / item["image"]
        except (KeyError, TypeError, ValueError):
            raise BenchError(f"{listing}: entry {number} has no COCO image file name") from None
    return images, _references_for(images, gt), {str(listing): file_sha256(listing), str(gt): file_sha256(gt)}


def coco_format(root: Path, folder_name: str, file_name: str, image_dir: str):
    folder = root / folder_name
    path = folder / file_name
    data = read_json(path, f"{folder_name} caption annotations", HINT)
    images = {}
    for number, image in enumerate(data.get("images", [])):
        name = image.get("file_name") or image.get("image")
        if name is None or "id" not in image:
            raise BenchError(f"{path}: image entry {number} lacks id / file_name")
        images[image["id"]] = folder / image_dir / name
    return images, _references_for(images, path), {str(path): file_sha256(path)}


def _references_for(images: dict, path: Path) -> dict:
    references = coco_references(path)
    missing = [i for i in images if not references.get(i)]
    if missing:
        raise BenchError(f"{path}: image {missing[0]} has no reference caption")
    return {i: references[i] for i in images}


LOADERS = {
    "coco_karpathy_test": coco,
    "flickr30k_karpathy_test": lambda root: coco_format(root, "flickr30k", "flickr30k_test_karpathy.json", "."),
    "nocaps_val": lambda root: coco_format(root, "nocaps", "nocaps_val_4500_captions.json", "images"),
}
#: annotation file names -> variant, for ``score_files``
STEMS = {"coco_karpathy_test": "coco_karpathy_test", "flickr30k_karpathy_test": "flickr30k_test_karpathy",
         "nocaps_val": "nocaps_val"}
