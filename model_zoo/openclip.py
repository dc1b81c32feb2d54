"""OpenCLIP baselines (``openclip:ARCH``) behind the ``ContrastiveModel`` interface.

Architecture and weights are kept apart: ``--model openclip:ViT-H-14 --checkpoint laion2b_s32b_b79k``.
``--checkpoint`` is an open_clip pretrained tag (downloaded by open_clip from the hub), a local
weights file (loaded weights-only), or ``random[:SEED]`` for seeded random weights -- what tests and
``make demo`` use, since nothing can be downloaded there. There is no silent default: without a
checkpoint the factory says what to pass.

Extra architectures ship as JSON under ``openclip_configs/`` (``tiny-clip``: a 2-layer model for
tests and the demo); they are registered with open_clip when this module is imported.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from internvl_bench.data import file_sha256
from internvl_bench.errors import BenchError, unknown_name_error
from model_zoo import register_model
from model_zoo.base import ContrastiveModel, build_image_transform

CONFIG_DIR = Path(__file__).parent / "openclip_configs"


def _open_clip() -> Any:
    import open_clip

    for config in sorted(CONFIG_DIR.glob("*.json")):
        if config.stem not in open_clip.list_models():
            open_clip.add_model_config(config)
    return open_clip


class OpenCLIPModel(ContrastiveModel):
    """An open_clip model; preprocessing uses the architecture's own mean/std and resolution."""

    def __init__(self, arch: str, checkpoint: str, device: torch.device, dtype: torch.dtype) -> None:
        open_clip = _open_clip()
        if arch not in open_clip.list_models():
            raise unknown_name_error("open_clip architecture", arch, open_clip.list_models())
        self.arch, self.checkpoint = arch, checkpoint
        self.device, self.dtype = device, dtype
        self._weights_id = self._build(open_clip, arch, checkpoint)
        self.network.to(device=device, dtype=dtype).eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        cfg = self.network.visual.preprocess_cfg
        self.image_size = int(cfg["size"][0] if isinstance(cfg["size"], (tuple, list)) else cfg["size"])
        self.mean, self.std = tuple(cfg["mean"]), tuple(cfg["std"])
        self.embed_dim = int(open_clip.get_model_config(arch)["embed_dim"])

    def _build(self, open_clip: Any, arch: str, checkpoint: str) -> str:
        """Create ``self.network`` and return a string that identifies its weights."""
        if checkpoint == "random" or checkpoint.startswith("random:"):
            seed = int(checkpoint.partition(":")[2] or 0)
            torch.manual_seed(seed)
            self.network = open_clip.create_model(arch, pretrained=None)
            return f"random:{seed}"
        path = Path(checkpoint)
        if path.is_file():
            self.network = open_clip.create_model(arch, pretrained=None)
            try:
                state = _load_weights_file(path)
                missing, unexpected = self.network.load_state_dict(state, strict=False)
            except RuntimeError as exc:
                raise BenchError(f"{path}: weights do not fit {arch} ({str(exc).splitlines()[0]})") from None
            if missing or unexpected:
                key = (missing or unexpected)[0]
                raise BenchError(f"{path}: weights do not fit {arch}: {'missing' if missing else 'unexpected'} key '{key}'")
            return f"file:{file_sha256(path)}"
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if checkpoint not in tags:
            raise unknown_name_error(f"checkpoint for openclip:{arch} (a pretrained tag, a file or random[:SEED])", checkpoint, tags)
        self.network = open_clip.create_model(arch, pretrained=checkpoint)
        return f"pretrained:{checkpoint}"

    def image_transform(self, mode: str = "squash") -> Callable[[Image.Image], torch.Tensor]:
        return build_image_transform(self.image_size, mode, self.mean, self.std)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        features = self.network.encode_image(pixels.to(self.device, self.dtype))
        return F.normalize(features, dim=-1) if normalize else features

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        ids = self.tokenize(texts).to(self.device)
        if self._trims_padding():
            features = _encode_text_trimmed(self.network, ids)
        else:
            features = self.network.encode_text(ids)
        return F.normalize(features, dim=-1) if normalize else features

    def _trims_padding(self) -> bool:
        """Whether trailing padding can be cut before the text tower without changing its output.

        True for open_clip's own causal text transformer pooled at the EOT token (``argmax``): with a
        causal mask no position attends to the padding after it, so encoding only up to the longest
        text in the batch gives the same features (float rounding aside) for a fraction of the cost --
        prompts are ~10 tokens of a 77-token context.
        """
        import open_clip

        net = self.network
        return type(net) is open_clip.CLIP and net.text_pool_type == "argmax" and net.attn_mask is not None

    def fingerprint(self) -> str:
        import open_clip

        text = f"openclip|{self.arch}|{self._weights_id}|{open_clip.__version__}|{self.dtype}"
        return hashlib.sha256(text.encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        import open_clip

        return {
            "family": "openclip",
            "arch": self.arch,
            "weights": self._weights_id,
            "open_clip_version": open_clip.__version__,
            "image_size": self.image_size,
            "text_padding_trimmed": self._trims_padding(),
        }


def _encode_text_trimmed(net: Any, ids: torch.Tensor) -> torch.Tensor:
    """``open_clip.CLIP.encode_text`` on ids cut after the last non-pad token of the batch."""
    from open_clip.transformer import text_global_pool

    length = int((ids != 0).int().cumsum(1).argmax(1).max()) + 1
    ids = ids[:, :length]
    cast_dtype = net.transformer.get_cast_dtype()
    x = net.token_embedding(ids).to(cast_dtype) + net.positional_embedding[:length].to(cast_dtype)
    x = net.transformer(x, attn_mask=net.attn_mask[:length, :length])
    x = net.ln_final(x)
    x = text_global_pool(x, ids, net.text_pool_type, eos_token_id=getattr(net, "text_eos_id", None))
    if net.text_projection is not None:
        x = net.text_projection(x) if isinstance(net.text_projection, torch.nn.Linear) else x @ net.text_projection
    return x


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, or a PyTorch checkpoint loaded weights-only (never arbitrary pickles)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the user's file
        raise BenchError(f"{path}: not a weights-only PyTorch checkpoint ({exc.__class__.__name__}); convert it to safetensors") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    return {k.removeprefix("module."): v for k, v in state.items()}


@register_model("openclip", takes_argument=True)
def openclip(arch: str, checkpoint: str | None, device: torch.device, dtype: torch.dtype) -> OpenCLIPModel:
    """OpenCLIP baselines: openclip:ARCH with --checkpoint TAG|FILE|random[:SEED]."""
    if checkpoint is None:
        raise BenchError(
            f"openclip:{arch} needs --checkpoint: an open_clip pretrained tag, a weights file, or random[:SEED]"
        )
    return OpenCLIPModel(arch, checkpoint, device, dtype)
