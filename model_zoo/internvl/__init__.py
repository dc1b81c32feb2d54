"""InternVL-C / InternVL-G (CVPR 2024), implemented from the paper and the official checkpoints' format.

Modules: ``config`` (typed config parsed from the official config.json), ``layers`` (RMSNorm, attention
backends), ``vision`` (InternViT), ``qllama`` (QLLaMA), ``network`` (heads and the C / G / text forward
paths), ``tokenizer`` (SentencePiece wrapper), ``checkpoint`` (sources, streamed loading, key checks,
``.pth`` key mapping), ``adapter`` (the ``ContrastiveModel``), ``tiny`` (tiny official-format checkpoints).
The registered names live in ``model_zoo/internvl_models.py``.
"""
from model_zoo.internvl.adapter import InternVLModel, build_random, load_internvl
from model_zoo.internvl.config import FULL_SIZE, TINY, InternVLConfig, load_config

__all__ = ["FULL_SIZE", "TINY", "InternVLConfig", "InternVLModel", "build_random", "load_config", "load_internvl"]
