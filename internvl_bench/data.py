"""Image sources: what the runner encodes, loaded lazily inside data-loader workers.

An ``ImageSource`` is an indexable list of items; an item is one image, or a list of frames (a
video), whose embedding is the mean of the frames' un-normalised features. ``load`` runs in worker
processes and raises ``BenchError`` naming the file on bad input. ``fingerprint`` identifies the
items cheaply (paths, sizes, modification times) and keys the embedding cache.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from internvl_bench.errors import BenchError

Item = Image.Image | list[Image.Image]


class ImageSource(ABC):
    """Indexable items to encode; subclasses define how one item is read."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> Item:
        """Read item ``index`` (an image, or a list of video frames)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A hash that changes whenever an item's content may have changed."""

    def item_digest(self, index: int) -> str:
        """sha256 of item ``index``'s content: keys the response cache, so a moved or renamed image still hits.
        Default: the decoded pixels (sources over files override it with the file bytes)."""
        item = self.load(index)
        digest = hashlib.sha256()
        for frame in item if isinstance(item, list) else [item]:
            digest.update(f"{frame.mode}:{frame.size}".encode())
            digest.update(frame.tobytes())
        return digest.hexdigest()


class ImageFileSource(ImageSource):
    """Images read from files, in the order given."""

    def __init__(self, paths: Sequence[Path | str]) -> None:
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        return open_image(self.paths[index])

    def fingerprint(self) -> str:
        return files_fingerprint(self.paths)

    def item_digest(self, index: int) -> str:
        path = self.paths[index]
        try:
            return file_sha256(path)
        except BenchError:
            raise BenchError(f"{path}: image not found; place the dataset's images there (see the task's docs)") from None


def open_image(path: Path) -> Image.Image:
    """Decode ``path`` fully (so truncation is caught here) and return it as RGB."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise BenchError(f"{path}: image not found; place the dataset's images there (see the task's docs)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BenchError(f"{path}: corrupt or unreadable image ({exc}); replace the file") from None


def files_fingerprint(paths: Sequence[Path]) -> str:
    """sha256 over (path, size, mtime) of each file; missing files hash as absent (load reports them)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


@lru_cache(maxsize=None)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path | str) -> str:
    """sha256 of a file's bytes (memoised per path, size and mtime): recorded for annotation files."""
    try:
        stat = os.stat(path)
    except OSError:
        raise BenchError(f"{path}: file not found") from None
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


def read_lines(path: Path, what: str, hint: str) -> list[str]:
    """Lines of a UTF-8 text file without line ends; one-line errors for missing/undecodable files.

    Lines are split on \\n, \\r\\n and \\r only (as Python's file iteration does, and the official
    readers), not on the Unicode separators ``str.splitlines`` also honours.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle]
    except FileNotFoundError:
        raise BenchError(f"{path}: {what} not found; {hint}") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: {what} is not UTF-8 ({exc.reason} at byte {exc.start}); re-download it") from None


class BytesImageSource(ImageSource):
    """Images held as encoded bytes (parquet datasets such as lmms-lab/MME); ``names`` label them in errors."""

    def __init__(self, blobs: Sequence[bytes], names: Sequence[str]) -> None:
        self.blobs, self.names = list(blobs), list(names)

    def __len__(self) -> int:
        return len(self.blobs)

    def load(self, index: int) -> Image.Image:
        try:
            with Image.open(io.BytesIO(self.blobs[index])) as image:
                image.load()
                return image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BenchError(f"{self.names[index]}: corrupt or unreadable image ({exc}); re-download the dataset") from None

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for blob in self.blobs:
            digest.update(hashlib.sha256(blob).digest())
        return digest.hexdigest()

    def item_digest(self, index: int) -> str:
        return hashlib.sha256(self.blobs[index]).hexdigest()


def read_json(path: Path, what: str, hint: str) -> Any:
    """A JSON file, with one-line errors naming the file (and the line and column of a syntax error)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise BenchError(f"{path}: {what} not found; {hint}") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: line {exc.lineno} column {exc.colno}: {what} is not valid JSON ({exc.msg}); "
                         "re-download it") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: {what} is not UTF-8 ({exc.reason}); re-download it") from None


def read_jsonl(path: Path, what: str, hint: str, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """A JSON-lines file (one object per non-blank line); a bad line or a missing ``required`` key is a
    one-line error naming the file and the line number."""
    rows = []
    for number, line in enumerate(read_lines(path, what, hint), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchError(f"{path}: line {number}: not valid JSON ({exc.msg}); fix or re-download the file") from None
        if not isinstance(row, dict):
            raise BenchError(f"{path}: line {number}: expected a JSON object")
        missing = [key for key in required if key not in row]
        if missing:
            raise BenchError(f"{path}: line {number}: missing '{missing[0]}' (each line needs {', '.join(required)})")
        rows.append(row)
    return rows
