"""A test-only chat task that drives ``ctx.generate`` through the real runner and CLI.

Importing this module registers ``chat_probe``: two questions about every image in ``--data-root``
(so questions share images), answers scored by nothing but their length. Run as a script it is the CLI
(``python _chat_probe.py run --task chat_probe ...``), which is how the torchrun and kill tests start it.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from internvl_bench.data import ImageFileSource
from internvl_bench.errors import BenchError
from internvl_bench.generation import GenerationOptions, GenerationRequest
from internvl_bench.runner import RunContext
from internvl_bench.task import TASKS, Task, TaskResult, register_task

QUESTIONS = ["Is there a {colour} shape in the image? Answer the question using a single word or phrase.",
             "Describe the image."]


class SlowImages(ImageFileSource):
    """Sleeps before each decode, so a test can kill a run between batches."""

    def __init__(self, paths, sleep: float) -> None:
        super().__init__(paths)
        self.sleep = sleep

    def load(self, index: int):
        time.sleep(self.sleep)
        return super().load(index)


class ChatProbe(Task):
    """Test-only: two questions per image, answer lengths as the metric."""

    name = "chat_probe"
    model_kind = "chat"

    @dataclass
    class Options:
        max_new_tokens: int = field(default=6, metadata={"help": "tokens per answer"})
        sleep: float = field(default=0.0, metadata={"help": "seconds per image load"})
        question: str = field(default="", metadata={"help": "replace both questions by this text"})
        skip_bad_items: bool = field(default=False, metadata={"help": "skip images that do not decode"})

    def variants(self) -> list[str]:
        return ["all"]

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        if ctx.config.data_root is None:
            raise BenchError("chat_probe needs --data-root")
        paths = sorted(Path(ctx.config.data_root).glob("*.png"))
        source = SlowImages(paths, self.options.sleep)
        options = GenerationOptions(max_new_tokens=self.options.max_new_tokens)
        requests = [GenerationRequest(f"{p.stem}-{q}", source, i,
                                      self.options.question or text.format(colour=p.stem.split("_")[0]), options)
                    for i, p in enumerate(paths) for q, text in enumerate(QUESTIONS)]
        answers = ctx.generate(requests, skip_errors=self.options.skip_bad_items)
        kept = [a for a in answers if a.error is None]
        lengths = [len(a.token_ids) for a in kept]
        predictions = [a.prediction(parsed=a.raw_output, target=None, score=len(a.token_ids)) for a in answers]
        return TaskResult(metrics={"mean_tokens": sum(lengths) / max(len(lengths), 1),
                                   "stopped_at_eos": 100.0 * sum(a.finish_reason == "eos" for a in kept) / max(len(kept), 1)},
                          n_samples=len(kept), predictions=predictions,
                          details={"skipped_items": len(answers) - len(kept)})


if "chat_probe" not in TASKS.names():
    register_task(ChatProbe)

if __name__ == "__main__":
    from internvl_bench.cli import main

    sys.exit(main(sys.argv[1:]))
