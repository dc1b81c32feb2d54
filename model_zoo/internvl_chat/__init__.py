"""InternVL-Chat 1.0 (the LLaVA-1.5 recipe with InternViT-6B), implemented natively -- no remote code.

Modules: ``config`` (the LLaVA config.json, typed and checked), ``tokenizer`` (the slow LlamaTokenizer's
behaviour on SentencePiece, and LLaVA's ``tokenizer_image_token``), ``conversation`` (templates),
``preprocess`` (pad to square + CLIPImageProcessor), ``network`` (tower -> projector -> LlamaForCausalLM),
``loader`` (checkpoint and tower resolution, streamed weights, memory check), ``adapter`` (the
``ChatModel``), ``tiny`` (tiny checkpoints in the released layout). Registered names live in
``model_zoo/internvl_chat_models.py``.
"""
from model_zoo.internvl_chat.adapter import InternVLChatModel, load_internvl_chat

__all__ = ["InternVLChatModel", "load_internvl_chat"]
