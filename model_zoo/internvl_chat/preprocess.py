"""InternVL-Chat 1.0 image preprocessing: LLaVA's ``expand2square`` padding, then a ``CLIPImageProcessor``.

The official code builds the processor in code (``crop_size = size = 336``, or 448 when "448" is in the
tower name; ImageNet mean / std; bicubic), resizes the short side, centre-crops and normalises. Here the
same settings run through transformers' PIL backend (``CLIPImageProcessorPil``): its torchvision backend,
the default in transformers 5, is not bit-equal to the PIL path the official code ran (about 0.5 % of
values one level off). Pixel values also depend on the Pillow version, which the provenance records.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from model_zoo.base import IMAGENET_MEAN, IMAGENET_STD


def expand2square(image: Image.Image, fill: tuple[int, ...]) -> Image.Image:
    """Pad to a square, the image centred (offset rounded down), the rest ``fill``."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


@dataclass(frozen=True)
class ImageSettings:
    """What the processor does; recorded in provenance and part of the model fingerprint."""

    crop_size: int = 336
    shortest_edge: int = 336
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    pad_to_square: bool = True
    #: where the settings came from: "official rule" or the chat folder's preprocessor_config.json
    origin: str = "official rule"

    @property
    def fill(self) -> tuple[int, ...]:
        return tuple(int(value * 255) for value in self.mean)

    @classmethod
    def official(cls, tower_name: str, pad_to_square: bool) -> ImageSettings:
        size = 448 if "448" in tower_name else 336
        return cls(crop_size=size, shortest_edge=size, pad_to_square=pad_to_square)

    @classmethod
    def from_preprocessor_config(cls, data: dict[str, Any], path: Path, pad_to_square: bool) -> ImageSettings:
        def side(value: Any, key: str) -> int:
            if isinstance(value, dict):
                value = value.get(key, value.get("height"))
            return int(value)

        return cls(
            crop_size=side(data.get("crop_size", 336), "height"),
            shortest_edge=side(data.get("size", 336), "shortest_edge"),
            mean=tuple(float(v) for v in data.get("image_mean", IMAGENET_MEAN)),
            std=tuple(float(v) for v in data.get("image_std", IMAGENET_STD)),
            pad_to_square=pad_to_square,
            origin=str(path),
        )


class ChatImageTransform:
    """PIL image -> [3, S, S] float tensor; picklable (the processor is rebuilt in each worker)."""

    def __init__(self, settings: ImageSettings) -> None:
        self.settings = settings
        self._processor = None

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "_processor": None}

    def processor(self):
        if self._processor is None:
            from transformers import CLIPImageProcessorPil

            s = self.settings
            self._processor = CLIPImageProcessorPil(
                crop_size={"height": s.crop_size, "width": s.crop_size}, size={"shortest_edge": s.shortest_edge},
                do_center_crop=True, do_normalize=True, do_resize=True, image_mean=list(s.mean),
                image_std=list(s.std),
            )
        return self._processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if self.settings.pad_to_square:
            image = expand2square(image, self.settings.fill)
        return self.processor()(image, return_tensors="pt")["pixel_values"][0]
