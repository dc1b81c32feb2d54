"""Model zoo: every model the suite can evaluate, behind one interface.

Adding a model = one new module in this package with a factory decorated by ``register_model``::

    @register_model("my-model")
    def my_model(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> ContrastiveModel:
        '''One-line description shown by `internvl-bench list`.'''

A family that takes an argument (``openclip:ViT-B-32``) registers with ``takes_argument=True`` and
its factory receives the argument as ``arch``. The registry imports every module here before the
first lookup; nothing central needs editing.
"""
from __future__ import annotations

from typing import Any

import torch

from internvl_bench.errors import BenchError
from internvl_bench.registry import Registry
from model_zoo.base import PRECISIONS, ContrastiveModel

MODELS: Registry[Any] = Registry("model", "model_zoo", "internvl_bench.models")
register_model = MODELS.register

__all__ = ["MODELS", "ContrastiveModel", "load_model", "register_model"]


def load_model(
    name: str, checkpoint: str | None = None, device: str | torch.device = "cpu", precision: str = "fp32"
) -> ContrastiveModel:
    """Build model ``name`` with weights from ``checkpoint`` (a local path or hub id; None = default)."""
    if precision not in PRECISIONS:
        raise BenchError(f"unknown precision '{precision}'; choose from {', '.join(PRECISIONS)}")
    entry, argument = MODELS.resolve(name)
    kwargs = {"arch": argument} if entry.takes_argument else {}
    model = entry.obj(checkpoint=checkpoint, device=torch.device(device), dtype=PRECISIONS[precision], **kwargs)
    model.name = name
    return model
