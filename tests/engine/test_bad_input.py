"""Bad input ends in one line naming the file or name, exit status 2, and no lost work."""
from __future__ import annotations

from pathlib import Path

import pytest

from internvl_bench.cli import main


def run_xtd(xtd_root: Path, run_args: list[str], *extra: str) -> int:
    return main(["run", "--task", "xtd", "--data-root", str(xtd_root), *run_args, *extra])


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1
    return err[0]


def test_missing_caption_file(xtd_root: Path, run_args: list[str], capsys) -> None:
    (xtd_root / "test_1kcaptions_es.txt").unlink()
    assert run_xtd(xtd_root, run_args, "--languages", "es") == 2
    line = one_error_line(capsys)
    assert "test_1kcaptions_es.txt" in line and "prepare xtd" in line


def test_caption_count_differs_from_image_count(xtd_root: Path, run_args: list[str], capsys) -> None:
    path = xtd_root / "test_1kcaptions_en.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]))
    assert run_xtd(xtd_root, run_args, "--languages", "en") == 2
    line = one_error_line(capsys)
    assert "test_1kcaptions_en.txt" in line and "11 captions for 12 images" in line


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_bad_image_keeps_earlier_records_and_cache(xtd_root: Path, run_args: list[str], tmp_path: Path, capsys, damage: str) -> None:
    assert run_xtd(xtd_root, run_args, "--languages", "en") == 0
    chunks_before = sorted((tmp_path / "cache").rglob("*.safetensors"))
    victim = next((xtd_root / "train2014").glob("*.jpg"))
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    assert run_xtd(xtd_root, run_args, "--languages", "en,es") == 2
    line = one_error_line(capsys)
    assert victim.name in line and ("not found" in line if damage == "missing" else "corrupt" in line)
    assert (tmp_path / "runs" / "openclip-tiny-clip-random-0__xtd__en.json").is_file()
    assert all(p.is_file() for p in chunks_before)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--task", "xtdd", "--model", "openclip:tiny-clip"], "unknown task 'xtdd'. Did you mean xtd?"),
        (["run", "--task", "xtd", "--model", "internvl-q", "--data-root", "."], "unknown model 'internvl-q'"),
        (["run", "--task", "xtd", "--model", "openclip:tiny-clip", "--checkpoint", "random", "--languages", "en,de"], "unknown XTD language 'de'"),
        (["run", "--task", "xtd", "--model", "openclip:no-such-arch", "--checkpoint", "random"], "unknown open_clip architecture 'no-such-arch'"),
        (["run", "--task", "xtd", "--model", "openclip:tiny-clip"], "needs --checkpoint"),
        (["tables", "--table", "Z"], "unknown table 'Z'"),
    ],
)
def test_unknown_names(argv: list[str], needle: str, capsys, tmp_path: Path) -> None:
    assert main([*argv, *(["--output-dir", str(tmp_path)] if argv[0] == "run" else [])]) == 2
    assert needle in one_error_line(capsys)


def test_missing_data_root_folder(run_args: list[str], tmp_path: Path, capsys) -> None:
    assert run_xtd(tmp_path / "nowhere", run_args) == 2
    assert "test_image_names.txt" in one_error_line(capsys)
