"""Where a number came from: code version, packages, hardware -- recorded in every result."""
from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

TRACKED_PACKAGES = (
    "internvl-bench",
    "torch",
    "torchvision",
    "numpy",
    "pillow",
    "safetensors",
    "sentencepiece",
    "huggingface_hub",
    "open_clip_torch",
    "flash-attn",
    "decord",
    "av",
)
REPO_ROOT = Path(__file__).resolve().parent.parent


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change a number (absent ones are omitted)."""
    found = {}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """Commit of the code that ran and whether the work tree had uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict[str, Any]:
    return {
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "device": device_name(device),
    }
