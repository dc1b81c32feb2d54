"""Batched greedy decoding with a KV cache, in which every row computes what it would compute alone.

The official LLaVA eval asserts batch size 1 because its padded batches misalign the image tokens and
the attention mask. Here:

- the prompts are prefilled in groups of equal length (``prefill_by_length``), so no prompt is ever
  padded: each group runs with a plain causal mask and positions 0..L-1, exactly the batch-1 computation
  (and the fast unmasked attention kernels); the groups' KV caches are then merged, left-padded;
- decoding runs the whole batch one token per step; the attention mask hides the pad positions of the
  merged cache at every step, and each row's position ids continue from its own prompt length;
- finished rows leave the batch (``Cache.batch_select_indices``), so nothing is computed for them.

What remains is floating-point rounding of differently shaped matrix products: in float32 the greedy
tokens equal the batch-1 tokens; in bf16/fp16 a near-tie can flip. Each answer therefore carries the
smallest top-1 minus top-2 logit margin over its steps, which the engine uses to re-check answers at
batch 1 (``--verify-batch-invariance``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

#: step(token_ids [b, 1], attention_mask [b, T], position_ids [b, 1], cache) -> float32 logits [b, vocab]
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, object], torch.Tensor]


@dataclass
class DecodedRow:
    token_ids: list[int]
    min_margin: float
    finish_reason: str


def left_pad_positions(lengths: Sequence[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For rows of ``lengths`` left-padded to the longest: attention mask [B, L] (1 = real) and position
    ids [B, L] counting from 0 at each row's first real token (0 on the padding, which is masked)."""
    width = max(lengths)
    mask = torch.zeros(len(lengths), width, dtype=torch.long, device=device)
    for row, length in enumerate(lengths):
        mask[row, width - length:] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return mask, positions


def prefill_by_length(
    lengths: Sequence[int],
    prefill_rows: Callable[[list[int]], tuple[torch.Tensor, object]],
    device: torch.device,
    reserve: int,
) -> tuple[torch.Tensor, object, torch.Tensor, torch.Tensor]:
    """Prefill rows grouped by prompt length and merge their caches for batched decoding.

    ``prefill_rows(rows)`` runs the rows (all of one length, no padding, positions 0..L-1) and returns
    their last-position logits [g, vocab] and their ``DynamicCache``. Returns the logits [B, vocab] in row
    order, one left-padded cache for all rows with room for ``reserve`` more tokens, its attention mask
    [B, L_max] and each row's last position id [B].
    """
    from transformers import Cache

    from model_zoo.kv_cache import ReservedLayer

    groups: dict[int, list[int]] = {}
    for row, length in enumerate(lengths):
        groups.setdefault(length, []).append(row)
    width = max(lengths)
    first: list[torch.Tensor | None] = [None] * len(lengths)
    merged: list[tuple[torch.Tensor, torch.Tensor]] = []
    for length, rows in groups.items():
        logits, cache = prefill_rows(rows)
        for slot, row in enumerate(rows):
            first[row] = logits[slot]
        index = torch.tensor(rows, device=device)
        for layer_index, layer in enumerate(cache.layers):
            if len(merged) <= layer_index:
                shape = (len(lengths), layer.keys.shape[1], width + reserve, layer.keys.shape[3])
                merged.append((layer.keys.new_zeros(shape), layer.values.new_zeros(shape)))
            keys, values = merged[layer_index]
            keys[index, :, width - length:width] = layer.keys
            values[index, :, width - length:width] = layer.values
    mask, positions = left_pad_positions(lengths, device)
    cache = Cache(layers=[ReservedLayer(keys, values, width) for keys, values in merged])
    return torch.stack(first), cache, mask, positions[:, -1]


def margins(logits: torch.Tensor) -> torch.Tensor:
    """top-1 minus top-2 logit per row (float32 [b]); +inf when the vocabulary has one entry."""
    if logits.shape[-1] < 2:
        return torch.full(logits.shape[:1], math.inf)
    top = logits.topk(2, dim=-1).values
    return (top[:, 0] - top[:, 1]).float()


@torch.no_grad()
def greedy_decode(
    first_logits: torch.Tensor,
    step: StepFn,
    cache: object,
    attention_mask: torch.Tensor,
    last_positions: torch.Tensor,
    eos_id: int,
    max_new_tokens: Sequence[int],
    min_new_tokens: Sequence[int] | None = None,
) -> list[DecodedRow]:
    """Greedy continuation of a prefilled batch.

    ``first_logits`` [B, vocab] are the logits after the prompt, ``attention_mask`` [B, L] its mask and
    ``last_positions`` [B] the position id of each row's last prompt token. The token is ``argmax`` (the
    first index among equal maxima, as Hugging Face's greedy search); a row stops after emitting
    ``eos_id`` or after its own ``max_new_tokens``. Before a row has ``min_new_tokens`` tokens its
    ``eos_id`` logit is -inf (Hugging Face's ``MinNewTokensLengthLogitsProcessor``); margins are taken
    on these processed logits, the ones the choice was made on.
    """
    minimum = list(min_new_tokens) if min_new_tokens is not None else [0] * len(max_new_tokens)
    rows = len(max_new_tokens)
    tokens: list[list[int]] = [[] for _ in range(rows)]
    worst = [math.inf] * rows
    finish = ["length"] * rows
    active = [row for row in range(rows) if max_new_tokens[row] > 0]
    if len(active) < rows and active:
        keep = torch.tensor(active, device=attention_mask.device)
        first_logits, attention_mask, last_positions = first_logits[keep], attention_mask[keep], last_positions[keep]
        cache.batch_select_indices(keep)
    logits = first_logits.float()
    while active:
        blocked = [slot for slot, row in enumerate(active) if len(tokens[row]) < minimum[row]]
        if blocked:
            logits[blocked, eos_id] = -math.inf
        chosen = logits.argmax(dim=-1)
        step_margins = margins(logits).tolist()
        chosen_list = chosen.tolist()
        still: list[int] = []
        for slot, row in enumerate(active):
            token = chosen_list[slot]
            tokens[row].append(token)
            worst[row] = min(worst[row], step_margins[slot])
            if token == eos_id:
                finish[row] = "eos"
            elif len(tokens[row]) < max_new_tokens[row]:
                still.append(slot)
        if not still:
            break
        if len(still) < len(active):
            keep = torch.tensor(still, device=attention_mask.device)
            cache.batch_select_indices(keep)
            chosen, attention_mask, last_positions = chosen[keep], attention_mask[keep], last_positions[keep]
            active = [active[slot] for slot in still]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(active), 1)], dim=1)
        last_positions = last_positions + 1
        logits = step(chosen[:, None], attention_mask, last_positions[:, None], cache).float()
    return [DecodedRow(tokens[row], worst[row], finish[row]) for row in range(rows)]
