"""The demo end to end on a subset (trained demo models, replicas, records) and the CI gate on its numbers."""
from __future__ import annotations

from pathlib import Path

import pytest

from internvl_bench.cli import main
from internvl_bench.demo import run_demo
from internvl_bench.records import load_records
from model_zoo import base

#: a contrastive and a chat task, replicas at a tenth of their size: about a minute in all
SUBSET = ["xtd", "pope"]


def _demo(workdir: Path) -> Path:
    run_demo(workdir, scale=0.1, only=SUBSET, log=lambda _: None)
    return workdir / "runs"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("demo")
    runs = _demo(root / "first")
    path = root / "demo.json"
    assert main(["regress", "--runs", str(runs), "--write-baseline", str(path)]) == 0
    return path, runs


def test_the_demo_scores_its_tasks_with_the_trained_models(baseline) -> None:
    _, runs = baseline
    records = {(r.model, r.task, r.variant): r for r in load_records(runs)}
    assert {m for m, _, _ in records} == {"internvl-c-demo", "internvl-g-demo", "internvl-chat-demo"}
    assert records[("internvl-c-demo", "xtd", "en")].metrics["i2t_R@10"] > 50  # chance: 50 of 20 images
    assert records[("internvl-chat-demo", "pope", "random")].metrics["accuracy"] > 70  # chance and always-yes: 50
    assert all(r.intervals for r in records.values())


def test_rerunning_the_demo_passes_the_gate(baseline, tmp_path: Path, capsys) -> None:
    path, _ = baseline
    runs = _demo(tmp_path)
    assert main(["regress", "--baseline", str(path), "--runs", str(runs), "--junit", str(tmp_path / "j.xml")]) == 0
    assert "moved" not in capsys.readouterr().out
    assert "<failure" not in (tmp_path / "j.xml").read_text(encoding="utf-8")


def test_a_perturbed_preprocessing_constant_fails_the_gate(baseline, tmp_path: Path, monkeypatch, capsys) -> None:
    path, _ = baseline
    mean, std = base.build_image_transform.__defaults__
    # the contrastive models' normalisation: red-channel mean 0.485 -> 0.6
    monkeypatch.setattr(base.build_image_transform, "__defaults__", ((0.6, *mean[1:]), std))
    runs = _demo(tmp_path)
    assert main(["regress", "--baseline", str(path), "--runs", str(runs)]) == 1
    out = capsys.readouterr().out
    assert "moved    internvl-c-demo xtd/" in out and "internvl-chat-demo" not in out
