"""Videos per second through decode + frame sampling (``VideoFrameSource.load``), as the runner loads them.

Generates ``--videos`` H.264 clips of realistic MSR-VTT size (default 320x240, 12 s at 30 fps, moving
texture, ~1 MB each) once under ``--workdir``, then times a DataLoader over them for each backend,
frame count and worker count. Items are PIL frame lists, exactly what the encoder's workers produce
before the image transform; the transform and the model are not included.

    .venv/bin/python benchmarks/bench_video_decode.py [--workers 0,1,2] [--frames 1,8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from internvl_bench.task import split_list  # noqa: E402
from internvl_bench.video import VideoFrameSource, resolve_backend  # noqa: E402
from tests.fixtures.video import write_video  # noqa: E402


class _Frames(Dataset):
    """Item i -> number of frames loaded (so only the count crosses the worker boundary)."""

    def __init__(self, source: VideoFrameSource, repeats: int) -> None:
        self.source, self.repeats = source, repeats

    def __len__(self) -> int:
        return len(self.source) * self.repeats

    def __getitem__(self, index: int) -> int:
        return len(self.source.load(index % len(self.source)))


def make_videos(workdir: Path, count: int, seconds: float, fps: int, width: int, height: int) -> list[Path]:
    paths = []
    for seed in range(count):
        path = workdir / f"clip{seed:02d}_{width}x{height}_{seconds}s_{fps}fps.mp4"
        if not path.is_file():
            write_video(path, round(seconds * fps), width, height, fps, pattern="texture", seed=seed)
        paths.append(path)
    return paths


def videos_per_second(source: VideoFrameSource, workers: int, repeats: int) -> float:
    """Steady-state rate: timed from the first item on, so worker start-up (amortised over a runner
    chunk of hundreds of videos) is left out."""
    loader = iter(DataLoader(_Frames(source, repeats), batch_size=None, num_workers=workers))
    next(loader)
    started = time.perf_counter()
    total = sum(1 for _ in loader)
    return total / (time.perf_counter() - started)


def cpu_seconds_per_video(source: VideoFrameSource) -> float:
    """CPU time (all decoder threads) per load in this process: what a shared machine cannot distort."""
    started = time.process_time()
    for index in range(len(source)):
        source.load(index)
    return (time.process_time() - started) / len(source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(".cache/bench_video"))
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the videos per measurement")
    parser.add_argument("--trials", type=int, default=3, help="measurements per cell (median reported)")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--frames", default="1,8")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--backends", default="decord,pyav")
    args = parser.parse_args()

    width, height = (int(v) for v in args.size.split("x"))
    paths = make_videos(args.workdir, args.videos, args.seconds, args.fps, width, height)
    megabytes = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    print(f"{len(paths)} clips {args.size}, {args.seconds} s at {args.fps} fps, {megabytes:.2f} MB each; "
          f"{len(paths) * args.repeats} loads per measurement (the first untimed)")
    worker_counts = [int(w) for w in split_list(args.workers)]
    print(f"videos/s: median of {args.trials} trials; CPU s/video: decode + sampling, all threads, one process\n")
    print("| backend | frames | " + " | ".join(f"videos/s, {w} workers" for w in worker_counts) + " | CPU s/video |")
    print("|---|---|" + "---|" * (len(worker_counts) + 1))
    for backend_name in split_list(args.backends):
        backend = resolve_backend(backend_name)
        for k in (int(f) for f in split_list(args.frames)):
            source = VideoFrameSource(paths, k, backend)
            rates = [
                statistics.median(videos_per_second(source, workers, args.repeats) for _ in range(args.trials))
                for workers in worker_counts
            ]
            cpu = cpu_seconds_per_video(source)
            print(f"| {backend.name} | {k} | " + " | ".join(f"{r:.1f}" for r in rates) + f" | {cpu:.3f} |")


if __name__ == "__main__":
    main()
