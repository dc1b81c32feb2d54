"""Batched greedy generation against a batch-1 loop: identical answers, and how much faster.

    .venv/bin/python benchmarks/bench_generation.py                       # tiny InternVL-Chat, CPU fp32
    python benchmarks/bench_generation.py --random-weights --arch internvl-chat-vicuna-7b \\
        --device cuda --precision bf16 --requests 64 --batch-size 16      # the real 7B shapes, random weights

Both runs answer the same requests (questions of mixed lengths about a few images) through the model's
``generate``; the script prints generated tokens per second for each, the speed-up, peak memory, and
how many answers differ (0 is required in fp32; in bf16 a near-tie may flip, which is what
``--verify-batch-invariance`` re-checks in real runs). Images are preprocessed once, outside the timings.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import model_zoo  # noqa: E402
from internvl_bench.samples import COLOURS, SHAPES, draw_shape  # noqa: E402
from model_zoo.base import PRECISIONS  # noqa: E402

QUESTIONS = ["Is there a {c} {s}? Answer the question using a single word or phrase.",
             "What colour is the {s}?",
             "Describe the image in detail: every shape, its colour, where it is and what is behind it.",
             "Is the {s} {c}? Please answer yes or no.",
             "Provide a one-sentence caption for the provided image."]


def build(args: argparse.Namespace):
    device = torch.device(args.device)
    if not args.random_weights:
        return model_zoo.load_model(args.model, checkpoint=args.checkpoint, device=device, precision=args.precision)
    from model_zoo.internvl_chat.adapter import build_random_chat
    from model_zoo.internvl_chat.tiny import CHAT_FOLDER
    from model_zoo.internvl_chat_models import ARCHITECTURES, tiny_checkpoint_root

    config, vision = ARCHITECTURES[args.arch]
    # any LLaMA SentencePiece tokenizer gives valid ids for the prompts; the tiny one needs no download
    return build_random_chat(config, vision, tiny_checkpoint_root() / CHAT_FOLDER, device, PRECISIONS[args.precision],
                             label=f"{args.arch} (random weights)")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="internvl-chat-tiny")
    parser.add_argument("--checkpoint")
    parser.add_argument("--random-weights", action="store_true", help="full-size architecture, random weights")
    parser.add_argument("--arch", default="internvl-chat-vicuna-7b", help="with --random-weights")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32, help="32: a short caption")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build(args)
    device = torch.device(args.device)
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    images = [draw_shape(c, s, size=80 + 9 * i, seed=i) for i, (c, s) in enumerate(pairs)]
    pixels = model.preprocess(images)
    rows = [i % len(images) for i in range(args.requests)]
    prompts = [model.build_prompt(QUESTIONS[i % len(QUESTIONS)].format(c=pairs[r][0], s=pairs[r][1]))
               for i, r in enumerate(rows)]
    model.generate(pixels[:2], prompts[:2], max_new_tokens=2, image_rows=[0, 1])  # warm-up

    sync(device)
    started = time.perf_counter()
    alone = [model.generate(pixels[r:r + 1], [p], max_new_tokens=args.max_new_tokens)[0] for r, p in zip(rows, prompts)]
    sync(device)
    single_s = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    order = sorted(range(len(prompts)), key=lambda i: (len(model.tokenize_prompt(prompts[i])), i))
    batched = [None] * len(prompts)
    sync(device)
    started = time.perf_counter()
    for start in range(0, len(order), args.batch_size):
        chunk = order[start:start + args.batch_size]
        used = sorted({rows[i] for i in chunk})
        slot = {r: n for n, r in enumerate(used)}
        answers = model.generate(pixels[used], [prompts[i] for i in chunk], max_new_tokens=args.max_new_tokens,
                                 image_rows=[slot[rows[i]] for i in chunk])
        for i, answer in zip(chunk, answers):
            batched[i] = answer
    sync(device)
    batch_s = time.perf_counter() - started

    tokens = sum(len(a.token_ids) for a in alone)
    differ = sum(a.token_ids != b.token_ids for a, b in zip(alone, batched))
    peak = (torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    print(f"model: {args.arch + ' (random weights)' if args.random_weights else args.model}, {args.device}, "
          f"{args.precision}, {torch.get_num_threads()} CPU threads")
    print(f"requests: {len(prompts)} ({len(images)} images), max_new_tokens {args.max_new_tokens}, "
          f"{tokens} tokens generated")
    print(f"batch 1 loop : {single_s:8.2f} s  {tokens / single_s:9.1f} tokens/s")
    print(f"batch {args.batch_size:<6} : {batch_s:8.2f} s  {tokens / batch_s:9.1f} tokens/s   "
          f"speed-up {single_s / batch_s:.2f}x")
    print(f"answers that differ from batch 1: {differ} of {len(prompts)}")
    print(f"peak memory: {peak:.2f} GiB ({'CUDA allocated' if device.type == 'cuda' else 'process RSS'})")
    if differ and args.precision == "fp32":
        sys.exit("batched answers differ from batch 1 in fp32")


if __name__ == "__main__":
    main()
