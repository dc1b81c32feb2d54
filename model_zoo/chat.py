"""The chat-model interface every generative task (MME, POPE, Tiny LVLM, VQA, captioning) talks to.

A chat adapter (InternVL-Chat, Hugging Face image-text-to-text baselines) subclasses ``ChatModel``:

- ``image_transform()``: per-image preprocessing, picklable so data-loader workers can apply it;
- ``build_prompt(question)``: the model's conversation template around one user turn, ``<image>`` included;
- ``tokenize_prompt(prompt)``: the ids the model is fed, with the image placeholder as the model sees it;
- ``encode_image(pixels)``: the visual tokens the language model reads;
- ``next_token_logits`` / ``generate``: greedy decoding, batched so that every row is what it would be alone;
- ``fingerprint`` / ``provenance``: what the response cache is keyed by and what every record stores.

Tasks never see templates or token ids: they hand the engine a question and get text back, so adding a
model never edits a task. Decoding is greedy (``do_sample=False``, one beam), the setting of every
official evaluation behind Tables E and F.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

#: LLaVA's placeholder for the image in a prompt, and its id in ``tokenize_prompt`` output
IMAGE_PLACEHOLDER = "<image>"
IMAGE_TOKEN_INDEX = -200


@dataclass
class Generation:
    """One greedy answer."""

    #: generated ids, the end-of-sequence id included when the model emitted it
    token_ids: list[int]
    #: decoded as the official evals do: special tokens skipped, cut at the end of sequence, stripped
    text: str
    #: smallest top-1 minus top-2 logit over the decoding steps (float32); small = a near-tie a batch can flip
    min_margin: float
    #: "eos" (the model stopped) or "length" (max_new_tokens reached)
    finish_reason: str


class ChatModel(ABC):
    """An image + text -> text model decoded greedily."""

    #: registry name, e.g. ``internvl-chat-vicuna-7b``
    name: str
    #: square input resolution S of ``preprocess``
    image_size: int
    #: where the image goes in ``build_prompt``'s text (exactly once per prompt)
    image_placeholder: str = IMAGE_PLACEHOLDER
    device: torch.device
    dtype: torch.dtype

    @abstractmethod
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """PIL image -> float tensor [3, S, S], picklable for data-loader workers."""

    @abstractmethod
    def build_prompt(self, question: str) -> str:
        """The full text fed to the tokenizer for one user turn (``<image>`` included)."""

    @abstractmethod
    def tokenize_prompt(self, prompt: str) -> list[int]:
        """Token ids of ``prompt`` exactly as the model is fed them (image placeholder included)."""

    @abstractmethod
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> [B, N, D] visual tokens in the language model's embedding space."""

    @abstractmethod
    def next_token_logits(self, pixels: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """float32 [B, vocab] logits of the first answer token for each (image, prompt) row."""

    @abstractmethod
    def generate(
        self,
        pixels: torch.Tensor,
        prompts: Sequence[str],
        max_new_tokens: int | Sequence[int] = 128,
        image_rows: Sequence[int] | None = None,
        min_new_tokens: int | Sequence[int] = 0,
    ) -> list[Generation]:
        """Greedy answers, one per prompt; row i uses ``pixels[image_rows[i]]`` (default: ``pixels[i]``),
        so a batch holding several questions about one image encodes it once. The end-of-sequence token is
        barred until a row has ``min_new_tokens`` tokens (InternVL's caption and Tiny LVLM evals set it)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A stable hash of config, weights, preprocessing and template; keys the response cache."""

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """Checkpoint ids and revisions, precision, attention, image size, template -- stored in every record."""

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> [B, 3, S, S] batch on CPU."""
        transform = self.image_transform()
        return torch.stack([transform(image) for image in images])


class DecoderChatModel(ChatModel):
    """A chat model whose language model prefills prompts into a KV cache and then decodes token by token.

    Subclasses provide ``prefill`` (prompts -> first logits, cache, mask, positions; see
    ``model_zoo.decoding.prefill_by_length``), ``decode_step`` and ``answer_text``; ``next_token_logits``
    and ``generate`` (the shared batched greedy loop, ``model_zoo.decoding.greedy_decode``) follow.
    """

    #: the end-of-sequence id that stops a row
    eos_id: int

    @abstractmethod
    def prefill(self, pixels: torch.Tensor, prompts: Sequence[str], image_rows: Sequence[int] | None,
                reserve: int) -> tuple[torch.Tensor, object, torch.Tensor, torch.Tensor]:
        """Logits after each prompt [B, vocab], the cache (room for ``reserve`` tokens), its mask, last positions."""

    @abstractmethod
    def decode_step(self, tokens: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor,
                    cache: object) -> torch.Tensor:
        """One token per row through the cached model -> logits [b, vocab]."""

    @abstractmethod
    def answer_text(self, token_ids: list[int]) -> str:
        """The answer as the model's official eval decodes it."""

    @torch.no_grad()
    def next_token_logits(self, pixels: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        logits, *_ = self.prefill(pixels, prompts, None, 0)
        return logits.float().cpu()

    @torch.no_grad()
    def generate(self, pixels: torch.Tensor, prompts: Sequence[str], max_new_tokens: int | Sequence[int] = 128,
                 image_rows: Sequence[int] | None = None, min_new_tokens: int | Sequence[int] = 0) -> list[Generation]:
        from model_zoo.decoding import greedy_decode

        limits = as_row_limits(max_new_tokens, len(prompts))
        logits, cache, mask, last = self.prefill(pixels, prompts, image_rows, max(limits, default=0))
        rows = greedy_decode(logits, self.decode_step, cache, mask, last, self.eos_id, limits,
                             as_row_limits(min_new_tokens, len(prompts)))
        return [Generation(r.token_ids, self.answer_text(r.token_ids), r.min_margin, r.finish_reason) for r in rows]


def as_row_limits(limit: int | Sequence[int], rows: int) -> list[int]:
    """One token limit per row, from a shared value or a per-row list."""
    if isinstance(limit, int):
        return [limit] * rows
    limits = [int(m) for m in limit]
    if len(limits) != rows:
        raise ValueError(f"{len(limits)} token limits for {rows} prompts")
    return limits
