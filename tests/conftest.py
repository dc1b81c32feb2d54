"""Shared fixtures: a tiny offline model spec and generated datasets in the real layouts."""
from __future__ import annotations

from pathlib import Path

import pytest

from internvl_bench.samples import write_xtd_sample

#: a 2-layer OpenCLIP architecture with seeded random weights: builds offline in about a second
TINY_MODEL = ["--model", "openclip:tiny-clip", "--checkpoint", "random:0"]


@pytest.fixture
def xtd_root(tmp_path: Path) -> Path:
    return write_xtd_sample(tmp_path / "xtd", n_images=12, languages=("en", "es", "jp"))


@pytest.fixture
def run_args(tmp_path: Path) -> list[str]:
    """Common `internvl-bench run` arguments writing records and cache under tmp_path."""
    return [
        *TINY_MODEL,
        "--output-dir", str(tmp_path / "runs"),
        "--cache-dir", str(tmp_path / "cache"),
        "--device", "cpu",
        "--batch-size", "4",
        "--workers", "0",
        "--no-progress",
    ]
