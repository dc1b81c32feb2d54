"""The InternVL text tokenizer, on ``sentencepiece`` directly (no transformers).

Reproduces what the official wrapper does with the slow ``LlamaTokenizer`` (legacy mode) of the
checkpoint (Chinese-LLaMA, 49954 pieces):

1. prefix every text with ``summarize:`` (no space);
2. split out the literal special tokens ``<s>``, ``</s>``, ``<unk>`` (and those of ``added_tokens.json``)
   and SentencePiece-encode each other
   chunk on its own (each chunk gets SentencePiece's dummy-prefix space, as in legacy mode);
3. truncate the pieces to ``max_length - 2`` from the right, then add BOS in front and EOS at the end
   (``add_eos_token=True``), so truncation always keeps the EOS last;
4. right-pad with id 0 (the official sets ``pad_token = ' '``, which is not a piece, so its id is
   ``<unk>`` = 0) to ``max_length`` (Hugging Face checkpoints) or to the longest text (the ``.pth``).

The text feature is read at ``(ids > 0).sum(1) - 1``: the EOS.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch

from internvl_bench.errors import BenchError

PREFIX = "summarize:"
SPECIAL_PIECES = ("<s>", "</s>", "<unk>")


def read_added_tokens(folder: Path) -> dict[str, int]:
    """``added_tokens.json`` of a Hugging Face tokenizer folder (empty when absent)."""
    import json

    path = Path(folder) / "added_tokens.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): int(v) for k, v in data.items()}
    except (ValueError, AttributeError) as exc:
        raise BenchError(f"{path}: not a valid added_tokens.json ({exc}); re-download the checkpoint") from exc


class InternVLTokenizer:
    def __init__(self, model_file: str | Path, max_length: int = 80, padding: str = "max_length",
                 prefix: str = PREFIX, added_tokens: dict[str, int] | None = None) -> None:
        import sentencepiece

        if padding not in ("max_length", "longest"):
            raise ValueError(f"padding must be 'max_length' or 'longest', got {padding!r}")
        self.model_file = Path(model_file)
        if not self.model_file.is_file():
            raise BenchError(f"{self.model_file}: tokenizer.model not found; the checkpoint folder must contain it")
        self.sp = sentencepiece.SentencePieceProcessor()
        try:
            self.sp.Load(str(self.model_file))
        except (OSError, RuntimeError) as exc:
            raise BenchError(f"{self.model_file}: not a SentencePiece model ({exc}); re-download tokenizer.model") from exc
        self.max_length = max_length
        self.padding = padding
        self.prefix = prefix
        self.special_ids = {piece: self.sp.PieceToId(piece) for piece in SPECIAL_PIECES}
        # tokens of the checkpoint's added_tokens.json (Chinese-Alpaca: "[PAD]" = 49953) are split out too
        self.special_ids.update(added_tokens or {})
        self.bos_id = self.special_ids["<s>"]
        self.eos_id = self.special_ids["</s>"]
        self.pad_id = 0
        pieces = sorted(self.special_ids, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(re.escape(p) for p in pieces) + ")")

    @property
    def vocab_size(self) -> int:
        return self.sp.GetPieceSize()

    def encode(self, text: str) -> list[int]:
        """Token ids of one text without prefix, BOS/EOS or truncation."""
        ids: list[int] = []
        for chunk in self._split.split(text):
            if not chunk:
                continue
            if chunk in self.special_ids:
                ids.append(self.special_ids[chunk])
            else:
                ids.extend(self.sp.EncodeAsIds(chunk))
        return ids

    def __call__(self, texts: Sequence[str] | str) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        rows = []
        for text in texts:
            ids = self.encode(self.prefix + text)[: max(self.max_length - 2, 0)]
            rows.append([self.bos_id, *ids, self.eos_id])
        width = self.max_length if self.padding == "max_length" else max((len(r) for r in rows), default=0)
        out = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out
