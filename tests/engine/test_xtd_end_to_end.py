"""XTD from generated files through the CLI to Table A, checked against an independent computation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import model_zoo
from internvl_bench.cli import main
from internvl_bench.data import file_sha256
from tasks.xtd import image_path
from tests.fixtures.intervals import assert_intervals


def brute_i2t_r_at(k: int, scores: torch.Tensor) -> float:
    """scores [n_text, n_image] with caption i <-> image i; stable order, lower index first on ties."""
    n = scores.shape[1]
    hits = sum(i in sorted(range(n), key=lambda t: (-scores[t, i].item(), t))[:k] for i in range(n))
    return 100 * hits / n


def test_cli_run_writes_records_and_table_a(xtd_root: Path, run_args: list[str], tmp_path: Path, capsys) -> None:
    argv = ["run", "--task", "xtd", "--languages", "en,es,jp", "--data-root", str(xtd_root), *run_args]
    assert main([*argv, "--bootstrap-resamples", "200", "--bootstrap-seed", "3"]) == 0
    summary = capsys.readouterr().out
    records = sorted((tmp_path / "runs").glob("*.json"))
    assert [p.name for p in records] == [f"openclip-tiny-clip-random-0__xtd__{lang}.json" for lang in ("en", "es", "jp")]

    record = json.loads(records[0].read_text())
    assert record["task"] == "xtd" and record["variant"] == "en" and record["n_samples"] == 12
    assert set(record["metrics"]) == {"i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mean_R"}
    assert record["options"]["preprocess"] == "squash" and record["options"]["precision"] == "fp32"
    caption_file = str(xtd_root / "test_1kcaptions_en.txt")
    assert record["provenance"]["data_files"][caption_file] == file_sha256(caption_file)
    assert record["provenance"]["world_size"] == 1 and record["provenance"]["packages"]["torch"]
    assert_intervals(record, resamples=200, seed=3)
    low, high = record["intervals"]["i2t_R@10"]
    assert f"i2t_R@10={record['metrics']['i2t_R@10']:.2f} [{low:.2f}, {high:.2f}]" in summary

    # independent path: the public model API, no engine, brute-force ranking
    model = model_zoo.load_model("openclip:tiny-clip", checkpoint="random:0")
    names = (xtd_root / "test_image_names.txt").read_text().splitlines()
    from PIL import Image

    pixels = model.preprocess([Image.open(image_path(xtd_root, n)) for n in names], mode="squash")
    captions = [c.strip() for c in (xtd_root / "test_1kcaptions_en.txt").read_text().splitlines()]
    scores = model.encode_text(captions) @ model.encode_image(pixels).T
    for k in (1, 5, 10):
        assert record["metrics"][f"i2t_R@{k}"] == pytest.approx(brute_i2t_r_at(k, scores), abs=1e-9)

    capsys.readouterr()
    assert main(["tables", "--table", "A", "--runs", str(tmp_path / "runs")]) == 0
    table = capsys.readouterr().out
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip().strip("|").split("|")]
                                               for line in table.splitlines() if line.startswith("|"))}
    assert rows["InternVL-C (ours)"][0] == "97.3"
    ours = next(cells for label, cells in rows.items() if label.startswith("openclip:tiny-clip"))
    assert f"{record['metrics']['i2t_R@10']:.1f}" in ours
    assert main(["tables", "--table", "A", "--format", "latex", "--runs", str(tmp_path / "runs")]) == 0
    assert r"\begin{tabular}" in capsys.readouterr().out


def test_intervals_follow_the_seed_and_can_be_turned_off(xtd_root: Path, run_args: list[str], tmp_path: Path) -> None:
    def intervals(out: str, *flags: str) -> dict:
        argv = ["run", "--task", "xtd", "--languages", "en", "--data-root", str(xtd_root), *run_args]
        assert main([*argv, "--output-dir", str(tmp_path / out), *flags]) == 0
        record = json.loads(next((tmp_path / out).glob("*.json")).read_text())
        return record["intervals"]

    first = intervals("a", "--bootstrap-seed", "1")
    assert intervals("b", "--bootstrap-seed", "1") == first
    assert intervals("c", "--bootstrap-seed", "2") != first
    assert intervals("off", "--bootstrap-resamples", "0") == {}
    argv = ["run", "--task", "xtd", "--languages", "en", "--data-root", str(xtd_root), *run_args]
    assert main([*argv, "--bootstrap-resamples", "-1"]) == 2


def test_rerun_is_served_from_the_cache(xtd_root: Path, run_args: list[str], tmp_path: Path) -> None:
    argv = ["run", "--task", "xtd", "--languages", "en", "--data-root", str(xtd_root), *run_args]
    assert main(argv) == 0
    chunks = sorted((tmp_path / "cache").rglob("*.safetensors"))
    stamps = [p.stat().st_mtime_ns for p in chunks]
    first = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())["metrics"]
    assert main(argv) == 0
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "cache").rglob("*.safetensors"))] == stamps
    assert json.loads(next((tmp_path / "runs").glob("*.json")).read_text())["metrics"] == first


def test_list_shows_tasks_and_models(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "xtd" in out and "openclip:ARG" in out


def test_demo_command_prints_the_tables(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--workdir", str(tmp_path / "demo"), "--only", "xtd", "--scale", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "Table A" in out and "internvl-g-demo (this run)" in out and "chance (demo replica)" in out
    assert len(list((tmp_path / "demo" / "runs").glob("*__xtd__*.json"))) == 16
    assert (tmp_path / "demo" / "tables" / "table_a.md").is_file() and (tmp_path / "demo" / "tables" / "table_a.png").is_file()


def test_languages_share_one_image_encoding_without_a_cache(xtd_root: Path, run_args: list[str], monkeypatch) -> None:
    from internvl_bench.data import ImageFileSource

    loads = []
    original = ImageFileSource.load
    monkeypatch.setattr(ImageFileSource, "load", lambda self, i: loads.append(i) or original(self, i))
    argv = ["run", "--task", "xtd", "--languages", "en,es,jp", "--data-root", str(xtd_root), *run_args, "--no-cache"]
    assert main(argv) == 0  # --workers 0 (run_args): loads happen in this process
    assert sorted(loads) == list(range(12))


def test_scores_are_computed_on_the_runs_device(xtd_root: Path, run_args: list[str], monkeypatch) -> None:
    import tasks.xtd as task_module

    seen = []
    original = task_module.retrieval_ranks
    monkeypatch.setattr(task_module, "retrieval_ranks", lambda *a, **kw: seen.append(kw.get("device")) or original(*a, **kw))
    assert main(["run", "--task", "xtd", "--languages", "en", "--data-root", str(xtd_root), *run_args]) == 0
    assert [torch.device(d).type for d in seen] == ["cpu"]  # run_args pass --device cpu
