"""``internvl-bench efficiency``: Table G, encoder speed at several resolutions.

    internvl-bench efficiency --model internvl-g [--resolutions 224,336,448] [--batch-size 128]
                              [--precision bf16] [--random-weights] [--checkpoint C] [--device cuda]

For each resolution it times, after ``--warmup`` untimed batches, ``--iters`` batches of random pixels:
the InternViT forward, the QLLaMA query forward (InternVL-G), the pooling heads, the whole image path,
and the text encoder on ``--batch-size`` texts padded to 80 tokens (tokenisation not timed). Timings
use ``torch.cuda.synchronize`` around each batch on CUDA. A 224-px checkpoint is run at 336 / 448 with
its position embeddings re-interpolated to the new grid (bicubic, float32, CLS kept).
``--random-weights`` builds the registered architecture (full size for the real models; the
architecture of ``--checkpoint FOLDER/config.json`` when given) with seeded random weights directly on the
device in the target precision, so timings need no download.

One record per resolution: ``task="efficiency"``, ``variant`` = the resolution (``"224"``), ``model`` =
the model name. Metric keys (all floats; per image / per text, averaged over the timed batches):

- ``vit_ms``: InternViT forward, ms per image
- ``qllama_ms``: QLLaMA over the learned queries (cross-attending to the ViT output), ms per image;
  only for InternVL-G models
- ``head_ms``: attention-pooling head(s) and the G-mode sum, ms per image
- ``image_ms``: the whole image path (``encode_image``), ms per image, measured end to end
- ``text_ms``: text encoder, ms per text (80 tokens)
- ``total_ms``: ``image_ms + text_ms`` (one image and one text)
- ``fps``: image-text pairs per second, ``1000 / total_ms`` (Table G's FPS)
- ``image_fps``: images per second of the image path alone, ``1000 / image_ms``
- ``vit_fps``: images per second of InternViT alone, ``1000 / vit_ms``
- ``vit_gflops``, ``image_gflops``, ``text_gflops``: model FLOPs per item (2 per multiply-add, matmuls
  and attention only)
- ``vit_tflops_per_s``, ``image_tflops_per_s``: achieved model FLOP rate
- ``vit_mfu``, ``mfu``: model FLOPs utilisation of the ViT / the image path against the device's dense
  peak for the precision (``--peak-tflops`` overrides; null where the peak is unknown, e.g. on CPU)
- ``tokens``: sequence length of InternViT at this resolution (1 + patches)
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch

from internvl_bench.errors import BenchError
from internvl_bench.records import DEFAULT_RUNS_DIR, ResultRecord, write_record

#: dense tensor-core peaks in TFLOP/s per precision, matched by substring of the CUDA device name
PEAK_TFLOPS = (
    ("H200", {"bf16": 989.0, "fp16": 989.0, "fp32": 67.0}),
    ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "fp32": 51.0}),
    ("H100 NVL", {"bf16": 835.0, "fp16": 835.0, "fp32": 60.0}),
    ("H100", {"bf16": 989.0, "fp16": 989.0, "fp32": 67.0}),
    ("A100", {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.0, "fp16": 362.0, "fp32": 91.6}),
    ("A10", {"bf16": 125.0, "fp16": 125.0, "fp32": 31.2}),
)
TASK_VERSION = "1"
#: the metrics that are counts, not measurements: a baseline may pin these, never the timings
UNTIMED_METRICS = ("vit_gflops", "image_gflops", "text_gflops", "tokens")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("efficiency", help="Table G: time the InternVL encoders at several resolutions")
    p.add_argument("--model", required=True, help="registered InternVL model, e.g. internvl-g")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder, .pth or OWNER/NAME@REVISION")
    p.add_argument("--resolutions", default="224,336,448", help="comma-separated image sizes")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp16", "fp32"))
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--attention", default="auto", choices=("auto", "flash", "sdpa", "math"))
    p.add_argument("--random-weights", action="store_true",
                   help="build the architecture with random weights instead of loading a checkpoint")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches before timing")
    p.add_argument("--iters", type=int, default=10, help="timed batches")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: looked up)")
    p.add_argument("--output-dir", type=Path, default=DEFAULT_RUNS_DIR, help="where records are written")
    p.set_defaults(func=run)


# -- FLOP counting ----------------------------------------------------------------------------------
def vit_flops(config, size: int) -> float:
    """Model FLOPs of InternViT for one image of ``size`` px (2 per multiply-add)."""
    v = config.vision
    n = (size // v.patch_size) ** 2 + 1
    c, i = v.hidden_size, v.intermediate_size
    per_layer = n * (2 * 3 * c * c + 2 * c * c + 2 * 2 * c * i) + 2 * 2 * n * n * c
    patch = (n - 1) * 2 * c * v.num_channels * v.patch_size ** 2
    return float(v.num_hidden_layers * per_layer + patch)


def pooling_flops(dim: int, tokens: int, out_dim: int) -> float:
    return float(2 * dim * dim * (1 + 2 * tokens) + 2 * 2 * tokens * dim + 2 * dim * out_dim)


def qllama_query_flops(config, size: int) -> float:
    """QLLaMA over the learned queries, cross-attending to the ViT tokens of a ``size``-px image."""
    q, c = config.qllama, config.vision.hidden_size
    nq, d, i = config.num_query_token, q.hidden_size, q.intermediate_size
    n = (size // config.vision.patch_size) ** 2 + 1
    self_layer = nq * (2 * 4 * d * d + 2 * 3 * d * i) + 2 * 2 * nq * nq * d
    cross_layer = nq * 2 * 2 * d * d + n * 2 * 2 * c * d + 2 * 2 * nq * n * d
    return float(q.num_hidden_layers * self_layer + len(config.cross_attention_layers()) * cross_layer)


def text_flops(config, length: int) -> float:
    q = config.qllama
    d, i = q.hidden_size, q.intermediate_size
    return float(q.num_hidden_layers * (length * (2 * 4 * d * d + 2 * 3 * d * i) + 2 * 2 * length * length * d)
                 + 2 * d * config.clip_embed_dim)


def peak_tflops(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            return peaks[precision]
    return None


# -- timing -----------------------------------------------------------------------------------------
def _timed(fn, device: torch.device, warmup: int, iters: int) -> float:
    """Mean seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = 0.0
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        total += time.perf_counter() - start
    return total / max(iters, 1)


def measure(model, size: int, batch_size: int, warmup: int, iters: int, peak: float | None) -> dict[str, float]:
    """Table G metrics of ``model`` (an ``InternVLModel``) at ``size`` px; see the module docstring."""
    net, device, dtype = model.net, model.device, model.dtype
    config = net.config
    gen = torch.Generator(device="cpu").manual_seed(0)
    pixels = torch.randn(batch_size, 3, size, size, generator=gen).to(device=device, dtype=dtype)
    texts = [("a photo of " + "a small dog and " * 30)[: 20 + (k % 7) * 40] for k in range(batch_size)]
    ids = model.tokenize(texts).to(device)
    is_g = model.mode == "G"
    metrics: dict[str, float] = {}
    with torch.inference_mode():
        vision = net.vision_tokens(pixels)
        t_vit = _timed(lambda: net.vision_tokens(pixels), device, warmup, iters)
        metrics["vit_ms"] = 1000 * t_vit / batch_size
        if is_g:
            t_q = _timed(lambda: net.query_states(vision), device, warmup, iters)
            metrics["qllama_ms"] = 1000 * t_q / batch_size
            queries = net.query_states(vision)

            def heads():
                a = net.clip_projector(vision)
                b = net.clip_projector2(queries)
                return a / a.norm(dim=1, keepdim=True) + b / b.norm(dim=1, keepdim=True)
        else:
            def heads():
                return net.clip_projector(vision)
        metrics["head_ms"] = 1000 * _timed(heads, device, warmup, iters) / batch_size
        image_fn = (lambda: net.image_features_g(pixels)) if is_g else (lambda: net.image_features_c(pixels))
        metrics["image_ms"] = 1000 * _timed(image_fn, device, warmup, iters) / batch_size
        metrics["text_ms"] = 1000 * _timed(lambda: net.text_features(ids), device, warmup, iters) / batch_size
    tokens = (size // config.vision.patch_size) ** 2 + 1
    f_vit = vit_flops(config, size)
    f_image = f_vit + pooling_flops(config.vision.hidden_size, tokens, config.clip_embed_dim)
    if is_g:
        f_image += qllama_query_flops(config, size) + pooling_flops(
            config.qllama.hidden_size, config.num_query_token, config.clip_embed_dim)
    metrics.update(
        total_ms=metrics["image_ms"] + metrics["text_ms"],
        fps=1000.0 / (metrics["image_ms"] + metrics["text_ms"]),
        image_fps=1000.0 / metrics["image_ms"],
        vit_fps=1000.0 / metrics["vit_ms"],
        vit_gflops=f_vit / 1e9,
        image_gflops=f_image / 1e9,
        text_gflops=text_flops(config, ids.shape[1]) / 1e9,
        vit_tflops_per_s=f_vit / (metrics["vit_ms"] / 1000) / 1e12,
        image_tflops_per_s=f_image / (metrics["image_ms"] / 1000) / 1e12,
        tokens=float(tokens),
    )
    metrics["vit_mfu"] = metrics["vit_tflops_per_s"] / peak if peak else math.nan
    metrics["mfu"] = metrics["image_tflops_per_s"] / peak if peak else math.nan
    return metrics


def _build(args, device: torch.device):
    from model_zoo import load_model
    from model_zoo.internvl.adapter import InternVLModel, build_random
    from model_zoo.base import PRECISIONS

    if args.random_weights:
        from model_zoo.internvl_models import ARCHITECTURES, TINY_TOKENIZER

        if args.model not in ARCHITECTURES:
            raise BenchError(f"--random-weights knows the InternVL models {', '.join(sorted(ARCHITECTURES))}; "
                             f"got '{args.model}'")
        config, mode = ARCHITECTURES[args.model]
        if args.checkpoint and Path(args.checkpoint, "config.json").is_file():  # that checkpoint's architecture
            from model_zoo.internvl.config import load_config

            config = load_config(Path(args.checkpoint, "config.json"))
        model = build_random(config, TINY_TOKENIZER, mode, device, PRECISIONS[args.precision], args.attention,
                             label=f"{args.model} (random weights)")
        model.name = args.model
        return model
    model = load_model(args.model, checkpoint=args.checkpoint, device=device, precision=args.precision)
    if not isinstance(model, InternVLModel):
        raise BenchError(f"efficiency times InternVL models only; '{args.model}' is not one")
    model.set_attention_backend(args.attention)
    return model


def run(args: argparse.Namespace) -> int:
    from internvl_bench.provenance import environment

    try:
        sizes = [int(s) for s in str(args.resolutions).split(",") if s.strip()]
    except ValueError as exc:
        raise BenchError(f"--resolutions '{args.resolutions}': expected comma-separated integers like 224,336,448") from exc
    if not sizes or args.batch_size < 1 or args.iters < 1 or args.warmup < 0:
        raise BenchError("efficiency needs at least one resolution, --batch-size >= 1, --iters >= 1, --warmup >= 0")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = _build(args, device)
    patch = model.config.vision.patch_size
    for size in sizes:
        if size % patch:
            raise BenchError(f"--resolutions: {size} is not a multiple of the patch size {patch}")
    peak = args.peak_tflops or peak_tflops(device, args.precision)
    print(f"{model.name}  {args.precision}  batch {args.batch_size}  attention {model.attention}  "
          f"device {environment(device)['device']}  peak {peak or 'unknown'} TFLOP/s")
    for size in sizes:
        metrics = measure(model, size, args.batch_size, args.warmup, args.iters, peak)
        qllama = f"  qllama {metrics['qllama_ms']:.3f} ms" if "qllama_ms" in metrics else ""
        mfu = f"{100 * metrics['mfu']:.1f}%" if not math.isnan(metrics["mfu"]) else "n/a"
        print(f"  {size:4d}px  vit {metrics['vit_ms']:.3f} ms{qllama}  image {metrics['image_ms']:.3f} ms/img  "
              f"text {metrics['text_ms']:.3f} ms  pairs {metrics['fps']:.1f} FPS  MFU {mfu}")
        options: dict[str, Any] = {
            "batch_size": args.batch_size, "precision": args.precision, "resolution": size,
            "warmup": args.warmup, "iters": args.iters, "random_weights": bool(args.random_weights),
            "attention": model.attention, "peak_tflops": peak, "text_length": model.tokenizer.max_length,
        }
        record = ResultRecord(
            task="efficiency", variant=str(size), model=args.model, metrics=metrics,
            n_samples=args.batch_size * args.iters, options=options, task_version=TASK_VERSION,
            provenance={**model.provenance(), **environment(device)}, checkpoint=args.checkpoint,
            details={"mode": model.mode, "tokens": int(metrics["tokens"]),
                     "timed_metrics": sorted(k for k in metrics if k not in UNTIMED_METRICS)},
        )
        print(f"    -> {write_record(record, args.output_dir)}")
    return 0
