"""Downloads for ``internvl-bench prepare`` on machines with internet (atomic, resumable by re-run)."""
from __future__ import annotations

import shutil
import urllib.request
import zipfile
from pathlib import Path

from internvl_bench.errors import BenchError


def download_file(url: str, dest: Path) -> Path:
    """Fetch ``url`` to ``dest`` through a temp file, so an interrupted download leaves nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    print(f"downloading {url} -> {dest}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BenchError(f"{url}: download failed ({exc}); place {dest} by hand") from None
    tmp.replace(dest)
    return dest


def download_and_unzip(url: str, root: Path) -> None:
    """Download a zip archive into ``root`` and extract it there."""
    archive = download_file(url, root / Path(url).name)
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(root)
    archive.unlink()
