"""Image-text retrieval on Flickr30K, Flickr30K-CN, COCO and COCO-CN (paper Table D).

Paper: InternVL supplementary Table D (Flickr30K / Flickr30K-CN 1K test sets; fine-tuned checkpoints
run at 364 px, which is the checkpoint's own ``image_size``). Protocol and file names of the official
InternVL clip_benchmark fork (``datasets/builder.py``, ``datasets/flickr.py``).

Layout under ``--data-root DIR`` (English and Chinese annotations sit beside the same images, as in
the fork; when one dataset is named, DIR may be its folder itself)::

    DIR/flickr30k/flickr30k_test_karpathy.txt   header line, then ``name.jpg,caption`` (CLIP_benchmark)
    DIR/flickr30k/flickr30k_cn_test.txt         same format, Chinese (the fork's own file)
    DIR/flickr30k/Images/<name>.jpg
    DIR/coco/coco_test_karpathy.json            COCO format: images [{id, file_name}], annotations
    DIR/coco/val2014/<file_name>                [{image_id, caption}] (Karpathy 5K test)
    DIR/coco/coco-cn_test.json                  COCO format, file_name = ``train2014/...`` or ``val2014/...``
    DIR/coco/<file_name>                        (COCO-CN test: 1000 images, 1053 captions)

Protocol: images in annotation order (Flickr: first appearance; COCO: sorted image id, as
``CocoCaptions``), captions flattened image by image; ``pre_caption`` (lower-case, ``.!"()*#:;~`` ->
space, collapse runs of whitespace, strip, at most 50 words) on by default as in the fork, an option
recorded in every result; squash-resized images; float32 cosine scores; i2t and t2i R@1/5/10 and
their mean. The annotation file's sha256 is recorded in ``data_files``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from internvl_bench.data import ImageFileSource, read_lines
from internvl_bench.errors import BenchError, unknown_name_error
from internvl_bench.metrics.retrieval import retrieval_recalls
from internvl_bench.runner import RunContext
from internvl_bench.task import Task, TaskResult, register_task, split_list

#: characters ``pre_caption`` turns into spaces (the fork's ``datasets/tools.py``)
PRE_CAPTION_PUNCTUATION = re.compile(r'[.!"()*#:;~]')


@dataclass(frozen=True)
class Layout:
    """Where one dataset's annotation file and images are, relative to its folder."""

    folder: str
    annotation: str
    reader: str  # "flickr" (name.jpg,caption lines) or "coco" (COCO-format json)
    image_dir: str


LAYOUTS = {
    "flickr30k": Layout("flickr30k", "flickr30k_test_karpathy.txt", "flickr", "Images"),
    "flickr30k_cn": Layout("flickr30k", "flickr30k_cn_test.txt", "flickr", "Images"),
    "coco": Layout("coco", "coco_test_karpathy.json", "coco", "val2014"),
    "coco_cn": Layout("coco", "coco-cn_test.json", "coco", "."),
}


@dataclass
class CaptionedImages:
    """Image files, and for each caption the index of its image."""

    paths: list[Path]
    captions: list[str]
    text_to_image: list[int]


@register_task
class Retrieval(Task):
    """Flickr30K(-CN) and COCO(-CN) image-text retrieval, i2t/t2i R@1/5/10 (Table D)."""

    name = "retrieval"
    version = "1"
    table = "D"

    @dataclass
    class Options:
        datasets: str = field(
            default="flickr30k,flickr30k_cn", metadata={"help": f"comma-separated datasets from {', '.join(LAYOUTS)}"}
        )
        pre_caption: bool = field(
            default=True, metadata={"help": "the fork's caption cleaning (lower-case, punctuation, 50 words)"}
        )
        max_words: int = field(default=50, metadata={"help": "pre_caption keeps at most this many words"})
        preprocess: str = field(
            default="squash", metadata={"help": "image preprocessing (squash: the fork's retrieval transform)", "choices": ["squash", "crop"]}
        )

    def variants(self) -> list[str]:
        names = split_list(self.options.datasets)
        for name in names:
            if name not in LAYOUTS:
                raise unknown_name_error("retrieval dataset", name, LAYOUTS)
        if not names:
            raise BenchError("--datasets is empty; name at least one of " + ", ".join(LAYOUTS))
        return names

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        layout = LAYOUTS[variant]
        folder = dataset_folder(ctx.config.data_root, layout)
        annotation = folder / layout.annotation
        data = READERS[layout.reader](annotation, folder / layout.image_dir)
        captions = data.captions
        if self.options.pre_caption:
            captions = [pre_caption(c, self.options.max_words) for c in captions]
        images = ctx.encode_images(ImageFileSource(data.paths), self.options.preprocess, desc=f"images[{variant}]")
        texts = ctx.encode_texts(captions, desc=f"captions[{variant}]")
        metrics = retrieval_recalls(images, texts, torch.tensor(data.text_to_image))
        return TaskResult(
            metrics=metrics,
            n_samples=len(data.paths),
            data_files={str(annotation): ctx.file_sha256(annotation)},
            details={"n_images": len(data.paths), "n_captions": len(captions), "data_dir": str(folder)},
        )


def dataset_folder(data_root: Path | None, layout: Layout) -> Path:
    """``DATA_ROOT/<folder>``, or DATA_ROOT itself when it holds the annotation file."""
    if data_root is None:
        raise BenchError("retrieval needs --data-root DIR (holding flickr30k/ and coco/, or one of them)")
    root = Path(data_root)
    if (root / layout.annotation).is_file():
        return root
    return root / layout.folder


def pre_caption(caption: str, max_words: int = 50) -> str:
    """The fork's caption cleaning: lower-case, punctuation to spaces, whitespace runs collapsed, word cap."""
    caption = PRE_CAPTION_PUNCTUATION.sub(" ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption).rstrip("\n").strip(" ")
    words = caption.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else caption


def read_flickr(annotation: Path, image_dir: Path) -> CaptionedImages:
    """CLIP_benchmark's Flickr file: a header, then ``name.jpg,caption`` (captions may contain commas)."""
    hint = "place the annotation file there (see the retrieval module docstring)"
    captions_of: dict[str, list[str]] = {}
    for number, line in enumerate(read_lines(annotation, "Flickr annotation file", hint)[1:], start=2):
        line = line.strip()
        if not line:
            continue
        name, separator, caption = line.partition(".jpg,")
        if not separator:
            raise BenchError(f"{annotation}:{number}: line has no '.jpg,' separating image and caption: {line[:60]!r}")
        captions_of.setdefault(name + ".jpg", []).append(caption)
    return _flatten(annotation, [(image_dir / name, caps) for name, caps in captions_of.items()])


def read_coco(annotation: Path, image_dir: Path) -> CaptionedImages:
    """COCO-format captions json; images sorted by id and captions in file order, as ``CocoCaptions``."""
    try:
        data = json.loads(annotation.read_text(encoding="utf-8"))
        files = {image["id"]: image["file_name"] for image in data["images"]}
        captions_of: dict[int, list[str]] = {image_id: [] for image_id in files}
        for entry in data["annotations"]:
            captions_of[entry["image_id"]].append(entry["caption"])
    except FileNotFoundError:
        raise BenchError(f"{annotation}: COCO annotation file not found; place it there (see the retrieval module docstring)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"{annotation}: not a COCO captions json ({exc.__class__.__name__}: {exc}); re-download it") from None
    return _flatten(annotation, [(image_dir / files[i], captions_of[i]) for i in sorted(files)])


def _flatten(annotation: Path, items: list[tuple[Path, list[str]]]) -> CaptionedImages:
    if not items:
        raise BenchError(f"{annotation}: no captions found; the file is empty or truncated")
    paths, captions, owners = [], [], []
    for index, (path, caps) in enumerate(items):
        paths.append(path)
        captions.extend(caps)
        owners.extend([index] * len(caps))
    return CaptionedImages(paths, captions, owners)


READERS: dict[str, Callable[[Path, Path], CaptionedImages]] = {"flickr": read_flickr, "coco": read_coco}
