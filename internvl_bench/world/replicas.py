"""Every benchmark of Tables A-F (and captioning) as a small replica of the synthetic world, in its real layout.

``write_replicas(root)`` writes each replica into ``root/<name>/`` -- the folder the task's ``--data-root``
takes -- from a seed of its own, and a ``REPLICA.json`` beside the files: seed, size, the sha256 of every
file, one digest over all of them, and the chance levels (``chance``). A folder whose manifest matches
is reused. At the default sizes the digest must equal the one in ``checksums.json``: the same seed writes
the same bytes (PIL's JPEG/WebP/PNG encoders, libx264 through PyAV) -- when a library update changes
them, the demo says so instead of quietly scoring different data (``--update-checksums`` accepts them).

The replicas draw scenes from ``random.Random("replica:<name>:<seed>")``; the demo models were trained on
streams of other seeds, but the world is small, so test scenes may repeat training scenes: the demo
shows the pipeline computing real numbers from real files, not generalisation.
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from internvl_bench.errors import BenchError
from internvl_bench.world import chat_sets, contrastive_sets
from internvl_bench.world.contrastive_sets import Chance

CHECKSUMS = Path(__file__).with_name("checksums.json")
MANIFEST = "REPLICA.json"
SEED = 0


@dataclass(frozen=True)
class Replica:
    name: str
    #: writes the files into a folder from a seeded generator and a size; returns the chance levels
    write: Callable[[Path, random.Random, int], Chance]
    size: int
    #: what ``size`` counts
    unit: str


REPLICAS = {r.name: r for r in (
    Replica("xtd", contrastive_sets.write_xtd, 200, "images, one caption per language"),
    Replica("classification/cifar10", lambda f, g, n: contrastive_sets.write_classification(f, g, n, "cifar10"), 300,
            "images (shapes)"),
    Replica("classification/mnist", lambda f, g, n: contrastive_sets.write_classification(f, g, n, "mnist"), 300,
            "images (digits)"),
    Replica("classification/dtd", lambda f, g, n: contrastive_sets.write_classification(f, g, n, "dtd"), 150,
            "images (textures)"),
    Replica("retrieval", contrastive_sets.write_flickr, 150, "Flickr30K images, two captions each"),
    Replica("msrvtt", contrastive_sets.write_msrvtt, 100, "videos"),
    Replica("mme", chat_sets.write_mme, 12, "images per subtask, two questions each"),
    Replica("pope", chat_sets.write_pope, 50, "images, six questions each per split"),
    Replica("tiny_lvlm", chat_sets.write_tiny_lvlm, 40, "questions per category"),
    Replica("vqa", chat_sets.write_vqa, 100, "questions per set (VQAv2, VizWiz, TextVQA)"),
    Replica("gqa", chat_sets.write_gqa, 150, "balanced questions"),
    Replica("caption", chat_sets.write_captions, 50, "images per set (COCO, Flickr30K, NoCaps)"),
)}


def _file_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


def _digest(files: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha in files.items()).encode()).hexdigest()


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def write_replica(root: Path, replica: Replica, scale: float = 1.0, seed: int = SEED) -> dict:
    """Write (or reuse) one replica; returns its manifest."""
    folder = Path(root) / replica.name
    size = max(2, round(replica.size * scale))
    manifest = read_manifest(folder)
    if manifest and manifest.get("seed") == seed and manifest.get("size") == size and _digest(_file_digests(folder)) == manifest.get("digest"):
        return manifest
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    chance = replica.write(folder, random.Random(f"replica:{replica.name}:{seed}"), size)
    files = _file_digests(folder)
    manifest = {"name": replica.name, "seed": seed, "size": size, "unit": replica.unit, "digest": _digest(files),
                "chance": [{"task": t, "variant": v, "metrics": {k: round(x, 6) for k, x in m.items()}}
                           for (t, v), m in chance.items()], "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def recorded_checksums() -> dict[str, str]:
    return json.loads(CHECKSUMS.read_text(encoding="utf-8")) if CHECKSUMS.is_file() else {}


def verify(manifests: list[dict], update: bool = False) -> None:
    """Compare default-size replicas with ``checksums.json`` (or rewrite it when ``update``)."""
    recorded = recorded_checksums()
    if update:
        recorded |= {m["name"]: m["digest"] for m in manifests}
        CHECKSUMS.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n", encoding="utf-8")
        return
    for manifest in manifests:
        expected = recorded.get(manifest["name"])
        if expected is None:
            raise BenchError(f"{CHECKSUMS}: no checksum for replica '{manifest['name']}'; run the demo with "
                             "--update-checksums once to record it")
        if expected != manifest["digest"]:
            raise BenchError(f"replica '{manifest['name']}' ({MANIFEST} digest {manifest['digest'][:12]}) differs from "
                             f"{CHECKSUMS.name} ({expected[:12]}): the world generator or an image/video encoder "
                             "changed; if that is intended, rerun with --update-checksums and re-baseline")


def write_replicas(root: Path, names: list[str] | None = None, scale: float = 1.0) -> list[dict]:
    """Write the named replicas (all by default) under ``root``; returns their manifests."""
    unknown = [n for n in names or [] if n not in REPLICAS]
    if unknown:
        raise BenchError(f"unknown replica '{unknown[0]}'; choose from {', '.join(REPLICAS)}")
    return [write_replica(root, REPLICAS[name], scale) for name in names or list(REPLICAS)]
