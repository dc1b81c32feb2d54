"""Write ``expected.json``: CLIP_benchmark's own recalls on the test retrieval webdataset.

Run once, outside the suite, in the environment of `make install` (which installs CLIP_benchmark for
the differential tests, pinned in constraints.txt)::

    PYTHONPATH=. .venv/bin/python tests/tasks/data/retrieval_wds/make_expected.py

It builds the webdataset with ``tests.fixtures.wds.write_retrieval_webdataset`` (the parameters are
stored in the output, and the test rebuilds the same shards from them), reads it with
``clip_benchmark.datasets.builder.build_dataset("wds/...")``, embeds with the tiny seeded model the
other tests use (CLIP_benchmark's evaluator calls the OpenCLIP network directly) and scores with
``clip_benchmark.metrics.zeroshot_retrieval.evaluate``.
"""
from __future__ import annotations

import json
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

FIXTURE = {"n_images": 14, "per_image": 3, "n_shards": 3, "image_format": "png"}
MODEL, CHECKPOINT = "openclip:tiny-clip", "random:0"


def main() -> None:
    import open_clip
    from clip_benchmark.datasets import builder
    from clip_benchmark.metrics import zeroshot_retrieval

    import model_zoo
    from tests.fixtures.wds import numbered_captions, write_retrieval_webdataset

    with tempfile.TemporaryDirectory() as tmp:
        root = write_retrieval_webdataset(
            Path(tmp) / "flickr30k", numbered_captions(FIXTURE["n_images"], FIXTURE["per_image"]),
            n_shards=FIXTURE["n_shards"], image_format=FIXTURE["image_format"],
        )
        model = model_zoo.load_model(MODEL, checkpoint=CHECKPOINT)
        dataset = builder.build_dataset("wds/flickr30k", root=str(root), transform=model.image_transform("squash"),
                                        split="test", task="zeroshot_retrieval")
        loader = torch.utils.data.DataLoader(dataset.batched(5, collation_fn=builder.image_captions_collate_fn),
                                             batch_size=None, num_workers=0)
        theirs = zeroshot_retrieval.evaluate(model.network, loader, open_clip.get_tokenizer("tiny-clip"), "cpu",
                                             amp=False, recall_k_list=[1, 5, 10])
    metrics = {f"i2t_R@{k}": 100 * theirs[f"text_retrieval_recall@{k}"] for k in (1, 5, 10)}
    metrics |= {f"t2i_R@{k}": 100 * theirs[f"image_retrieval_recall@{k}"] for k in (1, 5, 10)}
    out = {
        "about": "CLIP_benchmark's recalls (percent) on the fixture webdataset; see README.md",
        "fixture": FIXTURE, "model": MODEL, "checkpoint": CHECKPOINT, "preprocess": "squash",
        "versions": {name: version(name) for name in ("clip_benchmark", "webdataset", "torch", "open_clip_torch")},
        "python": sys.version.split()[0],
        "metrics": metrics,
    }
    path = Path(__file__).with_name("expected.json")
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(path, json.dumps(metrics))


if __name__ == "__main__":
    main()
