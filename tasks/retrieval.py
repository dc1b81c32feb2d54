"""Image-text retrieval on Flickr30K, Flickr30K-CN, COCO and COCO-CN (paper Table D).

Paper: InternVL supplementary Table D (Flickr30K / Flickr30K-CN 1K test sets; fine-tuned checkpoints
run at 364 px, which is the checkpoint's own ``image_size``). Protocol and file names of the official
InternVL clip_benchmark fork (``datasets/builder.py``, ``datasets/flickr.py``).

Data, in any of three formats, under ``--data-root DIR`` (when one dataset is named, DIR may be that
dataset's folder itself). For each dataset the first of these that exists is read, and the format is
recorded in the result's ``details["format"]``:

1. ``fork_files``: the fork's annotation files (English and Chinese beside the same images)::

    DIR/flickr30k/flickr30k_test_karpathy.txt   header line, then ``name.jpg,caption`` (CLIP_benchmark)
    DIR/flickr30k/flickr30k_cn_test.txt         same format, Chinese (the fork's own file)
    DIR/flickr30k/Images/<name>.jpg
    DIR/coco/coco_test_karpathy.json            COCO format: images [{id, file_name}], annotations
    DIR/coco/val2014/<file_name>                [{image_id, caption}] (Karpathy 5K test)
    DIR/coco/coco-cn_test.json                  COCO format, file_name = ``train2014/...`` or ``val2014/...``
    DIR/coco/<file_name>                        (COCO-CN test: 1000 images, 1053 captions)

2. ``karpathy_json``: Karpathy's split files (English sets only), split ``test``::

    DIR/flickr30k/dataset_flickr30k.json        {"images": [{"filename", "split", "sentences": [{"raw"}]}]}
    DIR/flickr30k/Images/<filename>
    DIR/coco/dataset_coco.json                  ... plus "filepath" (val2014) and "cocoid" per image
    DIR/coco/<filepath>/<filename>

3. ``webdataset``: a CLIP_benchmark retrieval webdataset (``clip-benchmark/wds_flickr30k``,
   ``wds_mscoco_captions`` on the Hugging Face hub, or one made with ``clip_benchmark_export_wds
   --retrieval``)::

    DIR/<dataset>/dataset_type.txt              ``retrieval``
    DIR/<dataset>/test/nshards.txt, 0.tar ...   per sample an image and a ``.txt``: its captions, one a line

   where ``<dataset>`` is the variant name (``flickr30k``, ``coco``, ``flickr30k_cn``, ``coco_cn``).
   ``internvl-bench prepare retrieval --data-root DIR --download`` fetches the hub webdatasets of
   Flickr30K and COCO (the CN sets have none) into ``DIR/flickr30k`` and ``DIR/coco`` when no format
   is there, at the hub's current commit, which it writes to ``hub_revision.txt`` and every result
   records (a failed download makes the command fail). Without ``--download`` it reports what is found where.

Protocol: images in annotation order (Flickr files: first appearance; Karpathy's Flickr json: file
order; COCO: sorted image id, as ``CocoCaptions``; webdataset: shard then member order, as
CLIP_benchmark streams it), captions flattened image by image (a webdataset sample's ``.txt`` split
with ``str.splitlines``, as CLIP_benchmark does; Karpathy's ``raw`` sentences); ``pre_caption``
(lower-case, ``.!"()*#:;~`` -> space, collapse runs of whitespace, strip, at most 50 words) on by
default as in the fork -- CLIP_benchmark itself does not clean captions (``--no-pre-caption``); an
option recorded in every result; squash-resized images; float32 cosine scores on the run's device;
i2t and t2i R@1/5/10 and their mean (``internvl_bench.metrics.retrieval``). Image order only decides
exact score ties. The annotation file's sha256 is recorded in ``data_files`` (for a webdataset:
``dataset_type.txt``, ``nshards.txt`` and every shard, which hold the captions).

Intervals (every metric): the bootstrap resamples queries -- i2t recalls over the image queries (each
with all its captions as positives), t2i over the caption queries, ``mean_R`` over both drawn in the
same resample.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from internvl_bench.data import ImageFileSource, ImageSource, read_json, read_lines
from internvl_bench.errors import BenchError, unknown_name_error
from internvl_bench.metrics.retrieval import (
    recall_statistic,
    recalls_from_ranks,
    retrieval_ranks,
)
from internvl_bench.runner import RunContext
from internvl_bench.task import Task, TaskResult, register_task, split_list
from internvl_bench.webdataset import (
    HUB_ORGANISATION,
    WebDatasetFolder,
    download_from_hub,
)

#: characters ``pre_caption`` turns into spaces (the fork's ``datasets/tools.py``)
PRE_CAPTION_PUNCTUATION = re.compile(r'[.!"()*#:;~]')
#: the split every format is read at (Table D reports the test sets)
SPLIT = "test"


@dataclass(frozen=True)
class Layout:
    """Where one dataset's files are, relative to its folder, in each format that has it."""

    folder: str
    annotation: str
    reader: str  # "flickr" (name.jpg,caption lines) or "coco" (COCO-format json)
    image_dir: str
    #: Karpathy's split json (English sets), its image folder (joined with each image's ``filepath``)
    karpathy: str | None = None
    karpathy_image_dir: str = "."
    #: ``clip-benchmark/wds_<hub_name>`` on the Hugging Face hub
    hub_name: str | None = None


LAYOUTS = {
    "flickr30k": Layout("flickr30k", "flickr30k_test_karpathy.txt", "flickr", "Images",
                        "dataset_flickr30k.json", "Images", "flickr30k"),
    "flickr30k_cn": Layout("flickr30k", "flickr30k_cn_test.txt", "flickr", "Images"),
    "coco": Layout("coco", "coco_test_karpathy.json", "coco", "val2014", "dataset_coco.json", ".", "mscoco_captions"),
    "coco_cn": Layout("coco", "coco-cn_test.json", "coco", "."),
}


@dataclass
class CaptionedImages:
    """Image files, and for each caption the index of its image (what the file readers return)."""

    paths: list[Path]
    captions: list[str]
    text_to_image: list[int]


@dataclass
class RetrievalData:
    """What one variant evaluates, whichever format it came in."""

    source: ImageSource
    captions: list[str]
    text_to_image: list[int]
    #: files whose sha256 the result records
    files: list[Path]
    #: image files to check for (none for a webdataset, whose images are in the shards)
    image_files: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Located:
    """A dataset found on disk: its format, folder, and the file that identified it."""

    format: str
    folder: Path
    path: Path


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
        located = locate_dataset(ctx.config.data_root, variant, single=len(self.variants()) == 1)
        data = load_dataset(located, LAYOUTS[variant])
        captions = data.captions
        if self.options.pre_caption:
            captions = [pre_caption(c, self.options.max_words) for c in captions]
        images = ctx.encode_images(
            data.source, self.options.preprocess, max_workers=data.details.get("n_shards"), desc=f"images[{variant}]"
        )
        texts = ctx.encode_texts(captions, desc=f"captions[{variant}]")
        ranks = retrieval_ranks(images, texts, torch.tensor(data.text_to_image), device=ctx.config.device)
        return TaskResult(
            metrics=recalls_from_ranks(ranks),
            intervals=ctx.intervals(ranks.units, recall_statistic(ranks)),
            n_samples=len(data.source),
            data_files={str(path): ctx.file_sha256(path) for path in data.files},
            details={
                "n_images": len(data.source), "n_captions": len(captions), "data_dir": str(located.folder),
                "format": located.format, **data.details,
            },
        )

    @classmethod
    def prepare(cls, data_root: Path, download: bool) -> str:
        """One line per dataset: what was found where (after fetching the missing hub webdatasets).

        A dataset that is simply absent is reported, not an error (few users hold all four, and the CN
        sets have no hub copy); a download that failed is, once the report is printed, so that
        ``prepare --download && run`` stops there."""
        root = Path(data_root)
        report, failed = [], 0
        for variant, layout in LAYOUTS.items():
            located = find_dataset(root, variant, single=False)
            if located is None and download and layout.hub_name:
                try:
                    commit = download_from_hub(layout.hub_name, root / variant, split=SPLIT)
                    report.append(f"fetched {root / variant} from {HUB_ORGANISATION}/wds_{layout.hub_name} @ {commit}")
                except BenchError as exc:
                    report.append(f"failed  {exc}")
                    failed += 1
                located = find_dataset(root, variant, single=False)
            report.append(_check(root, variant, located))
        if failed:
            print("\n".join(report))
            raise BenchError(f"{root}: {failed} hub download(s) failed (listed above); check the network and re-run")
        return "\n".join(report)


def find_dataset(data_root: Path, variant: str, single: bool) -> Located | None:
    """The first format present for ``variant`` (see the module docstring), or None.

    The annotation-file formats are looked for in DATA_ROOT and DATA_ROOT/<folder> (their file names
    say which dataset they are); a webdataset in DATA_ROOT/<variant>, or DATA_ROOT itself when it is
    the only dataset named (a webdataset's folder does not say which dataset it holds).
    """
    for candidate in _candidates(Path(data_root), variant, single):
        if candidate.path.is_file():
            return candidate
    return None


def locate_dataset(data_root: Path | None, variant: str, single: bool) -> Located:
    """``find_dataset``, or a one-line error listing where each format was expected."""
    if data_root is None:
        raise BenchError("retrieval needs --data-root DIR (holding flickr30k/ and coco/, or one dataset's folder)")
    located = find_dataset(Path(data_root), variant, single)
    if located is None:
        raise BenchError(f"no {variant} data under {data_root}: {_expected(Path(data_root), variant)}")
    return located


def _candidates(root: Path, variant: str, single: bool) -> list[Located]:
    layout = LAYOUTS[variant]
    candidates = []
    for folder in dict.fromkeys([root, root / layout.folder]):
        candidates.append(Located("fork_files", folder, folder / layout.annotation))
        if layout.karpathy:
            candidates.append(Located("karpathy_json", folder, folder / layout.karpathy))
    for folder in dict.fromkeys(([root] if single else []) + [root / variant]):
        candidates.append(Located("webdataset", folder, folder / SPLIT / "nshards.txt"))
    return candidates


def _expected(root: Path, variant: str) -> str:
    layout = LAYOUTS[variant]
    wanted = [f"{root / layout.folder / layout.annotation} (the fork's file)"]
    if layout.karpathy:
        wanted.append(f"{root / layout.folder / layout.karpathy} (Karpathy's split)")
    wanted.append(f"a retrieval webdataset {root / variant / SPLIT / 'nshards.txt'}")
    fetch = (f"; `internvl-bench prepare retrieval --data-root {root} --download` fetches "
             f"{HUB_ORGANISATION}/wds_{layout.hub_name}") if layout.hub_name else " (the fork ships this file)"
    return "expected " + ", ".join(wanted[:-1]) + " or " + wanted[-1] + fetch


def load_dataset(located: Located, layout: Layout) -> RetrievalData:
    """Read a located dataset in its format."""
    if located.format == "webdataset":
        return load_webdataset(located.folder)
    if located.format == "karpathy_json":
        data = read_karpathy(located.path, located.folder / layout.karpathy_image_dir,
                             sort_by_id=layout.reader == "coco")
    else:
        data = READERS[layout.reader](located.path, located.folder / layout.image_dir)
    return RetrievalData(ImageFileSource(data.paths), data.captions, data.text_to_image, [located.path], data.paths)


def _check(root: Path, variant: str, located: Located | None) -> str:
    """``prepare``'s line for one dataset."""
    if located is None:
        return f"missing {variant}: {_expected(root, variant)}"
    try:
        data = load_dataset(located, LAYOUTS[variant])
    except BenchError as exc:
        return f"broken  {variant}: {exc}"
    absent = [path for path in data.image_files if not path.is_file()]
    if absent:
        return f"missing {variant}: {len(absent)} of {len(data.image_files)} images, e.g. {absent[0]}"
    revision = f", hub commit {data.details['hub_revision']}" if "hub_revision" in data.details else ""
    return (f"ok      {variant}: {located.format} {located.folder} ({len(data.source)} images, "
            f"{len(data.captions)} captions{revision})")


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


def read_karpathy(annotation: Path, image_dir: Path, sort_by_id: bool = False) -> CaptionedImages:
    """Karpathy's ``dataset_flickr30k.json`` / ``dataset_coco.json``: the ``test`` images, each at
    ``image_dir/<filepath>/<filename>`` with its ``raw`` sentences; in file order, or by ``cocoid``
    (``sort_by_id``, so that COCO's order is the fork's ``CocoCaptions`` order)."""
    data = read_json(annotation, "Karpathy split file", "place dataset_flickr30k.json / dataset_coco.json there")
    entries = data.get("images") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise BenchError(f"{annotation}: not Karpathy's split json (no 'images' list); re-download it")
    items = []
    for number, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("split") == SPLIT:
            items.append(_karpathy_image(annotation, number, entry, image_dir, sort_by_id))
    if not items:
        raise BenchError(f"{annotation}: no images with split '{SPLIT}'; is this Karpathy's full split file?")
    if sort_by_id:
        items.sort(key=lambda item: item[0])
    return _flatten(annotation, [(path, captions) for _, path, captions in items])


def _karpathy_image(
    annotation: Path, number: int, entry: dict, image_dir: Path, needs_id: bool
) -> tuple[int, Path, list[str]]:
    """(cocoid or 0, image path, raw captions) of one entry; a malformed entry names its position."""
    filename, filepath, sentences = entry.get("filename"), entry.get("filepath", ""), entry.get("sentences")
    image_id = entry.get("cocoid") if needs_id else 0
    if not isinstance(filename, str) or not isinstance(filepath, str) or not isinstance(sentences, list):
        raise BenchError(f"{annotation}: images[{number}] lacks a 'filename' string or a 'sentences' list; "
                         "re-download it")
    if needs_id and not isinstance(image_id, int):
        raise BenchError(f"{annotation}: images[{number}] ('{filename}') has no integer 'cocoid'; re-download it")
    captions = [s.get("raw") if isinstance(s, dict) else None for s in sentences]
    if not all(isinstance(c, str) for c in captions):
        raise BenchError(f"{annotation}: images[{number}] ('{filename}') has a sentence without a 'raw' string")
    return image_id, image_dir / filepath / filename, captions


def load_webdataset(folder: Path) -> RetrievalData:
    """A CLIP_benchmark retrieval webdataset: images from the shards, each sample's ``.txt`` lines its
    captions (``WdsIndex.captions``)."""
    wds = WebDatasetFolder(folder, SPLIT)
    kind = wds.dataset_type()
    if kind != "retrieval":
        raise BenchError(
            f"{wds.dataset_type_file}: a '{kind}' webdataset (missing file or not 'retrieval'); retrieval needs a "
            "caption set such as clip-benchmark/wds_flickr30k"
        )
    index = wds.index()
    if not index.samples:
        raise BenchError(f"{wds.split_dir}: the shards hold no samples; fetch the dataset again")
    captions, owners = flatten_captions(index.captions())
    if not captions:
        raise BenchError(f"{wds.split_dir}: no sample has a caption; fetch the dataset again")
    details: dict[str, Any] = {"n_shards": len(index.shards)}
    if wds.hub_revision():
        details["hub_revision"] = wds.hub_revision()
    files = [wds.dataset_type_file, wds.nshards_file, *index.shards]
    return RetrievalData(index.image_source(), captions, owners, files, details=details)


def flatten_captions(per_image: list[list[str]]) -> tuple[list[str], list[int]]:
    """All captions image by image, and the image index of each."""
    captions, owners = [], []
    for index, caps in enumerate(per_image):
        captions.extend(caps)
        owners.extend([index] * len(caps))
    return captions, owners


def _flatten(annotation: Path, items: list[tuple[Path, list[str]]]) -> CaptionedImages:
    captions, owners = flatten_captions([caps for _, caps in items])
    if not captions:
        raise BenchError(f"{annotation}: no captions found; the file is empty or truncated")
    return CaptionedImages([path for path, _ in items], captions, owners)


READERS: dict[str, Callable[[Path, Path], CaptionedImages]] = {"flickr": read_flickr, "coco": read_coco}
