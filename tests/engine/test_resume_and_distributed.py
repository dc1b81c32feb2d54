"""A killed run resumes from its finished chunks; two torchrun ranks equal one process bit for bit."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from internvl_bench.cli import main
from internvl_bench.samples import write_xtd_sample

WORKER = Path(__file__).parent / "_encode_worker.py"
REPO = Path(__file__).resolve().parents[2]


def worker(image_dir: Path, cache: str, out: Path, sleep: float) -> list[str]:
    return [sys.executable, str(WORKER), str(image_dir), cache, str(out), str(sleep)]


def loaded(out: Path, rank: int = 0) -> list[int]:
    path = Path(f"{out}.loaded.{rank}")
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def encode_in_process(image_dir: Path) -> torch.Tensor:
    """The same encoding as the worker, uncached, in this process."""
    import model_zoo
    from internvl_bench.data import ImageFileSource
    from internvl_bench.distributed import DistInfo
    from internvl_bench.runner import RunConfig, RunContext

    config = RunConfig(cache_dir=None, device="cpu", batch_size=2, workers=0, progress=False)
    ctx = RunContext(model_zoo.load_model("openclip:tiny-clip", checkpoint="random:0"), config, DistInfo())
    return ctx.encode_images(ImageFileSource(sorted(image_dir.rglob("*.jpg"))), "squash")


def test_killed_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    images = write_xtd_sample(tmp_path / "xtd", n_images=48, languages=("en",))
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # batch 2 x 8 batches = chunks of 16 items; 0.1 s per item -> a chunk every ~1.6 s
    proc = subprocess.Popen(worker(images, str(cache), tmp_path / "killed.pt", 0.1), env=env)
    deadline = time.time() + 60
    while len(list(cache.rglob("*.safetensors"))) < 1 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(cache.rglob("*.safetensors"))
    assert 1 <= len(finished) < 3, "the kill should land after the first chunk and before the last"
    assert not list(cache.rglob("*.tmp")), "no half-written chunk is left behind"

    out = tmp_path / "resumed.pt"
    subprocess.run(worker(images, str(cache), out, 0.0), env=env, check=True)
    done_items = {i for p in finished for i in range(int(p.stem.split("-")[0]), int(p.stem.split("-")[1]))}
    assert not done_items & set(loaded(out)), "finished chunks must not be decoded again"
    assert set(loaded(out)) == set(range(48)) - done_items

    fresh = encode_in_process(images)
    assert torch.equal(torch.load(out)["images"], fresh)


def test_two_torchrun_ranks_equal_one_process(tmp_path: Path, xtd_root: Path, run_args: list[str]) -> None:
    """Same records and bit-identical embeddings (compared through each run's cache chunks)."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun must sit next to the interpreter (it comes with torch)"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # batch 1 -> chunks of 8 items: the 12 images and 12 captions make two chunks each, one per rank
    base = ["run", "--task", "xtd", "--languages", "en", "--data-root", str(xtd_root), *run_args, "--batch-size", "1"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun sets for its ranks: BLAS results depend on the thread count
    try:
        assert main([*base, "--output-dir", str(tmp_path / "one"), "--cache-dir", str(tmp_path / "cache1")]) == 0
    finally:
        torch.set_num_threads(threads)
    subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "internvl_bench.cli", *base,
         "--output-dir", str(tmp_path / "two"), "--cache-dir", str(tmp_path / "cache2")],
        env=env, check=True, cwd=REPO,
    )
    one = json.loads(next((tmp_path / "one").glob("*.json")).read_text())
    two = json.loads(next((tmp_path / "two").glob("*.json")).read_text())
    assert one["metrics"] == two["metrics"]
    assert (one["provenance"]["world_size"], two["provenance"]["world_size"]) == (1, 2)
    chunks1 = sorted((tmp_path / "cache1").rglob("*.safetensors"))
    chunks2 = sorted((tmp_path / "cache2").rglob("*.safetensors"))
    assert [p.relative_to(tmp_path / "cache1") for p in chunks1] == [p.relative_to(tmp_path / "cache2") for p in chunks2]
    assert len(chunks1) == 4
    for a, b in zip(chunks1, chunks2):
        assert torch.equal(load_file(a)["embeddings"], load_file(b)["embeddings"])
