"""Retrieval-scoring time and peak memory for growing sizes (images x captions, 5 captions each).

    python benchmarks/bench_retrieval_metrics.py [--dim 768] [--budget 600] [--threads N]

Each size runs in a fresh process so its peak resident memory is its own. Sizes grow from 1k x 5k
until the next one would not finish inside ``--budget`` seconds (predicted from the last timing,
which scales with images x captions).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SIZES = [(1_000, 5_000), (5_000, 25_000), (10_000, 50_000), (25_000, 125_000), (50_000, 250_000), (100_000, 500_000)]


def one_size(n_images: int, n_texts: int, dim: int) -> dict:
    import torch
    import torch.nn.functional as F

    from internvl_bench.metrics.retrieval import retrieval_recalls

    generator = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(n_images, dim, generator=generator), dim=-1)
    texts = F.normalize(torch.randn(n_texts, dim, generator=generator), dim=-1)
    text_to_image = torch.arange(n_texts) * n_images // n_texts
    started = time.perf_counter()
    retrieval_recalls(images, texts, text_to_image)
    seconds = time.perf_counter() - started
    inputs_gib = (images.numel() + texts.numel()) * 4 / 2**30
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"images": n_images, "texts": n_texts, "seconds": seconds, "peak_rss_gib": peak_gib, "inputs_gib": inputs_gib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=768, help="embedding width (InternVL-C/G: 768)")
    parser.add_argument("--budget", type=float, default=600, help="seconds for the whole benchmark")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(*args.one, args.dim)))
        return
    started = time.perf_counter()
    print(f"{'images':>8} {'captions':>9} {'seconds':>9} {'peak RSS GiB':>13} {'embeddings GiB':>15}")
    previous = None
    for n_images, n_texts in SIZES:
        if previous is not None:
            predicted = previous["seconds"] * (n_images * n_texts) / (previous["images"] * previous["texts"])
            if time.perf_counter() - started + predicted > args.budget:
                print(f"stopping: {n_images} x {n_texts} would take about {predicted:.0f} s, past the {args.budget:.0f} s budget")
                break
        out = subprocess.run(
            [sys.executable, __file__, "--dim", str(args.dim), "--one", str(n_images), str(n_texts)],
            capture_output=True, text=True, check=True,
        )
        previous = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n_images:>8} {n_texts:>9} {previous['seconds']:>9.2f} {previous['peak_rss_gib']:>13.2f} {previous['inputs_gib']:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
