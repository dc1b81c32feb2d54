"""Small synthetic datasets in the real on-disk layouts, for the tests (``make demo`` uses ``internvl_bench.world``).

The images are coloured shapes drawn with PIL and the captions describe them, so the files exercise
every reader exactly as real data would (names, folders, encodings); the numbers a model gets on
them mean nothing.
"""
from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220), "yellow": (240, 220, 40)}
SHAPES = ("circle", "square", "triangle")


def draw_shape(colour: str, shape: str, size: int = 96, seed: int = 0) -> Image.Image:
    """A ``colour`` ``shape`` on a random light background."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size + rng.randint(0, 40), size), tuple(rng.randint(180, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    box = (size // 5, size // 5, size * 4 // 5, size * 4 // 5)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)
    return image


def write_xtd_sample(root: Path, n_images: int = 24, languages: tuple[str, ...] = ("en", "es", "fr", "zh", "it", "ko", "ru", "jp")) -> Path:
    """XTD10 layout: test_image_names.txt, test_1kcaptions_{lang}.txt, train2014/ and val2014/ JPEGs."""
    root = Path(root)
    names, descriptions = [], []
    for i in range(n_images):
        colour = list(COLOURS)[i % len(COLOURS)]
        shape = SHAPES[(i // len(COLOURS)) % len(SHAPES)]
        split = "val2014" if i % 3 == 0 else "train2014"
        name = f"COCO_{split}_{100000 + i:012d}.jpg"
        (root / split).mkdir(parents=True, exist_ok=True)
        draw_shape(colour, shape, seed=i).save(root / split / name, quality=90)
        names.append(name)
        descriptions.append(f"a {colour} {shape} number {i}")
    (root / "test_image_names.txt").write_text("\n".join(names), encoding="utf-8")
    for language in languages:
        lines = [f"{text} ({language})" for text in descriptions]
        (root / f"test_1kcaptions_{language}.txt").write_text("\n".join(lines), encoding="utf-8")
    return root
