"""The LLaMA / Vicuna tokenizer of the chat checkpoints, as the official eval's slow ``LlamaTokenizer`` runs it.

The official eval loads ``AutoTokenizer.from_pretrained(folder, use_fast=False)`` under transformers 4.37:
a SentencePiece ``LlamaTokenizer`` configured by ``tokenizer_config.json``. This module reproduces that
tokenizer on SentencePiece directly (ids checked against transformers 4.37.2 on awkward texts):

- ``legacy: false`` (the released chat models): the text gets one "▁" prefix, literal "▁" become spaces,
  special tokens (``<s>``, ``</s>``, ``<unk>``) are split out, and each remaining piece is encoded with the
  model's dummy prefix switched off (a piece that starts with a space keeps it as "▁");
- ``legacy: true``: special tokens split out, each piece encoded with the dummy prefix;
- ``add_bos_token`` / ``add_eos_token`` around every encoded text;
- decoding: special ids skipped, the first piece's "▁" dropped, ``clean_up_tokenization_spaces`` and
  ``spaces_between_special_tokens`` as configured.

``tokenize_with_image`` is LLaVA's ``tokenizer_image_token``: split the prompt on ``<image>``, tokenize each
chunk (with BOS), keep the first chunk's BOS only, and put ``IMAGE_TOKEN_INDEX`` (-200) between chunks.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from internvl_bench.errors import BenchError
from model_zoo.chat import IMAGE_PLACEHOLDER, IMAGE_TOKEN_INDEX

UNDERLINE = "\u2581"
#: transformers' ``clean_up_tokenization`` replacements
_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
             (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def _token_content(value: Any) -> str | None:
    """A special token from tokenizer_config.json: a string or an ``AddedToken`` dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BenchError(f"{path}: not valid JSON ({exc}); re-download the checkpoint's tokenizer files") from None
    return data if isinstance(data, dict) else {}


def _sentencepiece(model_file: Path, dummy_prefix: bool):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    try:
        if dummy_prefix:
            processor.Load(str(model_file))
            return processor
        from sentencepiece import sentencepiece_model_pb2  # needs the protobuf package

        proto = sentencepiece_model_pb2.ModelProto.FromString(model_file.read_bytes())
        proto.normalizer_spec.add_dummy_prefix = False
        processor.LoadFromSerializedProto(proto.SerializeToString())
        return processor
    except ImportError as exc:
        raise BenchError("the chat tokenizer needs the protobuf package (pip install protobuf)") from exc
    except (OSError, RuntimeError, ValueError) as exc:
        raise BenchError(f"{model_file}: not a SentencePiece model ({exc}); re-download tokenizer.model") from None


class LlamaTokenizer:
    """Encode / decode exactly as the checkpoint's slow ``LlamaTokenizer`` (transformers 4.37.2)."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.model_file = folder / "tokenizer.model"
        if not self.model_file.is_file():
            raise BenchError(f"{self.model_file}: tokenizer.model not found; the chat checkpoint folder must contain it")
        config = _read_optional_json(folder / "tokenizer_config.json")
        special_map = _read_optional_json(folder / "special_tokens_map.json")
        legacy = config.get("legacy")  # absent -> transformers 4.37 falls back to the legacy behaviour
        self.legacy = True if legacy is None else bool(legacy)
        self.add_bos = bool(config.get("add_bos_token", True))
        self.add_eos = bool(config.get("add_eos_token", False))
        self.clean_up_spaces = bool(config.get("clean_up_tokenization_spaces", False))
        self.spaces_between_special = bool(config.get("spaces_between_special_tokens", True))
        self.sp = _sentencepiece(self.model_file, dummy_prefix=self.legacy)

        def special(name: str, default: str | None) -> str | None:
            return _token_content(config.get(name)) or _token_content(special_map.get(name)) or default

        self.bos_token, self.eos_token = special("bos_token", "<s>"), special("eos_token", "</s>")
        self.unk_token, pad_token = special("unk_token", "<unk>"), special("pad_token", None)
        self.special_tokens = [t for t in dict.fromkeys([self.bos_token, self.eos_token, self.unk_token, pad_token])
                               if t is not None]
        self.added: dict[str, int] = {t: self.sp.PieceToId(t) for t in self.special_tokens}
        self.added.update({str(k): int(v) for k, v in _read_optional_json(folder / "added_tokens.json").items()})
        self.added_by_id = {i: t for t, i in self.added.items()}
        self.special_ids = {self.added[t] for t in self.special_tokens}
        self.bos_id, self.eos_id = self.added[self.bos_token], self.added[self.eos_token]
        pieces = sorted(self.added, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(re.escape(p) for p in pieces) + ")")
        self._unk_length = len(self.sp.encode(self.unk_token, out_type=str))

    @property
    def vocab_size(self) -> int:
        return self.sp.GetPieceSize()

    # -- encoding -----------------------------------------------------------------------------------
    def tokens(self, text: str) -> list[str]:
        """The token strings of ``text`` (no BOS/EOS)."""
        if not text:
            return []
        if not self.legacy:
            text = UNDERLINE + text.replace(UNDERLINE, " ")
        out: list[str] = []
        for part in self._split.split(text):
            if not part:
                continue
            out.extend([part] if part in self.added else self._encode_piece(part))
        if not self.legacy and len(out) > 1 and out[0] == UNDERLINE and out[1] in self.special_tokens:
            out = out[1:]
        return out

    def _encode_piece(self, text: str) -> list[str]:
        pieces = self.sp.encode(text, out_type=str)
        if self.legacy or not text.startswith((UNDERLINE, " ")):
            return pieces
        # the dummy prefix is off: encode behind "<unk>" so a leading "▁" stays part of the first piece
        pieces = self.sp.encode(self.unk_token + text, out_type=str)
        return pieces[self._unk_length:] if len(pieces) >= self._unk_length else pieces

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` with BOS / EOS as configured (``tokenizer(text).input_ids``)."""
        ids = [self.added[t] if t in self.added else self.sp.PieceToId(t) for t in self.tokens(text)]
        return ([self.bos_id] if self.add_bos else []) + ids + ([self.eos_id] if self.add_eos else [])

    def tokenize_with_image(self, prompt: str) -> list[int]:
        """LLaVA's ``tokenizer_image_token``: ``IMAGE_TOKEN_INDEX`` where ``<image>`` stands."""
        chunks = [self.encode(chunk) if chunk else [self.bos_id] for chunk in prompt.split(IMAGE_PLACEHOLDER)]
        offset = 1 if chunks and chunks[0] and chunks[0][0] == self.bos_id else 0
        ids = chunks[0][:offset]
        for position, chunk in enumerate(chunks):
            if position:
                ids.append(IMAGE_TOKEN_INDEX)
            ids.extend(chunk[offset:])
        return ids

    # -- decoding -----------------------------------------------------------------------------------
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        tokens = [self._id_to_token(i) for i in ids if not (skip_special_tokens and i in self.special_ids)]
        tokens = [t for t in tokens if t is not None]
        standalone = {t for t in self.added if t not in self.special_tokens}
        texts: list[str] = []
        current: list[str] = []
        for token in tokens:
            if token in standalone:
                if current:
                    texts.append(self._tokens_to_string(current))
                    current = []
                texts.append(token)
            else:
                current.append(token)
        if current:
            texts.append(self._tokens_to_string(current))
        text = (" " if self.spaces_between_special else "").join(texts)
        if self.clean_up_spaces:
            for before, after in _CLEAN_UP:
                text = text.replace(before, after)
        return text

    def _id_to_token(self, index: int) -> str | None:
        if index in self.added_by_id:
            return self.added_by_id[index]
        if 0 <= index < self.sp.GetPieceSize():
            return self.sp.IdToPiece(index)
        return None  # an id the vocabulary does not have decodes to nothing

    def _tokens_to_string(self, tokens: list[str]) -> str:
        tokens = list(tokens)
        if tokens[0].startswith(UNDERLINE):
            tokens[0] = tokens[0][1:]
        out, pending, previous_special = "", [], False
        for position, token in enumerate(tokens):
            if token in self.special_tokens:
                if not previous_special and position != 0 and self.legacy:
                    out += " "
                out += self.sp.decode(pending) + token
                pending, previous_special = [], True
            else:
                pending.append(token)
                previous_special = False
        return out + self.sp.decode(pending)

    def decode_answer(self, ids: list[int], stop: str = "</s>") -> str:
        """The official eval's answer text: decode skipping special tokens, strip, cut a trailing ``stop``, strip."""
        text = self.decode(ids, skip_special_tokens=True).strip()
        if stop and text.endswith(stop):
            text = text[: -len(stop)]
        return text.strip()
