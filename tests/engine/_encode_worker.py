"""Subprocess body for the resume and torchrun tests: encode a source through RunContext.

usage: python _encode_worker.py IMAGE_DIR CACHE_DIR|none OUT_FILE SLEEP_SECONDS
Writes the embeddings (rank 0) to OUT_FILE and the indices this process loaded to OUT_FILE.loaded.<rank>.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import model_zoo
from internvl_bench import distributed
from internvl_bench.data import ImageFileSource
from internvl_bench.runner import RunConfig, RunContext


class SlowSource(ImageFileSource):
    """Sleeps per item and logs what it loads, so a test can kill mid-run and see what was redone."""

    def __init__(self, paths: list[Path], sleep: float, log: Path) -> None:
        super().__init__(paths)
        self.sleep, self.log = sleep, log

    def load(self, index: int):
        time.sleep(self.sleep)
        with open(self.log, "a") as handle:
            handle.write(f"{index}\n")
        return super().load(index)


def main() -> None:
    image_dir, cache, out, sleep = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    info = distributed.init_from_env("cpu")
    config = RunConfig(cache_dir=None if cache == "none" else Path(cache), device="cpu", batch_size=2, workers=0, progress=False)
    model = model_zoo.load_model("openclip:tiny-clip", checkpoint="random:0")
    ctx = RunContext(model, config, info)
    paths = sorted(image_dir.rglob("*.jpg"))
    source = SlowSource(paths, sleep, Path(f"{out}.loaded.{info.rank}"))
    embeddings = ctx.encode_images(source, "squash")
    texts = ctx.encode_texts([p.stem for p in paths])
    if info.is_main:
        torch.save({"images": embeddings, "texts": texts}, out)
    distributed.shutdown(info)


if __name__ == "__main__":
    main()
