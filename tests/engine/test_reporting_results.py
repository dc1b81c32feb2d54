"""``results``: one row per metric, and CSV / Parquet / JSON that round-trip through pandas."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from internvl_bench.cli import main
from internvl_bench.records import ResultRecord, load_records, write_record
from internvl_bench.results_frame import COLUMNS, options_hash, results_frame

COMMIT = "a" * 40


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    options = {"languages": "en", "precision": "bf16", "batch_size": 128}
    write_record(ResultRecord(task="xtd", variant="en", model="internvl-g", n_samples=1000, options=options,
                              metrics={"i2t_R@10": 98.6, "t2i_R@1": 80.25}, intervals={"i2t_R@10": [97.9, 99.2]},
                              provenance={"git": {"commit": COMMIT, "dirty": False}},
                              created="2026-11-26T09:00:00+00:00"), runs)
    write_record(ResultRecord(task="zeroshot_classification", variant="voc2007", model="openclip:ViT-H-14",
                              checkpoint="laion2b_s32b_b79k", n_samples=12, options={**options, "batch_size": 64},
                              metrics={"acc1": 50.0, "acc5": math.nan}, provenance={},
                              created="2026-11-27T10:30:00+00:00"), runs)
    return runs


def test_one_row_per_metric_with_interval_protocol_and_provenance(runs: Path) -> None:
    frame = results_frame(load_records(runs))
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 4
    row = frame[(frame.model == "internvl-g") & (frame.metric == "i2t_R@10")].iloc[0]
    assert (row.value, row.ci_low, row.ci_high, row.n_samples) == (98.6, 97.9, 99.2, 1000)
    assert (row.precision, row.git_commit, row.task_version) == ("bf16", COMMIT, "1")
    assert row.created == pd.Timestamp("2026-11-26T09:00:00Z")
    assert math.isnan(frame[frame.metric == "t2i_R@1"].iloc[0].ci_low)  # no interval
    clip = frame[frame.model == "openclip:ViT-H-14"]
    assert set(clip.checkpoint) == {"laion2b_s32b_b79k"} and math.isnan(clip[clip.metric == "acc5"].iloc[0].value)
    assert clip.iloc[0].options_hash != row.options_hash  # batch size 64 vs 128
    assert options_hash({"b": 1, "a": 2}) == options_hash({"a": 2, "b": 1}) and len(row.options_hash) == 12


def test_csv_parquet_and_json_round_trip_through_pandas(runs: Path, tmp_path: Path, capsys) -> None:
    frame = results_frame(load_records(runs))
    for name in ("r.csv", "r.parquet", "r.json"):
        assert main(["results", "--runs", str(runs), "--out", str(tmp_path / name)]) == 0  # format from the suffix
        assert f"wrote {tmp_path / name} (4 rows)" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "r.parquet"), frame)
    from_csv = pd.read_csv(tmp_path / "r.csv", parse_dates=["created"], dtype={"task_version": str})
    pd.testing.assert_frame_equal(from_csv, frame, check_dtype=False)
    from_json = pd.read_json(tmp_path / "r.json", orient="records", dtype={"task_version": str, "git_commit": str})
    from_json["created"] = pd.to_datetime(from_json["created"], utc=True)
    pd.testing.assert_frame_equal(from_json, frame, check_dtype=False)


def test_printed_formats_and_parquet_needs_a_file(runs: Path, capsys) -> None:
    assert main(["results", "--runs", str(runs)]) == 0
    assert capsys.readouterr().out.startswith(",".join(COLUMNS) + "\n")
    assert main(["results", "--runs", str(runs), "--format", "md"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model") and len(lines) == 2 + 4
    assert main(["results", "--runs", str(runs), "--format", "parquet"]) == 2
    assert "give --out FILE.parquet" in capsys.readouterr().err
