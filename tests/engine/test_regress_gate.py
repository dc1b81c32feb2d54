"""The gate with intervals (--tolerance ci), against the paper (--baseline paper), as JUnit; tables --ci."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from internvl_bench.cli import main
from internvl_bench.records import ResultRecord, write_record
from internvl_bench.reporting import load_table

LANGS = ("en", "es", "fr", "zh", "it", "ko", "ru", "jp")


def record(model: str, task: str, variant: str, metrics: dict[str, float],
           intervals: dict[str, list[float]] | None = None) -> ResultRecord:
    return ResultRecord(task=task, variant=variant, model=model, metrics=metrics, n_samples=100, options={},
                        provenance={}, intervals=intervals or {})


def paper_values(letter: str, model: str) -> dict[str, float]:
    return next(row for row in load_table(letter)["rows"] if row.get("model") == model)["values"]


def regress(runs: Path, *args: str) -> int:
    return main(["regress", "--runs", str(runs), *args])


# -- --write-baseline and --tolerance ci --------------------------------------------------------------
@pytest.fixture
def runs(tmp_path: Path) -> Path:
    write_record(record("m", "xtd", "en", {"i2t_R@10": 97.3, "i2t_R@1": 80.0}, {"i2t_R@10": [96.0, 98.6]}),
                 tmp_path / "runs")
    return tmp_path / "runs"


def test_write_baseline_stores_each_interval(runs: Path, tmp_path: Path) -> None:
    assert regress(runs, "--write-baseline", str(tmp_path / "b.json")) == 0
    entries = {e["metric"]: e for e in json.loads((tmp_path / "b.json").read_text())["entries"]}
    assert entries["i2t_R@10"]["interval"] == [96.0, 98.6] and "interval" not in entries["i2t_R@1"]


@pytest.mark.parametrize("value,status", [(96.2, 0), (95.9, 1)])
def test_ci_tolerance_is_the_baseline_half_width(runs: Path, tmp_path: Path, capsys, value: float, status: int) -> None:
    assert regress(runs, "--write-baseline", str(tmp_path / "b.json")) == 0
    # the current record's interval is wider: the baseline's own interval (half-width 1.3) applies
    write_record(record("m", "xtd", "en", {"i2t_R@10": value, "i2t_R@1": 80.0}, {"i2t_R@10": [90.0, 99.0]}), runs)
    capsys.readouterr()
    assert regress(runs, "--baseline", str(tmp_path / "b.json"), "--tolerance", "ci") == status
    out = capsys.readouterr().out
    assert ("moved    m xtd/en i2t_R@10: 97.3000 -> 95.9000 (-1.4000, tolerance 1.3 (ci))" in out) == bool(status)
    assert "m xtd/en i2t_R@1:" not in out  # no interval: the 0.1 floor, and it did not move


def test_a_baseline_written_with_ci_keeps_it_as_its_default(runs: Path, tmp_path: Path) -> None:
    assert regress(runs, "--write-baseline", str(tmp_path / "b.json"), "--tolerance", "ci") == 0
    assert json.loads((tmp_path / "b.json").read_text())["tolerance"] == "ci"
    write_record(record("m", "xtd", "en", {"i2t_R@10": 96.2, "i2t_R@1": 80.0}), runs)  # -1.1, half-width 1.3
    assert regress(runs, "--baseline", str(tmp_path / "b.json")) == 0
    assert regress(runs, "--baseline", str(tmp_path / "b.json"), "--tolerance", "1") == 1


def test_ci_tolerance_falls_back_to_the_record_interval_then_to_the_floor(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    baseline = {"tolerance": 0.0, "entries": [
        {"model": "m", "checkpoint": None, "task": "xtd", "variant": v, "metric": "i2t_R@10", "value": 50.0}
        for v in ("en", "es")]}
    (tmp_path / "b.json").write_text(json.dumps(baseline))
    write_record(record("m", "xtd", "en", {"i2t_R@10": 50.9}, {"i2t_R@10": [49.0, 51.0]}), runs)  # half-width 1
    write_record(record("m", "xtd", "es", {"i2t_R@10": 50.15}, {"i2t_R@10": [50.1, 50.2]}), runs)  # 0.05 < floor
    assert regress(runs, "--baseline", str(tmp_path / "b.json"), "--tolerance", "ci") == 1
    out = capsys.readouterr().out
    assert "m xtd/en" not in out and "m xtd/es i2t_R@10: 50.0000 -> 50.1500 (+0.1500, tolerance 0.1 (ci))" in out
    assert regress(runs, "--baseline", str(tmp_path / "b.json"), "--tolerance", "ci", "--ci-floor", "0.2") == 0


def test_ci_tolerance_without_any_interval_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    write_record(record("m", "xtd", "en", {"i2t_R@10": 50.0}), runs)
    assert regress(runs, "--write-baseline", str(tmp_path / "b.json")) == 0
    assert regress(runs, "--baseline", str(tmp_path / "b.json"), "--tolerance", "ci") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --tolerance ci: neither") and "--bootstrap-resamples" in error and "\n" not in error
    with pytest.raises(SystemExit):
        regress(runs, "--baseline", str(tmp_path / "b.json"), "--tolerance", "wide")


def test_an_absolute_tolerance_still_overrides_the_entries_own(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    write_record(record("m", "xtd", "en", {"i2t_R@10": 51.0}), runs)
    entry = {"model": "m", "checkpoint": None, "task": "xtd", "variant": "en", "metric": "i2t_R@10", "value": 50.0,
             "tolerance": 2.0}
    (tmp_path / "b.json").write_text(json.dumps({"tolerance": 0.0, "entries": [entry]}))
    assert regress(runs, "--baseline", str(tmp_path / "b.json")) == 0
    assert regress(runs, "--baseline", str(tmp_path / "b.json"), "--tolerance", "0.5") == 1


# -- --baseline paper ---------------------------------------------------------------------------------
def write_table_a(runs: Path, model: str, shift: dict[str, float] | None = None, skip: tuple[str, ...] = ()) -> None:
    paper = paper_values("A", model)
    for lang in LANGS:
        if lang not in skip:
            value = paper[lang] + (shift or {}).get(lang, 0.0)
            write_record(record(model, "xtd", lang, {"i2t_R@10": value}, {"i2t_R@10": [value - 1, value + 1]}), runs)


def test_paper_baseline_passes_on_the_paper_numbers_and_skips_tables_without_records(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    write_table_a(runs, "internvl-g")
    assert regress(runs, "--baseline", "paper") == 0
    out = capsys.readouterr().out
    assert "9 of 9 numbers within tolerance" in out  # 8 languages + the average
    assert "skipped  Table C internvl-g (1f): no record for this table (7 paper numbers)" in out
    assert "skipped  Table A internvl-c-pth: no record for this table" in out


def test_paper_baseline_reports_moved_and_missing_numbers_and_aggregates(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    write_table_a(runs, "internvl-g", shift={"en": 0.5, "es": 0.3}, skip=("jp",))
    assert regress(runs, "--baseline", "paper") == 1
    out = capsys.readouterr().out
    paper = paper_values("A", "internvl-g")
    assert f"moved    internvl-g xtd/en i2t_R@10: {paper['en']:.4f} -> {paper['en'] + 0.5:.4f} (+0.5000, tolerance 0.1)" in out
    assert f"missing  internvl-g xtd/jp i2t_R@10: paper {paper['jp']:.4f}, no result record" in out
    assert "missing  internvl-g Table A avg. (mean of 8 columns): paper" in out  # jp is missing, so is the mean
    assert "5 of 9 numbers within tolerance" in out
    assert regress(runs, "--baseline", "paper", "--tolerance", "0.6") == 1  # jp still missing
    write_table_a(runs, "internvl-g", shift={"en": 0.5, "es": 0.3})
    capsys.readouterr()
    assert regress(runs, "--baseline", "paper", "--tolerance", "ci") == 0  # half-width 1 per language
    out = capsys.readouterr().out
    assert "internvl-g Table A avg." not in out  # no interval: the 0.1 floor; 96.55 + 0.1 is 0.05 off the paper's 96.6


def write_table_f(runs: Path, pope: tuple[float, float, float]) -> None:
    model, paper = "internvl-chat-vicuna-7b", paper_values("F", "internvl-chat-vicuna-7b")
    for task, variant, metric, key in (("vqa", "vqav2_testdev", "accuracy", "vqav2"), ("gqa", "testdev_balanced", "accuracy", "gqa"),
                                       ("vqa", "vizwiz_test", "accuracy", "vizwiz"), ("vqa", "textvqa_val", "accuracy", "textvqa"),
                                       ("mme", "all", "perception", "mme")):
        write_record(record(model, task, variant, {metric: paper[key]}, {metric: [paper[key] - 1, paper[key] + 1]}), runs)
    for split, f1 in zip(("random", "popular", "adversarial"), pope):
        write_record(record(model, "pope", split, {"f1": f1}, {"f1": [f1 - 2, f1 + 2]}), runs)


def test_paper_baseline_compares_combined_variant_columns(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    write_table_f(runs, (86.0, 86.4, 86.8))  # mean 86.4, the paper's POPE number
    assert regress(runs, "--baseline", "paper") == 0
    assert "6 of 6 numbers within tolerance" in capsys.readouterr().out
    write_table_f(runs, (86.0, 86.4, 87.4))  # mean 86.6
    assert regress(runs, "--baseline", "paper", "--tolerance", "ci") == 1
    out = capsys.readouterr().out
    assert ("moved    internvl-chat-vicuna-7b pope/random+popular+adversarial f1 (mean): 86.4000 -> 86.6000 "
            "(+0.2000, tolerance 0.1 (ci floor: no interval))") in out


def test_junit_has_one_testcase_per_number_and_a_failure_per_problem(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    write_table_a(runs, "internvl-g", shift={"en": 0.5}, skip=("jp",))
    assert regress(runs, "--baseline", "paper", "--junit", str(tmp_path / "gate.xml")) == 1
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("moved", "missing"))]
    root = ET.parse(tmp_path / "gate.xml").getroot()
    cases = root.findall("./testsuite/testcase")
    assert root.tag == "testsuites" and len(cases) == 9 and root.get("failures") == "3"
    names = [case.get("name") for case in cases]
    assert "internvl-g xtd/en i2t_R@10" in names and "internvl-g Table A avg. (mean of 8 columns)" in names
    failures = [case.find("failure") for case in cases if case.find("failure") is not None]
    assert [f.get("message") for f in failures] == printed and [f.text for f in failures] == printed
    assert {f.get("type") for f in failures} == {"moved", "missing"}


# -- tables --ci ----------------------------------------------------------------------------------------
def test_tables_ci_shows_intervals_of_single_record_cells_only(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    write_table_a(runs, "internvl-g")
    write_table_f(runs, (86.0, 86.4, 86.8))
    en = paper_values("A", "internvl-g")["en"]
    assert main(["tables", "--table", "A", "--runs", str(runs)]) == 0
    assert "[" not in next(line for line in capsys.readouterr().out.splitlines() if "(this run)" in line)
    assert main(["tables", "--table", "A", "--ci", "--runs", str(runs)]) == 0
    ours = next(line for line in capsys.readouterr().out.splitlines() if "(this run)" in line)
    cells = [cell.strip() for cell in ours.strip("|").split("|")]
    assert cells[1] == f"{en:.1f} [{en - 1:.1f}, {en + 1:.1f}]"
    assert "[" not in cells[-1]  # the average of eight records: no interval
    assert main(["tables", "--table", "F", "--ci", "--format", "latex", "--runs", str(runs)]) == 0
    latex = next(line for line in capsys.readouterr().out.splitlines() if "(this run)" in line)
    assert r"79.3 {\scriptsize [78.3, 80.3]}" in latex  # VQAv2, one record
    assert latex.rstrip(r" \\").endswith("& 86.4")  # POPE: the mean F1 of three split records, no interval
