"""Hugging Face image-text-to-text baselines (``hf:OWNER/NAME``) behind the ``ChatModel`` interface.

For the LLaVA-1.5 rows of Tables E and F: ``--model hf:llava-hf/llava-1.5-7b-hf`` loads
``AutoModelForImageTextToText`` + ``AutoProcessor`` (safetensors only, no remote code) at a pinned revision
(``PINNED`` below; other repos need ``--checkpoint OWNER/NAME@REVISION`` or a local folder).

Protocol options (``--model-option KEY=VALUE``), each recorded in provenance:

- ``conv_template``: ``chat_template`` (default: the processor's own template, one user turn with the image
  first) or a template name of ``model_zoo.internvl_chat.conversation`` -- ``vicuna_v1`` is the prompt of
  LLaVA's own eval scripts, with the system sentence the llava-hf template leaves out;
- ``pad_to_square``: pad with the processor's mean colour before its resize and crop, as LLaVA-1.5's eval
  does (``image_aspect_ratio: pad``); off by default, i.e. the processor as shipped.

Decoding is the shared batched greedy loop (``model_zoo.decoding``): rows are left-padded with explicit
position ids, so batches give the batch-1 answers. Supported: processors that turn each ``<image>`` into
a fixed number of image tokens (LLaVA-1.5 style); others are refused at load time.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from internvl_bench.errors import BenchError
from model_zoo import register_model
from model_zoo.base import PRECISION_NAMES
from model_zoo.chat import IMAGE_PLACEHOLDER, DecoderChatModel
from model_zoo.decoding import prefill_by_length
from model_zoo.internvl import checkpoint as ckpt
from model_zoo.internvl.layers import resolve_backend
from model_zoo.internvl_chat.conversation import get_template
from model_zoo.internvl_chat.loader import ATTENTION_IMPLEMENTATIONS
from model_zoo.internvl_chat.preprocess import expand2square
from model_zoo.memory import check_fits

#: revisions from the huggingface.co commit pages (newest commit seen; the weights predate it)
PINNED = {
    "llava-hf/llava-1.5-7b-hf": "95f2cf316249a98c11183f471ab76065c3e5f494",
    "llava-hf/llava-1.5-13b-hf": "e35e892aa406d31b1df3bad7ab0743e8bf98b8eb",
}
HF_FILES = ["*.json", "*.safetensors", "tokenizer.model", "*.jinja", "*.txt"]
CHAT_TEMPLATE = "chat_template"


class HFImageTransform:
    """PIL image -> the processor's pixel tensor [3, S, S] (optionally padded to a square first); picklable."""

    def __init__(self, image_processor: Any, pad_to_square: bool) -> None:
        self.image_processor = image_processor
        self.pad_to_square = pad_to_square
        self.fill = tuple(int(255 * m) for m in image_processor.image_mean)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if self.pad_to_square:
            image = expand2square(image, self.fill)
        return self.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]


class HFChatModel(DecoderChatModel):
    def __init__(self, folder: Path, repo_id: str | None, revision: str | None, device: torch.device,
                 dtype: torch.dtype, conv_template: str, pad_to_square: bool, attention: str) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device, self.dtype = device, dtype
        self.folder, self.repo_id, self.revision = folder, repo_id, revision
        self.attention = resolve_backend(attention, device)
        self.conv_template, self.pad_to_square = conv_template, pad_to_square
        self.template = None if conv_template == CHAT_TEMPLATE else get_template(conv_template)
        check_fits(repo_id or str(folder), _stored_parameters(folder), dtype, device)
        try:
            self.processor = AutoProcessor.from_pretrained(str(folder))
            self.model = AutoModelForImageTextToText.from_pretrained(
                str(folder), dtype=dtype, use_safetensors=True, trust_remote_code=False,
                attn_implementation=ATTENTION_IMPLEMENTATIONS[self.attention]).to(device).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise BenchError(f"{folder}: cannot load as an image-text-to-text model ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        self.tokenizer = self.processor.tokenizer
        self.image_token = self.image_placeholder = getattr(self.processor, "image_token", IMAGE_PLACEHOLDER)
        crop = getattr(self.processor.image_processor, "crop_size", None) or {"height": 336}
        self.image_size = int(crop["height"])
        self.image_tokens = self._image_token_count()
        self.eos_id = int(self.model.generation_config.eos_token_id if isinstance(
            self.model.generation_config.eos_token_id, int) else self.model.generation_config.eos_token_id[0])
        self.name = f"hf:{repo_id or folder.name}"

    def _image_token_count(self) -> int:
        counts = set()
        for size in ((self.image_size, self.image_size), (self.image_size + 37, self.image_size // 2)):
            ids = self.processor(images=[Image.new("RGB", size)], text=[self.image_token], return_tensors="pt")
            counts.add(int((ids["input_ids"][0] == self.model.config.image_token_id).sum()))
        if len(counts) != 1:
            raise BenchError(f"{self.folder}: the processor gives a varying number of image tokens per image "
                             "(any-resolution models); only LLaVA-1.5-style processors are supported")
        return counts.pop()

    # -- ChatModel -------------------------------------------------------------------------------
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return HFImageTransform(self.processor.image_processor, self.pad_to_square)

    def build_prompt(self, question: str) -> str:
        if self.template is not None:
            return self.template.render(question).replace(IMAGE_PLACEHOLDER, self.image_token)
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True)

    def tokenize_prompt(self, prompt: str) -> list[int]:
        expanded = prompt.replace(self.image_token, self.image_token * self.image_tokens)
        return list(self.tokenizer(expanded)["input_ids"])

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        cfg = self.model.config
        out = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype),
                                            vision_feature_layer=cfg.vision_feature_layer,
                                            vision_feature_select_strategy=cfg.vision_feature_select_strategy)
        return torch.stack(list(out.pooler_output))

    def prefill(self, pixels: torch.Tensor, prompts: Sequence[str], image_rows: Sequence[int] | None, reserve: int):
        from transformers import DynamicCache

        image_of = list(range(len(prompts))) if image_rows is None else list(image_rows)
        ids = [self.tokenize_prompt(p) for p in prompts]
        for prompt, row in zip(prompts, ids):
            if row.count(self.model.config.image_token_id) != self.image_tokens:
                raise BenchError(f"a prompt must hold exactly one {self.image_token}: {prompt[:80]!r}")

        def prefill_rows(group: list[int]):
            input_ids = torch.tensor([ids[i] for i in group], device=self.device)
            positions = torch.arange(input_ids.shape[1], device=self.device).expand(len(group), -1)
            out = self.model(input_ids=input_ids, pixel_values=pixels[[image_of[i] for i in group]].to(self.device, self.dtype),
                             position_ids=positions, cache=DynamicCache(config=self.model.config), use_cache=True,
                             logits_to_keep=1)
            return out.logits[:, -1], out.cache

        return prefill_by_length([len(r) for r in ids], prefill_rows, self.device, reserve)

    def decode_step(self, tokens, attention_mask, positions, cache):
        return self.model(input_ids=tokens, attention_mask=attention_mask, position_ids=positions, cache=cache,
                          use_cache=True).logits[:, -1]

    def answer_text(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True).strip()

    def fingerprint(self) -> str:
        digest = hashlib.sha256(json.dumps(self._settings(), sort_keys=True).encode())
        for file in sorted(self.folder.iterdir()):
            if file.is_file():
                digest.update(f"{file.name}={ckpt.file_identity(file)}".encode())
        return digest.hexdigest()

    def _settings(self) -> dict[str, Any]:
        return {"dtype": str(self.dtype), "attention": self.attention, "conv_template": self.conv_template,
                "pad_to_square": self.pad_to_square, "model": self.repo_id, "revision": self.revision}

    def provenance(self) -> dict[str, Any]:
        template = self.processor.chat_template if self.template is None else self.template.system
        return {
            "model_id": self.repo_id or str(self.folder), "revision": self.revision,
            "precision": PRECISION_NAMES[self.dtype],
            "attention_backend": self.model.config._attn_implementation, "image_size": self.image_size,
            "image_tokens": self.image_tokens, "pad_to_square": self.pad_to_square,
            "conversation_template": self.conv_template,
            "conversation_template_sha256": hashlib.sha256(str(template).encode()).hexdigest(),
            "decoding": "greedy (argmax, one beam), stop at the end-of-sequence token",
            "transformers": version("transformers"), "pillow": version("pillow"),
        }


def _stored_parameters(folder: Path) -> int:
    """Parameter count from the safetensors index (or file sizes), assuming 2-byte storage when unknown."""
    index = folder / "model.safetensors.index.json"
    try:
        total = json.loads(index.read_text())["metadata"]["total_size"] if index.is_file() else \
            sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    except (OSError, ValueError, KeyError):
        return 0
    stored = json.loads((folder / "config.json").read_text()).get("torch_dtype", "bfloat16") \
        if (folder / "config.json").is_file() else "bfloat16"
    return int(total) // (4 if stored == "float32" else 2)


@register_model("hf", takes_argument=True, kind="chat")
def hf_image_text_to_text(arch: str, checkpoint: str | None, device: torch.device, dtype: torch.dtype,
                          conv_template: str = CHAT_TEMPLATE, pad_to_square: bool = False,
                          attention: str = "auto") -> HFChatModel:
    """Hugging Face image-text-to-text baselines, e.g. hf:llava-hf/llava-1.5-7b-hf (LLaVA-1.5 rows)."""
    if checkpoint is None:
        if arch not in PINNED:
            raise BenchError(f"hf:{arch} has no pinned revision; pass --checkpoint {arch}@<commit sha> or a local "
                             f"folder (pinned: {', '.join(sorted(PINNED))})")
        checkpoint = f"{arch}@{PINNED[arch]}"
    source = ckpt.resolve_source(checkpoint, None, HF_FILES)
    if source.kind != "hf":
        raise BenchError(f"{source.path}: a Hugging Face model is a folder with config.json, not a single file")
    return HFChatModel(source.path, source.repo_id, source.revision, device, dtype, conv_template,
                       pad_to_square, attention)
