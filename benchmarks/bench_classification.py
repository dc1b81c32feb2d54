"""Zero-shot classification, end to end: this suite vs CLIP_benchmark on the same model and webdataset.

Both sides read the same generated webdataset (CLIP_benchmark layout, Caltech-101 class names and its
34 templates from clip_benchmark's package data), use the same OpenCLIP network (random weights, so
nothing is downloaded; ViT-B-32 by default), the same crop transform, fp32 on CPU, the same batch size and workers
(clamped to the shard count). Ours runs cold (empty embedding cache); the warm re-run is printed too.

Needs ``clip_benchmark`` (and its ``webdataset``/``scikit-learn`` dependencies) importable; run it in a
side environment, e.g.::

    python -m venv /tmp/cb && /tmp/cb/bin/pip install clip_benchmark==1.6.2 ...
    /tmp/cb/bin/python benchmarks/bench_classification.py --images 500
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from internvl_bench.runner import RunConfig, run_task  # noqa: E402
from model_zoo import load_model  # noqa: E402
from tests.fixtures.wds import write_webdataset  # noqa: E402


def clip_benchmark_metadata() -> tuple[list[str], list[str]]:
    """Caltech-101 class names (102) and templates (34), as shipped in clip_benchmark's package data."""
    import clip_benchmark.datasets as datasets

    folder = Path(datasets.__file__).parent
    classnames = json.loads((folder / "en_classnames.json").read_text(encoding="utf-8"))["caltech101"]
    templates = json.loads((folder / "en_zeroshot_classification_templates.json").read_text(encoding="utf-8"))["caltech101"]
    return list(classnames), list(templates)


def run_ours(arch: str, root: Path, batch_size: int, workers: int, cache_dir: Path | None) -> tuple[float, dict]:
    config = RunConfig(
        data_root=root, output_dir=root.parent / "runs", cache_dir=cache_dir, device="cpu",
        precision="fp32", batch_size=batch_size, workers=workers, progress=False,
    )
    started = time.perf_counter()
    (record,) = run_task("zeroshot_classification", f"openclip:{arch}", config, checkpoint="random", task_options={"datasets": "bench"})
    return time.perf_counter() - started, record.metrics


def run_clip_benchmark(arch: str, root: Path, batch_size: int, workers: int) -> tuple[float, dict]:
    import open_clip
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification

    started = time.perf_counter()
    model = load_model(f"openclip:{arch}", checkpoint="random", device="cpu", precision="fp32")
    dataset = build_dataset("wds/bench", root=str(root / "bench"), transform=model.image_transform("crop"), split="test")
    loader = torch.utils.data.DataLoader(dataset.batched(batch_size), batch_size=None, shuffle=False, num_workers=workers)
    metrics = zeroshot_classification.evaluate(
        model.network, loader, open_clip.get_tokenizer(arch), dataset.classes, dataset.templates, "cpu", amp=False
    )
    return time.perf_counter() - started, {k: 100 * v for k, v in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="ViT-B-32", help="open_clip architecture (random weights)")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--classes", type=int, default=24, help="first N Caltech-101 classes")
    parser.add_argument("--templates", type=int, default=34, help="first N of its 34 templates (1: food101/pets style)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    classnames, templates = clip_benchmark_metadata()
    classnames, templates = classnames[: args.classes], templates[: args.templates]
    workers = min(args.workers, args.shards)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        labels = [i % len(classnames) for i in range(args.images)]
        write_webdataset(root / "bench", labels, classnames=classnames, templates=templates, n_shards=args.shards)
        print(f"{args.images} images, {len(classnames)} classes x {len(templates)} templates, {args.arch}, "
              f"fp32 CPU, {torch.get_num_threads()} threads, batch {args.batch_size}, {workers} workers")
        theirs_s, theirs = run_clip_benchmark(args.arch, root, args.batch_size, workers)
        # cold: an empty cache folder (nothing is read, chunks are written); warm: the same run again
        ours_s, ours = run_ours(args.arch, root, args.batch_size, workers, cache_dir=Path(tmp) / "cache")
        warm_s, _ = run_ours(args.arch, root, args.batch_size, workers, cache_dir=Path(tmp) / "cache")
    print(f"CLIP_benchmark: {theirs_s:8.2f} s  acc1={theirs['acc1']:.2f} acc5={theirs['acc5']:.2f}")
    print(f"ours (cold):    {ours_s:8.2f} s  acc1={ours['acc1']:.2f} acc5={ours['acc5']:.2f}")
    print(f"ours (cached):  {warm_s:8.2f} s")
    print(f"speed-up (cold): {theirs_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
