"""Model zoo: every model the suite can evaluate, behind one interface.

Adding a model = one new module in this package with a factory decorated by ``register_model``::

    @register_model("my-model")
    def my_model(checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> ContrastiveModel:
        '''One-line description shown by `internvl-bench list`.'''

A family that takes an argument (``openclip:ViT-B-32``) registers with ``takes_argument=True`` and
its factory receives the argument as ``arch``. Chat models (``model_zoo.chat.ChatModel``) register with
``kind="chat"``; model-specific options (``vision_tower``, ``conv_template``) are keyword parameters of
the factory, passed through ``load_model(..., **options)``. The registry imports every module here
before the first lookup; nothing central needs editing.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch

from internvl_bench.errors import BenchError
from internvl_bench.registry import Registry
from model_zoo.base import PRECISIONS, ContrastiveModel
from model_zoo.chat import ChatModel

MODELS: Registry[Any] = Registry("model", "model_zoo", "internvl_bench.models")
register_model = MODELS.register
#: ``Entry.kind`` of models registered without one
DEFAULT_KIND = "contrastive"

__all__ = ["MODELS", "ChatModel", "ContrastiveModel", "load_model", "model_kind", "register_model"]


def model_kind(name: str) -> str:
    """'contrastive' or 'chat', known before anything is loaded."""
    entry, _ = MODELS.resolve(name)
    return entry.kind or DEFAULT_KIND


def load_model(
    name: str, checkpoint: str | None = None, device: str | torch.device = "cpu", precision: str = "fp32",
    **options: Any,
) -> ContrastiveModel | ChatModel:
    """Build model ``name`` with weights from ``checkpoint`` (a local path or hub id; None = default);
    ``options`` (None values ignored) go to the factory, which must declare them."""
    if precision not in PRECISIONS:
        raise BenchError(f"unknown precision '{precision}'; choose from {', '.join(PRECISIONS)}")
    entry, argument = MODELS.resolve(name)
    kwargs: dict[str, Any] = {"arch": argument} if entry.takes_argument else {}
    accepted = inspect.signature(entry.obj).parameters
    for key, value in options.items():
        if value is None:
            continue
        if key not in accepted or key in ("checkpoint", "device", "dtype", "arch"):
            known = [p for p in accepted if p not in ("checkpoint", "device", "dtype", "arch")]
            raise BenchError(f"model '{name}' takes no option '{key}' (its options: {', '.join(known) or 'none'})")
        kwargs[key] = _typed(value, accepted[key].default, name, key)
    model = entry.obj(checkpoint=checkpoint, device=torch.device(device), dtype=PRECISIONS[precision], **kwargs)
    model.name = name
    return model


def _typed(value: Any, default: Any, model: str, key: str) -> Any:
    """A command-line string converted to the type of the factory parameter's default."""
    if not isinstance(value, str) or default is None or isinstance(default, str) or default is inspect.Parameter.empty:
        return value
    try:
        if isinstance(default, bool):
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        return type(default)(value)
    except ValueError:
        raise BenchError(f"model '{model}': option '{key}' needs a {type(default).__name__}, got '{value}'") from None
