"""Figures: Table A/B bars, Table C/G lines, a difference figure for any table with our rows; PNG and PDF."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from internvl_bench.paper_tables import TABLES, load_table
from internvl_bench.plots import plot_table
from internvl_bench.records import ResultRecord
from tests.fixtures.paper_records import paper_records


def assert_figures(paths: list[Path], *stems: str) -> None:
    assert sorted(p.name for p in paths) == sorted(f"{stem}.{kind}" for stem in stems for kind in ("png", "pdf"))
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 5000 and data.startswith(b"\x89PNG\r\n\x1a\n" if path.suffix == ".png" else b"%PDF-")


@pytest.mark.parametrize("letter", TABLES)
def test_every_table_with_our_rows_gets_its_figures(letter: str, tmp_path: Path) -> None:
    table = load_table(letter)
    stems = [f"table_{letter.lower()}"] if "plot" in table else []
    if any(row.get("model") for row in table["rows"]):
        stems.append(f"table_{letter.lower()}_diff")
    assert_figures(plot_table(table, paper_records(table, shift=0.4), tmp_path), *stems)


def test_the_plotted_tables_are_a_b_c_and_g() -> None:
    assert {letter: load_table(letter).get("plot", {}).get("kind") for letter in TABLES} == {
        "A": "bars", "B": "bars", "C": "lines", "D": None, "E": None, "F": None, "G": "lines", "caption": None}


def test_paper_rows_alone_are_drawn_and_nothing_is_written_for_an_empty_table(tmp_path: Path) -> None:
    assert_figures(plot_table(load_table("G"), [], tmp_path / "g"), "table_g")
    assert plot_table(load_table("caption"), [], tmp_path / "caption") == []


def test_a_demo_style_table_dict_plots(tmp_path: Path) -> None:
    """The demo passes its own table dicts: rows without a model, variants swapped, models the paper lacks."""
    table = copy.deepcopy(load_table("C"))
    table["rows"].append({"method": "chance (demo replica)", "variant": "1f", "frames": 1,
                          "values": {"i2t_R@1": 0.1, "mean_R": 1.0}})
    ours = [ResultRecord(task="msrvtt", variant=v, model="internvl-c-demo", n_samples=20, options={}, provenance={},
                         metrics={"i2t_R@1": 30.0 + k, "t2i_R@1": 31.0, "mean_R": 40.0}, intervals={"mean_R": [35.0, 45.0]})
            for k, v in enumerate(("1f", "8f"))]
    assert_figures(plot_table(table, ours, tmp_path), "table_c")


def test_a_plot_naming_a_missing_column_is_a_one_line_error(tmp_path: Path) -> None:
    table = copy.deepcopy(load_table("C"))
    table["plot"]["columns"] = ["nope"]
    with pytest.raises(Exception, match=r"plot columns nope are not columns of the table; fix 'plot' in "
                                        r"results/paper/table_c.json"):
        plot_table(table, [], tmp_path)
