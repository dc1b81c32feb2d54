"""XTD10 zero-shot multilingual image-text retrieval (paper Table A).

Paper: InternVL supplementary Table A; dataset: XTD10 (Aggarwal & Kale 2020), 1,000 COCO images with
one caption per language. Reported number: image->text R@10 per language and their mean.

Layout under ``--data-root DIR``::

    DIR/test_image_names.txt            1000 COCO file names, one per line
    DIR/test_1kcaptions_{lang}.txt      line i describes image i (en es fr zh it ko ru jp pl tr)
    DIR/train2014/COCO_train2014_*.jpg  images; a name containing 'val' is looked up in val2014/,
    DIR/val2014/COCO_val2014_*.jpg      any other in train2014/ (the official fork's rule)

Protocol (official InternVL clip_benchmark fork): captions are used as written (no preprocessing;
the model's own text convention applies), images are squash-resized (the fork's retrieval
transform), scores are float32 cosine similarities on the run's device.

Intervals (every metric): the bootstrap resamples queries -- i2t recalls over the image queries, t2i
over the caption queries, ``mean_R`` over both drawn in the same resample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from internvl_bench.data import ImageFileSource, file_sha256, read_lines
from internvl_bench.download import download_and_unzip, download_file
from internvl_bench.errors import BenchError, unknown_name_error
from internvl_bench.metrics.retrieval import (
    recall_statistic,
    recalls_from_ranks,
    retrieval_ranks,
)
from internvl_bench.runner import RunContext
from internvl_bench.task import Task, TaskResult, register_task, split_list

LANGUAGES = ("en", "es", "fr", "zh", "it", "ko", "ru", "jp", "pl", "tr")
TABLE_A_LANGUAGES = "en,es,fr,zh,it,ko,ru,jp"
IMAGE_LIST = "test_image_names.txt"
CAPTION_FILE = "test_1kcaptions_{}.txt"
#: the XTD10 repository at a pinned commit, and the sha256 of each file there
SOURCE_REPO = (
    "https://raw.githubusercontent.com/adobe-research/Cross-lingual-Test-Dataset-XTD10/"
    "d77ff16148468c84287f3efcbf602a015c5e4954"
)
KNOWN_SHA256 = {
    "test_image_names.txt": "504a472dfd40e44f2d0facd6320b9dc1c7d64c58aac9840f0b1da4807cb3a30a",
    "test_1kcaptions_en.txt": "ac5531b6842c1d469fba80aa6f44e2af054e84a41da8f9eaf01d831e943039b9",
    "test_1kcaptions_es.txt": "cacc43d4e7af56b02033865531ea70494049f1d0dd3ea89ff2a217e7e190c4f2",
    "test_1kcaptions_fr.txt": "84aa16954706a0f654b59788ffb6a3bcb1b1d9d12dc9d7a3de26730bc04664b5",
    "test_1kcaptions_zh.txt": "17229ff02ac85dd2d165f8316515a24fbe5100dbf486c22aaa12105dfb3353bf",
    "test_1kcaptions_it.txt": "b4095d3550eb1accf8c9c78314b4bef45847a3929b5c5fe15a1264ea31dec7cc",
    "test_1kcaptions_ko.txt": "92d35e082cd081724560c9abdb2b45753ceb52aaabddb9a0f79dc04967a36800",
    "test_1kcaptions_ru.txt": "7d93631ff85b53592091b3cbfd9ca963397e77038fb3d0fdd9374b1b02ae98a3",
    "test_1kcaptions_jp.txt": "20908aa5763ee7b1bacc1f29aa507532d3dc6a7e6a8c43e6acd2ec72d1e80c10",
    "test_1kcaptions_pl.txt": "b6af6b7941f44e902b50736dcf9a7221af28e755a259511652c599cf6ae89c78",
    "test_1kcaptions_tr.txt": "147e9763dcb6e6ebba0b98fc799f0145c7d90005fa03ca8ec5a7cf29a04dd136",
}
#: where each caption file lives in the XTD10 repository (jp and fr come from STAIR and MIC)
CAPTION_SUBDIR = {"jp": "STAIR", "fr": "MIC"}
COCO_ZIPS = "http://images.cocodataset.org/zips/{}.zip"


@register_task
class XTD(Task):
    """XTD10 multilingual image-text retrieval, i2t R@10 per language (Table A)."""

    name = "xtd"
    version = "1"
    table = "A"

    @dataclass
    class Options:
        languages: str = field(
            default=TABLE_A_LANGUAGES, metadata={"help": f"comma-separated languages from {', '.join(LANGUAGES)}"}
        )
        preprocess: str = field(
            default="squash", metadata={"help": "image preprocessing (squash: the fork's retrieval transform)", "choices": ["squash", "crop"]}
        )

    def variants(self) -> list[str]:
        languages = split_list(self.options.languages)
        for language in languages:
            if language not in LANGUAGES:
                raise unknown_name_error("XTD language", language, LANGUAGES)
        return languages

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        root = _data_root(ctx)
        image_list = root / IMAGE_LIST
        caption_file = root / CAPTION_FILE.format(variant)
        names = _non_empty(read_lines(image_list, "XTD image list", _fetch_hint()), image_list)
        # stripped, as the official reader does (a few it/tr lines carry stray spaces)
        captions = [c.strip() for c in read_lines(caption_file, f"XTD {variant} captions", _fetch_hint())]
        if len(captions) != len(names):
            raise BenchError(
                f"{caption_file}: {len(captions)} captions for {len(names)} images in {image_list}; "
                "line i must describe image i -- re-download the file"
            )
        images = ctx.encode_images(ImageFileSource([image_path(root, n) for n in names]), self.options.preprocess)
        texts = ctx.encode_texts(captions, desc=f"captions[{variant}]")
        ranks = retrieval_ranks(images, texts, torch.arange(len(captions)), device=ctx.config.device)
        return TaskResult(
            metrics=recalls_from_ranks(ranks),
            intervals=ctx.intervals(ranks.units, recall_statistic(ranks)),
            n_samples=len(names),
            data_files={str(image_list): file_sha256(image_list), str(caption_file): file_sha256(caption_file)},
        )

    @classmethod
    def prepare(cls, data_root: Path, download: bool) -> str:
        return prepare_xtd(Path(data_root), download)


def image_path(root: Path, name: str) -> Path:
    """The official rule: names containing 'val' live in val2014/, all others in train2014/."""
    return root / ("val2014" if "val" in name else "train2014") / name


def _data_root(ctx: RunContext) -> Path:
    if ctx.config.data_root is None:
        raise BenchError("xtd needs --data-root DIR (the XTD10 folder); run 'internvl-bench prepare xtd --data-root DIR'")
    return Path(ctx.config.data_root)


def _non_empty(names: list[str], path: Path) -> list[str]:
    names = [n.strip() for n in names]
    if not names or any(not n for n in names):
        raise BenchError(f"{path}: empty line or empty file; it must list one COCO file name per line")
    return names


def _fetch_hint() -> str:
    return "run 'internvl-bench prepare xtd --data-root DIR --download' on a machine with internet"


def xtd_files(language: str) -> tuple[str, str]:
    """(local file name, download address) of one language's caption file."""
    sub = CAPTION_SUBDIR.get(language, "XTD10")
    name = CAPTION_FILE.format(language)
    return name, f"{SOURCE_REPO}/{sub}/{name}"


def prepare_xtd(root: Path, download: bool) -> str:
    """Check the layout and checksums under ``root`` (printing one line per file); with ``download``,
    fetch what is missing first. Raises ``BenchError`` when anything is missing or changed."""
    wanted = [(IMAGE_LIST, f"{SOURCE_REPO}/XTD10/{IMAGE_LIST}")] + [xtd_files(lang) for lang in LANGUAGES]
    if download:
        root.mkdir(parents=True, exist_ok=True)
        for name, url in wanted:
            if not (root / name).is_file():
                download_file(url, root / name)
    report, missing = [], []
    for name, _ in wanted:
        path = root / name
        if not path.is_file():
            missing.append(f"missing {path}")
        elif file_sha256(path) != KNOWN_SHA256[name]:
            missing.append(f"changed {path}: sha256 {file_sha256(path)[:16]}... is not the pinned release's; re-download it")
        else:
            report.append(f"ok      {path}  (sha256 matches the pinned XTD10 release)")
    if (root / IMAGE_LIST).is_file():
        names = _non_empty(read_lines(root / IMAGE_LIST, "XTD image list", _fetch_hint()), root / IMAGE_LIST)
        absent = [n for n in names if not image_path(root, n).is_file()]
        if absent and download:
            for split in sorted({"val2014" if "val" in n else "train2014" for n in absent}):
                download_and_unzip(COCO_ZIPS.format(split), root)
            absent = [n for n in names if not image_path(root, n).is_file()]
        if absent:
            missing.append(f"missing {len(absent)} of {len(names)} COCO images, e.g. {image_path(root, absent[0])}")
        else:
            report.append(f"ok      {len(names)} COCO images under {root}/train2014 and {root}/val2014")
    print("\n".join(report + missing))
    if missing:
        raise BenchError(
            f"{root}: XTD data incomplete ({len(missing)} problem(s) listed above); place the files from the "
            "XTD10 repository and COCO 2014, or re-run with --download on a machine with internet"
        )
    return f"{root}: XTD data complete and verified"
