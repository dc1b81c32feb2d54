"""The InternVL-Chat 1.0 network: InternViT tower -> projector -> Vicuna (transformers' ``LlamaForCausalLM``).

- The tower is the project's InternViT (``model_zoo.internvl.vision``), built with only the blocks that
  produce ``hidden_states[mm_vision_select_layer]`` (45 of 48 for -4; the last three never run). Its
  position table is bicubically re-interpolated to the incoming patch grid (224 -> 336 px: 16 -> 24),
  CLS position untouched, as the chat copy of InternViT does on every forward.
- ``patch`` drops the CLS token; the projector is ``Linear`` or LLaVA's ``mlp<N>x_gelu``
  (Linear, GELU (erf), Linear, ...), parameter names ``mm_projector.0`` / ``.2`` as in the checkpoints.
- ``splice``: text embeddings before ``<image>``, the image tokens, text embeddings after; the -200
  placeholder never reaches the embedding table and positions simply run on (0 .. L-2+N).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from internvl_bench.errors import BenchError
from model_zoo.chat import IMAGE_TOKEN_INDEX
from model_zoo.internvl.config import VisionConfig
from model_zoo.internvl.vision import InternViT
from model_zoo.internvl_chat.config import ChatConfig


def build_projector(config: ChatConfig) -> nn.Module:
    width, mm = config.language.hidden_size, config.mm_hidden_size
    if config.projector_type == "linear":
        return nn.Linear(mm, width)
    layers: list[nn.Module] = [nn.Linear(mm, width)]
    for _ in range(1, config.projector_depth):
        layers += [nn.GELU(), nn.Linear(width, width)]
    return nn.Sequential(*layers)


class InternVLChatNet(nn.Module):
    def __init__(self, config: ChatConfig, vision: VisionConfig, attn_implementation: str = "sdpa") -> None:
        super().__init__()
        from transformers import LlamaForCausalLM

        self.config = config
        self.vision_config = vision
        positions = (vision.image_size // vision.patch_size) ** 2 + 1
        self.vision_tower = InternViT(replace(vision, num_hidden_layers=config.layers_to_run(vision)), positions)
        self.mm_projector = build_projector(config)
        self.language_model = LlamaForCausalLM(config.language.to_transformers(attn_implementation))

    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> [B, N, D]: tower hidden state at the selected layer, CLS dropped, projected."""
        hidden = self.vision_tower(pixels)
        if self.config.select_feature == "patch":
            hidden = hidden[:, 1:]
        return self.mm_projector(hidden)

    def splice(self, prompt_ids: Sequence[Sequence[int]], image_tokens: torch.Tensor,
               image_rows: Sequence[int]) -> list[torch.Tensor]:
        """One [L_i, D] embedding sequence per prompt, the image tokens where -200 stands."""
        embed = self.language_model.get_input_embeddings()
        device = image_tokens.device
        rows = []
        for ids, image_row in zip(prompt_ids, image_rows):
            where = [i for i, token in enumerate(ids) if token == IMAGE_TOKEN_INDEX]
            if len(where) != 1:
                raise BenchError(f"a prompt must hold exactly one <image>, this one holds {len(where)}: "
                                 "one image per question is what the chat tasks evaluate")
            cut = where[0]
            before = torch.tensor(ids[:cut], dtype=torch.long, device=device)
            after = torch.tensor(ids[cut + 1:], dtype=torch.long, device=device)
            rows.append(torch.cat([embed(before), image_tokens[image_row], embed(after)]))
        return rows
