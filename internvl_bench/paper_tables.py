"""The paper's tables as data, and the rows that put our numbers beside them.

The paper's numbers live once, in ``results/paper/table_<x>.json``. Keys a table may hold:

- ``columns``: each says which record feeds a cell -- ``task`` (else the row's or the table's), ``variant``
  (else the row's) and ``metric``; ``variants`` + ``combine`` average several records (POPE's three
  splits); ``aggregate`` (``mean`` / ``sum``) + ``over`` combine other columns (an ``avg.``).
  ``better``: ``"higher"`` (default) or ``"lower"`` (Table G's milliseconds) -- which number is bold;
  ``latex_label``: the header as LaTeX markup where the plain ``label`` is not enough (``VQA$^\\mathrm{T}$``).
- ``rows``: the paper's ``values`` per column key, the ``method`` label, optionally a ``section``, the
  ``variant`` all its columns read, and -- when we can reproduce the row -- the registry ``model`` (and
  ``checkpoint``) whose records fill our row.
- ``plot`` (optional): how ``internvl_bench.plots`` draws the table (see there).

``build_rows`` gives, for each paper row that names a model with records, the paper's row, ours
(``(this run)``) and the difference; models we ran that the paper does not list get rows of their own.

Bold, as the paper prints it: within each group of rows that share a ``variant`` (Table C's frame
counts, Table D's datasets, Table G's image sizes; one group elsewhere), the best paper number of each
column is bold, ties included. One of our numbers is bold only when it beats every paper number of
its group and column, compared as printed (one decimal): a bold "(this run)" cell is a new best.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from internvl_bench.errors import BenchError
from internvl_bench.records import ResultRecord

PAPER_DIR = Path(__file__).resolve().parent.parent / "results" / "paper"
#: the supplementary's Tables A-G, and the main text's captioning table
TABLES = (*"ABCDEFG", "caption")
#: the tables print one decimal, as the paper does; bold compares numbers as printed
DECIMALS = 1

Interval = tuple[float, float]


@dataclass
class Row:
    label: str
    values: dict[str, float | None]
    kind: str  # "paper", "ours" or "delta"
    #: our cells' bootstrap intervals (only for "ours" rows, only single-record columns)
    intervals: dict[str, Interval | None] = field(default_factory=dict)
    #: the registry model of the row: the one whose records fill it, or that the paper row names
    model: str | None = None
    #: the variant its columns read; rows of one variant are compared for bold
    variant: str | None = None
    #: column keys printed bold (see the module docstring)
    bold: frozenset[str] = frozenset()
    #: the label without its variant: one method's rows across variants share it (a line in a plot)
    series: str = ""


def load_table(name: str) -> dict[str, Any]:
    key = name if name in TABLES else name.upper()
    path = PAPER_DIR / f"table_{key.lower()}.json"
    if key not in TABLES or not path.is_file():
        raise BenchError(f"unknown table '{name}'; choose from {', '.join(TABLES)} or 'all'")
    return json.loads(path.read_text(encoding="utf-8"))


def lookup(records: list[ResultRecord], model: str, checkpoint: str | None, task: str, variant: str) -> ResultRecord | None:
    """The newest record of (model, checkpoint, task, variant); any checkpoint when ``checkpoint`` is None."""
    matches = [
        r for r in records
        if r.model == model and r.task == task and r.variant == variant and (checkpoint is None or r.checkpoint == checkpoint)
    ]
    return max(matches, key=lambda r: r.created) if matches else None


def model_label(model: str, checkpoint: str | None) -> str:
    return model + (f"@{Path(checkpoint).name}" if checkpoint else "")


def column_task(table: dict[str, Any], row: dict[str, Any], column: dict[str, Any]) -> str | None:
    return column.get("task") or row.get("task") or table.get("task")


def column_variants(row: dict[str, Any], column: dict[str, Any]) -> list[str | None]:
    """The variants a column reads: several when it combines them (POPE's three splits), else one."""
    return column.get("variants") or [column.get("variant") or row.get("variant")]


def table_tasks(table: dict[str, Any]) -> set[str | None]:
    return {c.get("task") or table.get("task") for c in table["columns"]} | {r.get("task") for r in table["rows"]}


def lower_is_better(column: dict[str, Any]) -> bool:
    """A column's ``better`` key: ``"lower"`` for timings, ``"higher"`` (the default) for scores."""
    better = column.get("better", "higher")
    if better not in ("higher", "lower"):
        raise BenchError(f"column '{column['key']}': 'better' is {better!r}; use \"higher\" or \"lower\" in "
                         f"results/paper/table_<x>.json")
    return better == "lower"


def our_values(table: dict[str, Any], records: list[ResultRecord], model: str, checkpoint: str | None, row: dict[str, Any]) -> dict[str, float | None]:
    """Our value for each column of ``row`` (None where no record exists), aggregates included."""
    values: dict[str, float | None] = {}
    for column in table["columns"]:
        if "aggregate" in column:
            continue
        task = column_task(table, row, column)
        parts = []
        for variant in column_variants(row, column):
            record = lookup(records, model, checkpoint, task, variant) if task and variant else None
            value = record.metrics.get(column["metric"]) if record else None
            parts.append(None if value is None or math.isnan(value) else value)
        if len(parts) == 1:
            values[column["key"]] = parts[0]
        else:
            values[column["key"]] = sum(parts) / len(parts) if all(p is not None for p in parts) else None
    for column in table["columns"]:
        if "aggregate" in column:
            parts = [values.get(key) for key in column["over"]]
            if parts and all(p is not None for p in parts):
                total = sum(parts)
                values[column["key"]] = total / len(parts) if column["aggregate"] == "mean" else total
            else:
                values[column["key"]] = None
    return values


def our_intervals(
    table: dict[str, Any], records: list[ResultRecord], model: str, checkpoint: str | None, row: dict[str, Any]
) -> dict[str, Interval | None]:
    """The record interval of each column read from one record's metric; None for the others."""
    intervals: dict[str, Interval | None] = {}
    for column in table["columns"]:
        task, variants = column_task(table, row, column), column_variants(row, column)
        record = None
        if "aggregate" not in column and len(variants) == 1 and task and variants[0]:
            record = lookup(records, model, checkpoint, task, variants[0])
        intervals[column["key"]] = record_interval(record, column["metric"]) if record else None
    return intervals


def record_interval(record: ResultRecord, metric: str) -> Interval | None:
    """The record's interval of ``metric`` when it has a finite one."""
    interval = record.intervals.get(metric)
    if interval is None or not all(math.isfinite(bound) for bound in interval):
        return None
    return (interval[0], interval[1])


def build_rows(table: dict[str, Any], records: list[ResultRecord]) -> list[Row]:
    """The paper's rows, ours and the differences, in print order, with the bold cells marked."""
    rows: list[Row] = []
    covered: set[tuple[str, str | None]] = set()
    keys = [c["key"] for c in table["columns"]]
    for paper in table["rows"]:
        suffix = f" [{paper['section']}]" if paper.get("section") else ""
        suffix += f" ({paper['variant']})" if paper.get("variant") and not paper.get("section") else ""
        variant = paper.get("variant")
        rows.append(Row(paper["method"] + suffix, {k: paper["values"].get(k) for k in keys}, "paper",
                        model=paper.get("model"), variant=variant, series=paper["method"]))
        if not paper.get("model"):
            continue
        covered.add((paper["model"], variant))
        ours = our_values(table, records, paper["model"], paper.get("checkpoint"), paper)
        if any(v is not None for v in ours.values()):
            intervals = our_intervals(table, records, paper["model"], paper.get("checkpoint"), paper)
            name = f"{paper['model']} (this run)"
            rows.append(Row(name + suffix, ours, "ours", intervals, paper["model"], variant, series=name))
            delta = {
                k: None if ours[k] is None or paper["values"].get(k) is None else ours[k] - paper["values"][k]
                for k in keys
            }
            rows.append(Row("  difference", delta, "delta", model=paper["model"], variant=variant, series="difference"))
    row_variants = list(dict.fromkeys(r.get("variant") for r in table["rows"])) or [None]
    tasks = table_tasks(table)
    for model, checkpoint in sorted({(r.model, r.checkpoint) for r in records if r.task in tasks}, key=str):
        for variant in row_variants:
            if (model, variant) in covered:
                continue
            ours = our_values(table, records, model, checkpoint, {"variant": variant})
            if any(v is not None for v in ours.values()):
                name = f"{model_label(model, checkpoint)} (this run)"
                label = model_label(model, checkpoint) + (f" ({variant})" if variant else "") + " (this run)"
                intervals = our_intervals(table, records, model, checkpoint, {"variant": variant})
                rows.append(Row(label, ours, "ours", intervals, model, variant, series=name))
    return mark_best(table, rows)


def mark_best(table: dict[str, Any], rows: list[Row]) -> list[Row]:
    """``rows`` with ``bold`` set: the best paper number per column and variant, and ours that beat it."""
    for column in table["columns"]:
        key, sign = column["key"], -1.0 if lower_is_better(column) else 1.0
        for variant in {row.variant for row in rows}:
            group = [row for row in rows if row.variant == variant and row.values.get(key) is not None]
            paper = [sign * round(row.values[key], DECIMALS) for row in group if row.kind == "paper"]
            best = max(paper, default=-math.inf)
            for row in group:
                printed = sign * round(row.values[key], DECIMALS)
                if (row.kind == "paper" and printed == best) or (row.kind == "ours" and bool(paper) and printed > best):
                    row.bold = row.bold | {key}
    return rows
