"""`prepare xtd`: verifies files against the pinned checksums and downloads what is missing."""
from __future__ import annotations

from pathlib import Path

import pytest

import tasks.xtd as xtd
from internvl_bench.cli import main
from internvl_bench.data import file_sha256
from internvl_bench.samples import write_xtd_sample


def test_empty_folder_lists_what_to_place_where(tmp_path: Path, capsys) -> None:
    assert main(["prepare", "xtd", "--data-root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert f"missing {tmp_path}/test_1kcaptions_jp.txt" in captured.out
    assert "XTD data incomplete" in captured.err and "--download" in captured.err


def test_files_that_differ_from_the_release_are_flagged(xtd_root: Path, capsys) -> None:
    assert main(["prepare", "xtd", "--data-root", str(xtd_root)]) == 2
    assert f"changed {xtd_root}/test_image_names.txt" in capsys.readouterr().out


def test_download_fetches_missing_files_and_verifies_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # a local "release": the XTD10 repository layout served through file:// URLs
    mirror = write_xtd_sample(tmp_path / "mirror", n_images=6, languages=xtd.LANGUAGES)
    for language in xtd.LANGUAGES:
        folder = mirror / xtd.CAPTION_SUBDIR.get(language, "XTD10")
        folder.mkdir(exist_ok=True)
        (mirror / f"test_1kcaptions_{language}.txt").rename(folder / f"test_1kcaptions_{language}.txt")
    (mirror / "XTD10").mkdir(exist_ok=True)
    (mirror / "test_image_names.txt").rename(mirror / "XTD10" / "test_image_names.txt")
    sums = {p.name: file_sha256(p) for p in mirror.rglob("test_*.txt")}
    monkeypatch.setattr(xtd, "SOURCE_REPO", mirror.as_uri())
    monkeypatch.setattr(xtd, "KNOWN_SHA256", sums)
    target = tmp_path / "xtd"
    for split in ("train2014", "val2014"):  # images are "already there"
        (target / split).mkdir(parents=True)
        for image in (mirror / split).iterdir():
            (target / split / image.name).write_bytes(image.read_bytes())
    assert main(["prepare", "xtd", "--data-root", str(target), "--download"]) == 0
    out = capsys.readouterr().out
    assert out.count("sha256 matches") == len(sums) and "6 COCO images" in out
    assert (target / "test_1kcaptions_fr.txt").read_bytes() == (mirror / "MIC" / "test_1kcaptions_fr.txt").read_bytes()
