"""Records round-trip; Table A renders paper rows beside ours; the gate fails on moved numbers."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from internvl_bench.cli import main
from internvl_bench.records import ResultRecord, load_records, write_record
from internvl_bench.reporting import build_rows, load_table

LANGS = ("en", "es", "fr", "zh", "it", "ko", "ru", "jp")


def record(model: str, variant: str, value: float, task: str = "xtd", metric: str = "i2t_R@10") -> ResultRecord:
    return ResultRecord(task=task, variant=variant, model=model, metrics={metric: value}, n_samples=1000, options={}, provenance={})


def test_record_round_trip_keeps_nan_and_writes_atomically(tmp_path: Path) -> None:
    rec = ResultRecord(task="zeroshot_classification", variant="voc2007", model="m", metrics={"acc1": 50.0, "acc5": math.nan},
                       n_samples=3, options={"a": 1}, provenance={}, checkpoint="/w/ckpt.pt",
                       intervals={"acc1": [40.0, 60.0], "acc5": [math.nan, math.nan]})
    path = write_record(rec, tmp_path)
    assert path.name == "m-ckpt.pt__zeroshot_classification__voc2007.json"
    stored = json.loads(path.read_text())
    assert stored["metrics"]["acc5"] is None and stored["intervals"] == {"acc1": [40.0, 60.0], "acc5": [None, None]}
    loaded = load_records(tmp_path)[0]
    assert loaded.metrics["acc1"] == 50.0 and math.isnan(loaded.metrics["acc5"])
    assert loaded.intervals["acc1"] == [40.0, 60.0] and all(math.isnan(b) for b in loaded.intervals["acc5"])
    assert not list(tmp_path.glob(".*tmp"))
    del stored["intervals"]  # a record written before intervals existed
    path.write_text(json.dumps(stored))
    assert load_records(tmp_path)[0].intervals == {}


def test_table_a_shows_paper_ours_and_difference(tmp_path: Path) -> None:
    paper = {row["method"]: row for row in load_table("A")["rows"]}["InternVL-C (ours)"]["values"]
    records = [record("internvl-c-pth", lang, paper[lang] + 0.5) for lang in LANGS]
    rows = build_rows(load_table("A"), records)
    labels = [r.label for r in rows]
    at = labels.index("InternVL-C (ours)")
    assert labels[at + 1] == "internvl-c-pth (this run)" and rows[at + 2].kind == "delta"
    assert rows[at + 1].values["en"] == pytest.approx(paper["en"] + 0.5)
    assert rows[at + 1].values["avg"] == pytest.approx(sum(paper[lang] + 0.5 for lang in LANGS) / 8)
    assert all(rows[at + 2].values[k] == pytest.approx(0.5) for k in LANGS)


def test_average_needs_every_language_and_unknown_models_get_own_rows() -> None:
    rows = build_rows(load_table("A"), [record("openclip:tiny-clip", "en", 40.0)])
    ours = [r for r in rows if r.kind == "ours"]
    assert [r.label for r in ours] == ["openclip:tiny-clip (this run)"]
    assert ours[0].values["en"] == 40.0 and ours[0].values["avg"] is None


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    for lang, value in (("en", 97.3), ("es", 95.7)):
        write_record(record("internvl-c", lang, value), tmp_path / "runs")
    return tmp_path / "runs"


def test_regress_passes_within_tolerance_and_fails_listing_each_move(runs: Path, tmp_path: Path, capsys) -> None:
    baseline = tmp_path / "baseline.json"
    assert main(["regress", "--write-baseline", str(baseline), "--runs", str(runs), "--tolerance", "0.1"]) == 0
    assert main(["regress", "--baseline", str(baseline), "--runs", str(runs)]) == 0
    write_record(record("internvl-c", "en", 96.0), runs)  # moved by -1.3
    (runs / "internvl-c__xtd__es.json").unlink()  # missing
    capsys.readouterr()
    assert main(["regress", "--baseline", str(baseline), "--runs", str(runs)]) == 1
    out = capsys.readouterr().out
    assert "moved    internvl-c xtd/en i2t_R@10: 97.3000 -> 96.0000" in out
    assert "missing  internvl-c xtd/es i2t_R@10" in out
    assert main(["regress", "--baseline", str(baseline), "--runs", str(runs), "--tolerance", "2"]) == 1  # es still missing


def test_regress_rejects_a_malformed_baseline(runs: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["regress", "--baseline", str(bad), "--runs", str(runs)]) == 2
    assert "bad.json: not a baseline file" in capsys.readouterr().err


@pytest.mark.parametrize("letter", list("ABCDEFG"))
def test_every_paper_table_renders_in_both_formats(letter: str, runs: Path, tmp_path: Path) -> None:
    assert main(["tables", "--table", letter, "--runs", str(runs), "--out-dir", str(tmp_path / "t")]) == 0
    assert main(["tables", "--table", letter, "--format", "latex", "--runs", str(runs), "--out-dir", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / f"table_{letter.lower()}.md").read_text().count("\n") > 3
    assert r"\end{tabular}" in (tmp_path / "t" / f"table_{letter.lower()}.tex").read_text()
