"""The contrastive-model interface every retrieval and classification task talks to.

A model adapter (InternVL-C/G, OpenCLIP, ...) subclasses ``ContrastiveModel`` and implements
``image_transform``, ``tokenize``, ``encode_image``, ``encode_text``, ``fingerprint`` and
``provenance``. Tasks never touch the wrapped network directly, so adding a model never edits a task.

Preprocessing modes (the protocols differ, so the mode is always explicit and recorded):
- ``squash``: resize to (S, S) bicubic, no crop -- the retrieval protocol of InternVL's evals.
- ``crop``: resize the short side to S bicubic, center-crop S -- the classification protocol.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

PREPROCESS_MODES = ("squash", "crop")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_NAMES = {dtype: name for name, dtype in PRECISIONS.items()}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_image_transform(
    size: int, mode: str, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> normalised float tensor [3, S, S] for one of ``PREPROCESS_MODES``."""
    if mode == "squash":
        resize = [transforms.Resize((size, size), interpolation=InterpolationMode.BICUBIC)]
    elif mode == "crop":
        resize = [
            transforms.Resize(size, interpolation=InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
        ]
    else:
        raise ValueError(f"unknown preprocessing mode {mode!r}; choose from {PREPROCESS_MODES}")
    return transforms.Compose(
        [_to_rgb, *resize, transforms.ToTensor(), transforms.Normalize(mean=mean, std=std)]
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def state_dict_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over parameter names, shapes, dtypes and values: identifies the weights actually loaded.

    Hashing the values costs one pass over the weights (seconds for 14B parameters on GPU), which is
    small next to an evaluation and makes the embedding cache safe against a changed checkpoint.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class ContrastiveModel(ABC):
    """An image encoder and a text encoder whose embeddings are compared by cosine similarity."""

    #: registry name of the model, e.g. ``internvl-c`` or ``openclip:ViT-B-32``
    name: str
    #: input resolution S used by ``image_transform``
    image_size: int
    #: width of the joint embedding space
    embed_dim: int
    device: torch.device
    dtype: torch.dtype

    @abstractmethod
    def image_transform(self, mode: str = "squash") -> Callable[[Image.Image], torch.Tensor]:
        """Per-image preprocessing, picklable so data-loader workers can apply it."""

    @abstractmethod
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> LongTensor of token ids, exactly as ``encode_text`` feeds the text encoder."""

    @abstractmethod
    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """[B, 3, S, S] preprocessed pixels -> [B, embed_dim] features (L2-normalised if asked)."""

    @abstractmethod
    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Raw texts -> [B, embed_dim] features (L2-normalised if asked)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A stable hash of config + weights; the embedding cache is keyed by it."""

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """Model id, revision or file hash, and config facts recorded in every result."""

    def preprocess(self, images: Sequence[Image.Image], mode: str = "squash") -> torch.Tensor:
        """PIL images -> [B, 3, S, S] batch on CPU."""
        transform = self.image_transform(mode)
        return torch.stack([transform(image) for image in images])
