"""Reporting: the paper tables beside our numbers (``tables``), all results as one table (``results``) and
the CI regression gate (``regress``).

Each job has its module; this one holds the ``tables`` command, registers the three commands, and is
where other code imports the tables from:

- ``internvl_bench.paper_tables``: the paper's tables as data (``results/paper/table_<x>.json``), our
  rows beside them, the bold cells;
- ``internvl_bench.table_render``: GitHub Markdown and booktabs LaTeX through ``tabulate``;
- ``internvl_bench.plots``: PNG and PDF figures (``tables --plots``);
- ``internvl_bench.results_frame``: ``results``, every record flattened with pandas;
- ``internvl_bench.regress``: ``regress``, baselines, ``--tolerance ci``, ``--baseline paper``, JUnit.

    internvl-bench tables [--table A..G|caption|all] [--format md|latex] [--ci] [--plots] [--out-dir DIR]

writes ``table_<x>.md`` / ``.tex`` into ``--out-dir`` (printed without it) and, with ``--plots``, the
figures into ``--out-dir`` (default ``results/tables``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from internvl_bench import regress, results_frame
from internvl_bench.paper_tables import TABLES, build_rows, load_table, our_values
from internvl_bench.records import DEFAULT_RUNS_DIR, load_records, write_atomic
from internvl_bench.regress import baseline_entries
from internvl_bench.table_render import FORMATS, render

#: what the demo and the tests import from here
__all__ = ["TABLES", "baseline_entries", "build_rows", "load_table", "our_values", "render"]
DEFAULT_TABLES_DIR = Path("results/tables")
SUFFIX = {"md": "md", "latex": "tex"}


def cmd_tables(args: argparse.Namespace) -> int:
    letters = list(TABLES) if args.table.lower() == "all" else [args.table]
    tables = [load_table(letter) for letter in letters]
    records = load_records(args.runs)
    for letter, table in zip(letters, tables):
        text = render(table, records, args.format, args.ci)
        if args.out_dir:
            path = Path(args.out_dir) / f"table_{letter.lower()}.{SUFFIX[args.format]}"
            write_atomic(path, text)
            print(f"wrote {path}")
        else:
            print(text)
    if args.plots:
        from internvl_bench.plots import plot_table  # matplotlib loads only when figures are asked for

        for table in tables:
            for path in plot_table(table, records, args.out_dir or DEFAULT_TABLES_DIR):
                print(f"wrote {path}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tables = sub.add_parser("tables", help="render paper tables beside our results")
    tables.add_argument("--table", default="all", help="A..G, caption, or all")
    tables.add_argument("--format", choices=FORMATS, default="md")
    tables.add_argument("--runs", type=Path, default=DEFAULT_RUNS_DIR, help="folder of result records")
    tables.add_argument("--out-dir", type=Path, help="write files there instead of printing")
    tables.add_argument("--ci", action="store_true", help="show each of our numbers with its 95%% bootstrap interval")
    tables.add_argument("--plots", action="store_true",
                        help=f"also write PNG and PDF figures into --out-dir (default {DEFAULT_TABLES_DIR})")
    tables.set_defaults(func=cmd_tables)
    results_frame.add_parser(sub)
    regress.add_parser(sub)
