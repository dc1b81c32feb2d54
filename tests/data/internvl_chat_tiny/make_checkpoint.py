"""Regenerate the committed tiny chat checkpoint pair and the test images (our code only; see README.md).

    .venv/bin/python tests/data/internvl_chat_tiny/make_checkpoint.py
"""
from __future__ import annotations

import json
from pathlib import Path

from internvl_bench.samples import draw_shape
from model_zoo.internvl_chat.tiny import write_tiny_chat
from model_zoo.internvl_chat_models import TINY_SEED

HERE = Path(__file__).parent
#: (file, colour, shape, width, height): landscape, portrait, square, tiny, extreme aspect
IMAGES = [("landscape.png", "red", "circle", 120, 80), ("portrait.png", "blue", "square", 50, 90),
          ("square.png", "green", "triangle", 64, 64), ("tiny.png", "yellow", "circle", 5, 3),
          ("strip.png", "red", "square", 200, 12)]
QUESTIONS = [
    "Is there a red circle in the image? Please answer yes or no.",
    "What color is the shape? Answer the question using a single word or phrase.",
    "Provide a one-sentence caption for the provided image.",
    "  leading spaces, a literal </s> and <s> inside, tabs\tand\nnewlines",
    "图片里有几只猫？",
    "",
]


def main() -> None:
    write_tiny_chat(HERE, seed=TINY_SEED)
    for name, colour, shape, width, height in IMAGES:
        draw_shape(colour, shape, size=64, seed=len(name)).resize((width, height)).save(HERE / name)
    (HERE / "questions.json").write_text(json.dumps(QUESTIONS, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
