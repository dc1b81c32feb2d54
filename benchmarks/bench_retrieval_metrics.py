"""Retrieval scoring against the bare float32 matrix product of the same shape, for growing sizes.

    python benchmarks/bench_retrieval_metrics.py [--dim 768] [--budget 3600] [--threads 1,2]
        [--sizes 1000x5000,5000x25000] [--device cpu] [--captions random|matched]

For each size (images x captions, 5 captions each, random unit embeddings; ``--captions matched``: each
caption its image plus noise, so that most queries rank in the top 10, as with a strong model) and
thread count, a fresh
process times, alternating them (``--repeats`` rounds, more for short sizes, one when a run is long)
and keeping the best of each:

- ``matmul``: the bare product ``texts @ images.T`` in float32, in row chunks of
  ``DEFAULT_MAX_CHUNK_BYTES`` written into one reused buffer and discarded (all of it at once up to
  that size) -- the floor for any scorer within the same memory bound;
- ``scoring``: ``retrieval_ranks`` end to end (positive scores, the product tile by tile, both
  directions' counts);

and prints both, their ratio and the scoring's peak resident memory (the embeddings included). Sizes
grow from 1k x 5k until the next one would not finish inside ``--budget`` seconds (predicted from the
last timing, which scales with images x captions). Timings on a machine shared with other work are
noisy: compare the columns of one line, which ran side by side.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SIZES = [(1_000, 5_000), (5_000, 25_000), (10_000, 50_000), (25_000, 125_000), (50_000, 250_000), (100_000, 500_000)]
#: repeat a measurement only while one run is shorter than this (seconds)
REPEAT_BELOW = 20.0
#: short sizes: keep alternating up to this many rounds, or until this many seconds are spent
MAX_ROUNDS, SHORT_SECONDS = 20, 10.0


def reset_peak_rss() -> None:
    """Start a new resident-memory peak (Linux ``clear_refs`` 5), so the scoring's own is read."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


#: ``--captions matched``: noise norm added to a caption's image embedding (t2i R@1 about 0.9 at 1k x 5k)
MATCHED_NOISE = 6.0


def one_size(n_images: int, n_texts: int, dim: int, threads: int, device: str, repeats: int, captions: str) -> dict:
    import torch
    import torch.nn.functional as F

    from internvl_bench.metrics.retrieval import (
        DEFAULT_MAX_CHUNK_BYTES,
        retrieval_ranks,
    )

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(n_images, dim, generator=generator), dim=-1)
    texts = torch.randn(n_texts, dim, generator=generator)
    text_to_image = torch.arange(n_texts) * n_images // n_texts
    if captions == "matched":
        texts = images[text_to_image] + MATCHED_NOISE / dim**0.5 * texts
    images, texts = images.to(device), F.normalize(texts, dim=-1).to(device)
    chunk = max(1, min(n_texts, DEFAULT_MAX_CHUNK_BYTES // (4 * n_images)))

    def synchronize() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    def product() -> None:
        buffer = torch.empty(chunk * n_images, device=device)
        for r0 in range(0, n_texts, chunk):
            r1 = min(r0 + chunk, n_texts)
            torch.mm(texts[r0:r1], images.T, out=buffer[: (r1 - r0) * n_images].view(r1 - r0, n_images))
        synchronize()

    def scoring() -> None:
        retrieval_ranks(images, texts, text_to_image, device=device)
        synchronize()

    times: dict[str, float] = {"matmul": float("inf"), "scoring": float("inf")}
    peak, spent = 0.0, 0.0
    for rounds in range(1, MAX_ROUNDS + 1):
        for name, run in (("matmul", product), ("scoring", scoring)):
            if name == "scoring":
                reset_peak_rss()
            started = time.perf_counter()
            run()
            elapsed = time.perf_counter() - started
            times[name], spent = min(times[name], elapsed), spent + elapsed
            if name == "scoring":
                peak = max(peak, peak_rss_mib())
        if max(times.values()) > REPEAT_BELOW or (rounds >= repeats and spent > SHORT_SECONDS):
            break
    return {
        "images": n_images, "texts": n_texts, "threads": threads, "matmul_s": times["matmul"],
        "scoring_s": times["scoring"], "ratio": times["scoring"] / times["matmul"], "peak_mib": peak,
        "embeddings_mib": (images.numel() + texts.numel()) * 4 / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=768, help="embedding width (InternVL-C/G: 768)")
    parser.add_argument("--budget", type=float, default=3600, help="seconds for the whole benchmark")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts, each timed")
    parser.add_argument("--sizes", help="comma-separated IMAGESxCAPTIONS (default: 1k x 5k up to 100k x 500k)")
    parser.add_argument("--device", default="cpu", help="where to score (cpu, cuda)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many alternating runs for short sizes")
    parser.add_argument("--captions", choices=["random", "matched"], default="random",
                        help="random captions, or each its image plus noise (most queries rank in the top 10)")
    parser.add_argument("--one", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(*args.one[:2], args.dim, args.one[2], args.device, args.repeats, args.captions)))
        return
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")] if args.sizes else SIZES
    started = time.perf_counter()
    print(f"{'images':>8} {'captions':>9} {'threads':>7} {'matmul s':>9} {'scoring s':>9} {'ratio':>6} "
          f"{'peak MiB':>9} {'emb MiB':>8}", flush=True)
    previous = None
    for n_images, n_texts in sizes:
        for threads in [int(t) for t in args.threads.split(",")]:
            if previous is not None:
                scale = (n_images * n_texts) / (previous["images"] * previous["texts"])
                predicted = scale * (previous["matmul_s"] + previous["scoring_s"])
                if time.perf_counter() - started + predicted > args.budget:
                    print(f"stopping: {n_images} x {n_texts} would take about {predicted:.0f} s more, "
                          f"past the {args.budget:.0f} s budget")
                    return
            command = [sys.executable, __file__, "--dim", str(args.dim), "--device", args.device, "--repeats",
                       str(args.repeats), "--captions", args.captions, "--one", str(n_images), str(n_texts), str(threads)]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{n_images:>8} {n_texts:>9} {threads:>7} {result['matmul_s']:>9.3f} {result['scoring_s']:>9.3f} "
                  f"{result['ratio']:>6.2f} {result['peak_mib']:>9.0f} {result['embeddings_mib']:>8.0f}", flush=True)
            previous = result


if __name__ == "__main__":
    main()
