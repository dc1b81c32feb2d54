"""Video decoding and frame sampling for video-text retrieval (Table C).

Frame sampling follows InternVL's ``video_retrieval/test_msrvtt.py``: with N frames and k samples,
``interval = ceil(N / k)`` and the indices are ``range(0, N, interval) + interval // 2`` -- the centres
of k equal intervals (k = 1 gives the central frame ``N // 2``). That formula yields k in-range
indices for every MSR-VTT video, but not for all (N, k): it gives fewer than k indices or one index
past the end when N < k and for some short videos (for k = 8, 49 values of N up to 105). The official
script asserts there. ``sample_indices`` keeps the official indices whenever they are valid and
otherwise applies a named policy:

- ``centres`` (default): the same interval-centre rule without rounding the interval up,
  ``floor((j + 0.5) * N / k)`` for j < k -- k in-range, non-decreasing indices spread over the whole
  video; with N < k frames are repeated evenly. It equals the official rule whenever k divides N.
- ``error``: refuse the video like the official script (a ``BenchError``, or a skipped video).

Two decoding backends return identical RGB frames on H.264/MPEG-4 test videos (checked in
``tests/tasks/test_msrvtt.py``): ``decord`` (the official script's reader) and ``pyav`` (fallback
when decord is not installed). Both define N as decord does: the number of packets of the video
stream, found by demuxing the whole file (no decoding; the header's ``nb_frames`` is not used), and
frame i is the i-th in presentation order. ``auto`` picks decord when importable and logs which one won. Decoding runs in data-loader workers: ``VideoFrameSource.load`` returns the sampled
frames as PIL images, and the runner averages their un-normalised features.

Adding a backend: a subclass of ``VideoBackend`` with ``frame_count`` and ``read_frames``, added to
``BACKENDS``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from internvl_bench.data import ImageSource, files_fingerprint
from internvl_bench.errors import BenchError

log = logging.getLogger(__name__)

SAMPLING_POLICIES = ("centres", "error")


def official_indices(n_frames: int, k: int) -> list[int]:
    """The official script's indices, before its validity assertion (may be fewer than k or reach N)."""
    interval = math.ceil(n_frames / k)
    return [start + interval // 2 for start in range(0, n_frames, interval)]


def is_regular(n_frames: int, k: int) -> bool:
    """True when the official formula gives exactly k indices, all below ``n_frames``."""
    indices = official_indices(n_frames, k)
    return len(indices) == k and indices[-1] < n_frames


def sample_indices(n_frames: int, k: int, policy: str = "centres") -> list[int]:
    """k frame indices of a video with ``n_frames`` frames (see the module docstring for ``policy``)."""
    if k < 1:
        raise BenchError(f"cannot sample {k} frames per video; use a positive frame count")
    if n_frames < 1:
        raise ValueError("a video without frames has no indices")
    if is_regular(n_frames, k):
        return official_indices(n_frames, k)
    if policy == "centres":
        return [(2 * j + 1) * n_frames // (2 * k) for j in range(k)]
    if policy == "error":
        raise ValueError(f"the official sampling of {k} frames fails for a {n_frames}-frame video")
    raise ValueError(f"unknown sampling policy {policy!r}; choose from {SAMPLING_POLICIES}")


class VideoBackend(ABC):
    """Reads frame counts and sampled frames; raises ``BenchError`` naming the file on bad input."""

    name: str

    @abstractmethod
    def frame_count(self, path: Path) -> int:
        """N, the number of frames the sampler divides (demuxed, not decoded)."""

    @abstractmethod
    def read_frames(self, path: Path, pick: Callable[[int], Sequence[int]]) -> list[np.ndarray]:
        """RGB uint8 [H, W, 3] frames at ``pick(N)`` (repeats allowed, in that order); opens the file once."""


class DecordBackend(VideoBackend):
    """decord's ``VideoReader`` on the file path (the official script reads the same bytes)."""

    name = "decord"

    def _open(self, path: Path):  # noqa: ANN202 - decord has no type stubs
        import decord

        _check_exists(path)
        try:
            return decord.VideoReader(str(path))
        except Exception as exc:  # decord raises DECORDError/RuntimeError carrying ffmpeg's text
            raise _unreadable(path, exc) from None

    def frame_count(self, path: Path) -> int:
        return len(self._open(path))

    def read_frames(self, path: Path, pick: Callable[[int], Sequence[int]]) -> list[np.ndarray]:
        reader = self._open(path)
        indices = list(pick(len(reader)))
        try:
            return list(reader.get_batch(indices).asnumpy())
        except Exception as exc:
            raise _unreadable(path, exc) from None


class PyAVBackend(VideoBackend):
    """PyAV, decoding sequentially from the start and keeping the sampled frames."""

    name = "pyav"

    def frame_count(self, path: Path) -> int:
        import av

        _check_exists(path)
        try:
            with av.open(str(path)) as container:
                return _stream_frame_count(container)
        except (av.FFmpegError, IndexError) as exc:
            raise _unreadable(path, exc) from None

    def read_frames(self, path: Path, pick: Callable[[int], Sequence[int]]) -> list[np.ndarray]:
        import av

        indices = list(pick(self.frame_count(path)))
        wanted, last = set(indices), max(indices)
        frames: dict[int, np.ndarray] = {}
        decoded = 0
        try:
            with av.open(str(path)) as container:  # reopened: decoding starts at the first packet
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    if decoded in wanted:
                        frames[decoded] = frame.to_ndarray(format="rgb24")
                    decoded += 1
                    if decoded > last:
                        break
        except (av.FFmpegError, IndexError) as exc:
            raise _unreadable(path, exc) from None
        if last not in frames:
            raise BenchError(f"{path}: truncated video (frame {last} requested, {decoded} decodable); replace the file")
        return [frames[i] for i in indices]


def _stream_frame_count(container) -> int:  # noqa: ANN001 - av container
    """Packets of the first video stream, demuxed without decoding: decord's frame count."""
    if not container.streams.video:
        raise IndexError("no video stream")
    stream = container.streams.video[0]
    count = sum(1 for packet in container.demux(stream) if packet.size)
    if count < 1:
        raise IndexError("no video frames")
    if count < stream.frames:  # PyAV ends demuxing quietly at a cut; decord fails there
        raise IndexError(f"truncated: {count} of the {stream.frames} frames in the index are present")
    return count


BACKENDS: dict[str, type[VideoBackend]] = {"decord": DecordBackend, "pyav": PyAVBackend}
_MODULES = {"decord": "decord", "pyav": "av"}


def resolve_backend(name: str) -> VideoBackend:
    """The backend called ``name``; ``auto`` = decord if installed, else PyAV (logged)."""
    if name == "auto":
        for candidate in ("decord", "pyav"):
            if importlib.util.find_spec(_MODULES[candidate]) is not None:
                if candidate != "decord":
                    log.warning("decord is not installed; decoding videos with PyAV (identical frames on H.264)")
                return BACKENDS[candidate]()
        raise BenchError("no video decoder installed: pip install decord (or av)")
    if name not in BACKENDS:
        raise BenchError(f"unknown video backend '{name}'; choose auto, {', '.join(BACKENDS)}")
    if importlib.util.find_spec(_MODULES[name]) is None:
        raise BenchError(f"video backend '{name}' is not installed: pip install {_MODULES[name]}")
    return BACKENDS[name]()


class VideoFrameSource(ImageSource):
    """Videos as items: ``load(i)`` decodes k sampled frames of video i (runs in data-loader workers)."""

    def __init__(self, paths: Sequence[Path | str], frames: int, backend: VideoBackend, policy: str = "centres") -> None:
        if policy not in SAMPLING_POLICIES:
            raise BenchError(f"unknown frame sampling policy '{policy}'; choose from {', '.join(SAMPLING_POLICIES)}")
        self.paths = [Path(p) for p in paths]
        self.frames = frames
        self.backend = backend
        self.policy = policy

    def __len__(self) -> int:
        return len(self.paths)

    def pick(self, path: Path, n_frames: int) -> list[int]:
        """The indices decoded from ``path`` given its frame count (BenchError where the policy refuses)."""
        if n_frames < 1:
            raise BenchError(f"{path}: video has no frames or no frame count; replace the file")
        try:
            return sample_indices(n_frames, self.frames, self.policy)
        except ValueError as exc:
            raise BenchError(f"{path}: {exc} (policy 'error'); use the 'centres' policy or skip bad videos") from None

    def load(self, index: int) -> list[Image.Image]:
        path = self.paths[index]
        arrays = self.backend.read_frames(path, lambda n_frames: self.pick(path, n_frames))
        return [Image.fromarray(array) for array in arrays]

    def fingerprint(self) -> str:
        digest = hashlib.sha256(files_fingerprint(self.paths).encode())
        digest.update(f"video:{self.frames}:{self.policy}:{self.backend.name}".encode())
        return digest.hexdigest()


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise BenchError(f"{path}: video not found; place the dataset's videos there (see the task's docs)")


def _unreadable(path: Path, exc: BaseException) -> BenchError:
    text = str(exc).strip()
    # decord prefixes ffmpeg's message with "[time] source.cc:line: "; keep the message itself
    reason = re.sub(r"^\[[0-9:]+\] \S+: ", "", text.splitlines()[0]) if text else type(exc).__name__
    return BenchError(f"{path}: corrupt, truncated or unreadable video ({reason[:200]}); replace the file")


class _FrameCounts(Dataset):
    """Worker-side probe: index -> (frame count, None) or (None, error message)."""

    def __init__(self, paths: Sequence[Path], backend: VideoBackend) -> None:
        self.paths, self.backend = paths, backend

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int | None, str | None]:
        try:
            return self.backend.frame_count(self.paths[index]), None
        except BenchError as exc:
            return None, str(exc)


def frame_counts(paths: Sequence[Path], backend: VideoBackend, workers: int = 0) -> list[tuple[int | None, str | None]]:
    """(N, None) or (None, error) per video, demuxed (not decoded) in data-loader workers.

    Tasks use it to fail fast on missing or unreadable videos before any encoding, and to count the
    videos whose sampling falls back from the official rule (a cached run never calls ``load``).
    """
    dataset = _FrameCounts(list(paths), backend)
    workers = min(workers, len(dataset))
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_identity)
    return list(loader)


def _identity(item: tuple[int | None, str | None]) -> tuple[int | None, str | None]:
    return item
