"""Conversation templates of the LLaVA code InternVL-Chat 1.0 was trained and evaluated with.

A single user turn with the image first, rendered as LLaVA's ``SeparatorStyle.TWO`` does for a message
``"<image>\\n" + question`` followed by an empty assistant turn::

    {system}{sep}{user}: <image>\\n{question}{sep}{assistant}:

The evaluation scripts of Tables E and F use ``vicuna_v1`` (``--conv-mode vicuna_v1``); ``llava_v1`` (the
"curious human" wording of LLaVA's training template) is kept as a named alternative.
"""
from __future__ import annotations

from dataclasses import dataclass

from internvl_bench.errors import unknown_name_error
from model_zoo.chat import IMAGE_PLACEHOLDER


@dataclass(frozen=True)
class Template:
    name: str
    system: str
    roles: tuple[str, str]
    sep: str = " "
    #: ends an assistant turn; generation stops at the end-of-sequence token, the eval cuts this off too
    sep2: str = "</s>"

    def render(self, question: str) -> str:
        user, assistant = self.roles
        return f"{self.system}{self.sep}{user}: {IMAGE_PLACEHOLDER}\n{question}{self.sep}{assistant}:"


TEMPLATES = {
    "vicuna_v1": Template(
        "vicuna_v1",
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions.",
        ("USER", "ASSISTANT"),
    ),
    "llava_v1": Template(
        "llava_v1",
        "A chat between a curious human and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the human's questions.",
        ("USER", "ASSISTANT"),
    ),
}
DEFAULT_TEMPLATE = "vicuna_v1"


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise unknown_name_error("conversation template", name, TEMPLATES)
    return TEMPLATES[name]
