"""Replicas of the contrastive benchmarks (Tables A-D) drawn from the synthetic world, in the real layouts.

Each writer takes the replica folder, a seeded ``random.Random`` and a size, and writes exactly the files
the task reads for the real dataset (see each task's docstring): XTD's caption files, CLIP_benchmark's
webdataset shards with ``classnames.txt`` / ``zeroshot_classification_templates.txt``, Flickr30K's
``name,caption`` files (English and Chinese), MSR-VTT's JSFusion csv with mp4 videos of moving scenes.
Each returns its chance levels, ``{(task, variant): {metric: percent}}`` (see ``chance``).
"""
from __future__ import annotations

import csv
import io
import random
import tarfile
from pathlib import Path

from PIL import Image

from internvl_bench.world import language
from internvl_bench.world.chance import retrieval_chance
from internvl_bench.world.questions import CLASSIFICATION
from internvl_bench.world.scenes import render, sample_scene, with_motion

#: XTD's Table A languages (the world has no Polish or Turkish)
XTD_LANGUAGES = language.LANGUAGES
IMAGE_SIZES = (96, 112, 128)
Chance = dict[tuple[str, str], dict[str, float]]


def save_image(image: Image.Image, path: Path) -> None:
    """JPEG (quality 95) or PNG by suffix; folders made as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        image.save(path, format="PNG")
    else:
        image.save(path, format="JPEG", quality=95)


def write_xtd(folder: Path, rng: random.Random, n: int) -> Chance:
    """``test_image_names.txt``, ``test_1kcaptions_{lang}.txt``, images in ``train2014/`` / ``val2014/``."""
    names, scenes = [], []
    for i in range(n):
        split = "val2014" if rng.random() < 0.3 else "train2014"
        name = f"COCO_{split}_{500000 + i:012d}.jpg"
        scene = sample_scene(rng)
        save_image(render(scene, rng.choice(IMAGE_SIZES)), folder / split / name)
        names.append(name)
        scenes.append(scene)
    (folder / "test_image_names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    for lang in XTD_LANGUAGES:
        lines = [language.describe(scene, lang) for scene in scenes]
        (folder / f"test_1kcaptions_{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {("xtd", lang): retrieval_chance(n, 1) for lang in XTD_LANGUAGES}


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_classification(folder: Path, rng: random.Random, n: int, dataset: str) -> Chance:
    """A CLIP_benchmark webdataset (``test/nshards.txt``, ``test/N.tar`` of ``.webp`` + ``.cls``) of a
    classification set, classes balanced, with its class names and templates."""
    chosen = CLASSIFICATION[dataset]
    labels = [i % len(chosen.classes) for i in range(n)]
    rng.shuffle(labels)
    shards = 2
    per_shard = -(-n // shards)
    (folder / "test").mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        with tarfile.open(folder / "test" / f"{shard}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for index in range(shard * per_shard, min(n, (shard + 1) * per_shard)):
                buffer = io.BytesIO()
                render(chosen.scene(labels[index], rng), rng.choice(IMAGE_SIZES)).save(buffer, format="WEBP",
                                                                                       lossless=True)
                _tar_member(tar, f"s{index:07d}.webp", buffer.getvalue())
                _tar_member(tar, f"s{index:07d}.cls", str(labels[index]).encode())
    (folder / "test" / "nshards.txt").write_text(str(shards), encoding="utf-8")
    (folder / "classnames.txt").write_text("\n".join(chosen.classes) + "\n", encoding="utf-8")
    (folder / "zeroshot_classification_templates.txt").write_text("\n".join(chosen.templates) + "\n", encoding="utf-8")
    classes = len(chosen.classes)
    return {("zeroshot_classification", dataset): {"acc1": 100 / classes, "acc5": min(1.0, 5 / classes) * 100,
                                                   "mean_per_class_recall": 100 / classes}}


def write_flickr(folder: Path, rng: random.Random, n: int) -> Chance:
    """``flickr30k/``: ``flickr30k_test_karpathy.txt`` / ``flickr30k_cn_test.txt`` (header, then
    ``name.jpg,caption``; two captions per image) and ``Images/``."""
    root = folder / "flickr30k"
    english, chinese = ["image,caption"], ["image,caption"]
    for i in range(n):
        name = f"{3000000 + i}.jpg"
        scene = sample_scene(rng)
        save_image(render(scene, rng.choice(IMAGE_SIZES)), root / "Images" / name)
        english += [f"{name},{language.describe(scene, 'en')}", f"{name},A picture of {language.describe(scene, 'en')}."]
        chinese += [f"{name},{language.describe(scene, 'zh')}", f"{name},一张图片：{language.describe(scene, 'zh')}。"]
    (root / "flickr30k_test_karpathy.txt").write_text("\n".join(english) + "\n", encoding="utf-8")
    (root / "flickr30k_cn_test.txt").write_text("\n".join(chinese) + "\n", encoding="utf-8")
    return {("retrieval", variant): retrieval_chance(n, 2) for variant in ("flickr30k", "flickr30k_cn")}


def write_msrvtt(folder: Path, rng: random.Random, n: int, frames: int = 24, size: int = 96) -> Chance:
    """``MSRVTT_JSFUSION_test.csv`` (key, vid_key, video_id, sentence) and ``videos/all/videoN.mp4``: each
    video a scene whose things drift sideways, H.264 yuv420p at 8 fps."""
    import av

    rows = []
    for i in range(n):
        video_id = f"video{7010 + i}"
        scene = with_motion(sample_scene(rng), rng)
        path = folder / "videos" / "all" / f"{video_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as container:
            # the same bytes on every run: one encoder thread (PyAV's thread count, not x264's option) and
            # no rate-control lookahead / macroblock tree, which otherwise vary from run to run
            stream = container.add_stream("libx264", rate=8, options={"x264-params": "rc-lookahead=0:mbtree=0"})
            stream.codec_context.thread_count = 1
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            for index in range(frames):
                frame = av.VideoFrame.from_image(render(scene, size, frame=index))
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        rows.append({"key": f"ret{i}", "vid_key": f"msr{7010 + i}", "video_id": video_id,
                     "sentence": language.describe(scene, "en")})
    with (folder / "MSRVTT_JSFUSION_test.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["key", "vid_key", "video_id", "sentence"])
        writer.writeheader()
        writer.writerows(rows)
    return {("msrvtt", variant): retrieval_chance(n, 1) for variant in ("1f", "8f")}
