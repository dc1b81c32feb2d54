"""Reader for the CLIP_benchmark webdataset layout, from a local folder or the Hugging Face hub.

Layout of one dataset (what ``clip_benchmark.webdataset_builder`` writes and the
``clip-benchmark/wds_<name>`` hub repositories hold)::

    <root>/classnames.txt                          one class name per line (classification)
    <root>/zeroshot_classification_templates.txt   one template per line, ``{c}`` = class name
    <root>/dataset_type.txt                        optional; ``retrieval`` for caption sets
    <root>/<split>/nshards.txt                     number of shards N
    <root>/<split>/0.tar ... <N-1>.tar             samples: ``s0000000.webp|png|jpg|jpeg`` with
                                                   ``s0000000.cls`` (integer label); caption sets
                                                   carry ``s0000000.txt`` instead: the image's
                                                   captions, one per line (``WdsIndex.captions``)

Why an index instead of streaming: the runner's encoder wants an indexable ``ImageSource`` whose
``load`` runs in data-loader workers. ``WdsIndex`` scans each shard's tar headers once (image bytes
are skipped, only the tiny label and caption members are read) and keeps, per sample, the byte range of
its image. ``WdsImageSource.load`` then reads that range with ``os.pread`` and decodes it inside the
worker, so memory stays bounded by the batch and any worker can serve any sample. Each process opens
its own descriptors (keyed by pid), so nothing is shared across a fork.

The hub copy is fetched by ``download_from_hub`` at an explicit revision; the commit it resolved to
is written to ``hub_revision.txt`` beside the data so every result can record it.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from internvl_bench.data import ImageSource, files_fingerprint, read_lines
from internvl_bench.errors import BenchError

HUB_ORGANISATION = "clip-benchmark"
HUB_REVISION_FILE = "hub_revision.txt"
#: image extensions in the order CLIP_benchmark picks them when a sample has several
IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")


@dataclass(frozen=True)
class WdsSample:
    """One sample: where its image bytes are, its class label (None when it has no ``.cls``) and its
    captions text (None when it has no ``.txt``)."""

    shard: int
    key: str
    offset: int
    size: int
    label: int | None = None
    text: str | None = None


class WebDatasetFolder:
    """One dataset in the CLIP_benchmark webdataset layout, rooted at ``root``."""

    def __init__(self, root: Path, split: str = "test") -> None:
        self.root = Path(root)
        self.split = split
        self.split_dir = self.root / split

    @staticmethod
    def is_webdataset(root: Path, split: str = "test") -> bool:
        return (Path(root) / split / "nshards.txt").is_file()

    @property
    def nshards_file(self) -> Path:
        return self.split_dir / "nshards.txt"

    def nshards(self) -> int:
        lines = [line.strip() for line in read_lines(self.nshards_file, "shard count file", self._fetch_hint()) if line.strip()]
        if len(lines) != 1 or not lines[0].isdigit() or int(lines[0]) < 1:
            raise BenchError(f"{self.nshards_file}: expected one positive integer (the shard count), got {lines[:2]!r}")
        return int(lines[0])

    def shard_paths(self) -> list[Path]:
        """Shard files listed by nshards.txt; every one must exist."""
        count = self.nshards()
        paths = [self.split_dir / f"{i}.tar" for i in range(count)]
        for path in paths:
            if not path.is_file():
                raise BenchError(
                    f"{path}: shard listed in {self.nshards_file} ({count} shards) is missing; {self._fetch_hint()}"
                )
        return paths

    def dataset_type(self) -> str:
        """``classification`` (the default when dataset_type.txt is absent), ``retrieval`` or ``multilabel``."""
        path = self.dataset_type_file
        if not path.is_file():
            return "classification"
        return path.read_text(encoding="utf-8").strip().lower() or "classification"

    @property
    def dataset_type_file(self) -> Path:
        return self.root / "dataset_type.txt"

    @property
    def classnames_file(self) -> Path:
        return self.root / "classnames.txt"

    @property
    def templates_file(self) -> Path:
        return self.root / "zeroshot_classification_templates.txt"

    def classnames(self) -> list[str]:
        return _non_empty_lines(self.classnames_file, "class name file", self._fetch_hint())

    def templates(self) -> list[str]:
        return _non_empty_lines(self.templates_file, "zero-shot template file", self._fetch_hint())

    def hub_revision(self) -> str | None:
        """The hub commit this copy was fetched at (None for data that did not come from the hub)."""
        path = self.root / HUB_REVISION_FILE
        return path.read_text(encoding="utf-8").strip() if path.is_file() else None

    def index(self) -> WdsIndex:
        return WdsIndex.scan(self.shard_paths())

    def _fetch_hint(self) -> str:
        return f"fetch the dataset again (`internvl-bench prepare ... --download`) or check the folder {self.root}"


def _non_empty_lines(path: Path, what: str, hint: str) -> list[str]:
    """Stripped non-empty lines, as CLIP_benchmark reads these files; an empty file is an error."""
    lines = [line.strip() for line in read_lines(path, what, hint) if line.strip()]
    if not lines:
        raise BenchError(f"{path}: {what} is empty; {hint}")
    return lines


@dataclass
class WdsIndex:
    """Samples of all shards in shard order, then member order within a shard."""

    shards: list[Path]
    samples: list[WdsSample]

    @classmethod
    def scan(cls, shards: list[Path]) -> WdsIndex:
        samples: list[WdsSample] = []
        for number, path in enumerate(shards):
            samples.extend(_scan_shard(number, path))
        return cls(shards, samples)

    def labels(self) -> list[int]:
        """Class label of every sample; a sample without one is an error naming its shard."""
        labels = []
        for sample in self.samples:
            if sample.label is None:
                raise BenchError(f"{self.shards[sample.shard]}: sample '{sample.key}' has no .cls label member")
            labels.append(sample.label)
        return labels

    def captions(self) -> list[list[str]]:
        """Each sample's captions: its ``.txt`` split into lines with ``str.splitlines``, as
        CLIP_benchmark's retrieval reader does (an empty file gives no captions); a sample without a
        ``.txt`` member is an error naming its shard."""
        captions = []
        for sample in self.samples:
            if sample.text is None:
                raise BenchError(f"{self.shards[sample.shard]}: sample '{sample.key}' has no .txt captions member; "
                                 "this is not a retrieval webdataset -- fetch the dataset again")
            captions.append(sample.text.splitlines())
        return captions

    def check_labels(self, n_classes: int, classnames_file: Path) -> None:
        for sample, label in zip(self.samples, self.labels()):
            if not 0 <= label < n_classes:
                raise BenchError(
                    f"{self.shards[sample.shard]}: sample '{sample.key}' has label {label}, outside the "
                    f"{n_classes} classes of {classnames_file}; the shards and class list do not match"
                )

    def image_source(self) -> WdsImageSource:
        return WdsImageSource(self.shards, [(s.shard, s.offset, s.size, s.key) for s in self.samples])


def _scan_shard(number: int, path: Path) -> list[WdsSample]:
    """Group a tar's members by key (file name up to its first dot, as webdataset does)."""
    groups: dict[str, dict[str, tarfile.TarInfo]] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = [m for m in tar if m.isfile()]
            for member in members:
                directory, _, base = member.name.rpartition("/")
                stem, dot, extension = base.partition(".")
                if not dot:
                    continue
                key = f"{directory}/{stem}" if directory else stem
                groups.setdefault(key, {})[extension.lower()] = member
            return [_sample(number, path, key, parts, tar) for key, parts in groups.items()]
    except (tarfile.TarError, OSError) as exc:
        raise BenchError(f"{path}: not a readable tar shard ({exc}); fetch the dataset again") from None


def _sample(number: int, path: Path, key: str, parts: dict[str, tarfile.TarInfo], tar: tarfile.TarFile) -> WdsSample:
    image = next((parts[ext] for ext in IMAGE_EXTENSIONS if ext in parts), None)
    if image is None:
        raise BenchError(f"{path}: sample '{key}' has no image member (.{', .'.join(IMAGE_EXTENSIONS)})")
    label = None
    if "cls" in parts:
        text = _member_text(tar, parts["cls"], path)
        try:
            label = int(text.strip())
        except ValueError:
            raise BenchError(f"{path}: sample '{key}' has a non-integer label {text.strip()[:40]!r} in its .cls member") from None
    captions = _member_text(tar, parts["txt"], path) if "txt" in parts else None
    return WdsSample(number, key, image.offset_data, image.size, label, captions)


def _member_text(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> str:
    handle = tar.extractfile(member)
    if handle is None:
        raise BenchError(f"{path}: member '{member.name}' cannot be read")
    try:
        return handle.read().decode("utf-8")
    except UnicodeDecodeError:
        raise BenchError(f"{path}: member '{member.name}' is not UTF-8 text") from None


class WdsImageSource(ImageSource):
    """Images stored in tar shards, read by byte range and decoded in the calling (worker) process."""

    def __init__(self, shards: list[Path], entries: list[tuple[int, int, int, str]]) -> None:
        #: entries[i] = (shard number, data offset, size, sample key)
        self.shards = [Path(p) for p in shards]
        self.entries = entries
        self._descriptors: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> Image.Image:
        shard, offset, size, key = self.entries[index]
        data = os.pread(self._descriptor(shard), size, offset)
        path = self.shards[shard]
        if len(data) != size:
            raise BenchError(f"{path}: sample '{key}' is truncated; fetch the dataset again")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BenchError(f"{path}: sample '{key}' is not a readable image ({exc})") from None

    def _descriptor(self, shard: int) -> int:
        """One read-only descriptor per (process, shard); pread never moves a shared file offset."""
        slot = (os.getpid(), shard)
        if slot not in self._descriptors:
            try:
                self._descriptors[slot] = os.open(self.shards[shard], os.O_RDONLY)
            except OSError as exc:
                raise BenchError(f"{self.shards[shard]}: cannot open shard ({exc.strerror})") from None
        return self._descriptors[slot]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_descriptors": {}}

    def fingerprint(self) -> str:
        """Shard files (path, size, mtime) plus which members are read, in order."""
        digest = hashlib.sha256(files_fingerprint(self.shards).encode())
        for entry in self.entries:
            digest.update(f"{entry}\n".encode())
        return digest.hexdigest()


def download_from_hub(hub_name: str, destination: Path, revision: str = "main", split: str = "test") -> str:
    """Fetch ``clip-benchmark/wds_<hub_name>`` (``split`` shards and the metadata files) into ``destination``.

    ``revision`` is resolved to a commit first and the download is made at that commit, so a dataset
    updated on the hub mid-download cannot mix versions; the commit is written to ``hub_revision.txt``
    and returned.
    """
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        raise BenchError("huggingface_hub is not installed; `pip install huggingface_hub` to download datasets") from None
    repo = f"{HUB_ORGANISATION}/wds_{hub_name}"
    try:
        commit = HfApi().dataset_info(repo, revision=revision).sha
        snapshot_download(
            repo_id=repo,
            repo_type="dataset",
            revision=commit,
            local_dir=str(destination),
            allow_patterns=[f"{split}/*", "*.txt"],
        )
    except Exception as exc:  # noqa: BLE001 - network and hub errors all mean the same to the user
        raise BenchError(f"{repo}@{revision}: download failed ({exc.__class__.__name__}: {exc}); check the network") from None
    (Path(destination) / HUB_REVISION_FILE).write_text(f"{commit}\n", encoding="utf-8")
    return commit
