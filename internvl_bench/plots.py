"""Figures of a paper table beside our rows: PNG and PDF, drawn with matplotlib's Agg backend.

What a table is drawn as comes from its ``plot`` key (``results/paper/table_<x>.json``):

- ``{"kind": "bars", "x_label": ...}``: one group of bars per column (Table A's languages, Table B's
  datasets); ``columns`` may pick some.
- ``{"kind": "lines", "x": ROW_KEY, "x_label": ..., "columns": [...]}``: one panel per column, x read
  from each paper row's ``ROW_KEY`` for its variant (Table C's ``frames``; ``"variant"``: the variant as a
  number, Table G's image size).

Drawn are the paper rows that name a registry model (the ones this suite reproduces; hatched, dashed)
and every "(this run)" row (solid), one colour per model, our bootstrap intervals as error bars. Any
table with a "(this run)" row beside its paper row also gets ``table_<x>_diff``: ours minus the
paper's, per column, with our interval shifted alike (a bar whose error bar crosses zero is within
our interval of the paper's number).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (after the backend is chosen)

from internvl_bench.errors import BenchError  # noqa: E402
from internvl_bench.paper_tables import Row, build_rows  # noqa: E402
from internvl_bench.records import ResultRecord  # noqa: E402

FILE_TYPES = ("png", "pdf")
#: no timestamps in the files: the same numbers give the same bytes
METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
           "tab:olive", "tab:cyan")


def plot_table(table: dict[str, Any], records: list[ResultRecord], out_dir: Path) -> list[Path]:
    """Write the table's figures under ``out_dir``; returns the files written (none when nothing to draw)."""
    rows = build_rows(table, records)
    stem = f"table_{table['table'].lower()}"
    written: list[Path] = []
    spec = table.get("plot")
    if spec is not None:
        drawn = [r for r in rows if r.kind == "ours" or (r.kind == "paper" and r.model)]
        if drawn:
            figure = _bars(table, spec, drawn) if spec.get("kind") == "bars" else _lines(table, spec, drawn)
            written += _save(figure, Path(out_dir) / stem)
    pairs = [(ours, delta) for ours, delta in zip(rows, rows[1:]) if delta.kind == "delta"]
    if pairs:
        written += _save(_differences(table, pairs), Path(out_dir) / f"{stem}_diff")
    return written


def _save(figure: Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in FILE_TYPES:
        path = stem.with_suffix(f".{kind}")
        figure.savefig(path, format=kind, dpi=150, bbox_inches="tight", metadata=METADATA[kind])
        paths.append(path)
    return paths


def _title(table: dict[str, Any]) -> str:
    name = f"Table {table['table']}: " if len(table["table"]) == 1 else ""
    return name + table["title"]


def _columns(table: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    by_key = {c["key"]: c for c in table["columns"]}
    unknown = [key for key in spec.get("columns", ()) if key not in by_key]
    if unknown:
        raise BenchError(f"table {table['table']}: plot columns {', '.join(unknown)} are not columns of the table; "
                         f"fix 'plot' in results/paper/table_{table['table'].lower()}.json")
    return [by_key[key] for key in spec["columns"]] if spec.get("columns") else list(table["columns"])


def _colours(rows: list[Row]) -> dict[str, str]:
    """One colour per model, so that the paper's row and ours share it."""
    models = list(dict.fromkeys(row.model or row.series for row in rows))
    return {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(models)}


def _style(row: Row, colour: str) -> dict[str, Any]:
    if row.kind == "paper":
        return {"color": colour, "alpha": 0.45, "hatch": "//", "edgecolor": colour}
    return {"color": colour, "edgecolor": "black", "linewidth": 0.5}


def _legend_name(row: Row) -> str:
    return f"{row.series} (paper)" if row.kind == "paper" else row.series


def _error(row: Row, key: str) -> list[list[float]] | None:
    """matplotlib's ``yerr`` for our cell's interval: distances below and above the value."""
    interval, value = row.intervals.get(key), row.values.get(key)
    if interval is None or value is None:
        return None
    return [[max(value - interval[0], 0.0)], [max(interval[1] - value, 0.0)]]


def _bars(table: dict[str, Any], spec: dict[str, Any], rows: list[Row]) -> Figure:
    columns = _columns(table, spec)
    colours = _colours(rows)
    width = 0.8 / len(rows)
    figure = Figure(figsize=(min(32.0, max(6.4, len(columns) * (0.16 * len(rows) + 0.45))), 4.2))
    axes = figure.subplots()
    for index, row in enumerate(rows):
        style = _style(row, colours[row.model or row.series])
        for position, column in enumerate(columns):
            value = row.values.get(column["key"])
            if value is None:
                continue
            x = position - 0.4 + width * (index + 0.5)
            axes.bar(x, value, width, yerr=_error(row, column["key"]), capsize=2,
                     label=_legend_name(row) if position == _first(row, columns) else None, **style)
    _column_ticks(axes, columns)
    axes.set_xlabel(spec.get("x_label", ""))
    axes.set_ylabel(table.get("metric_note", "").split(";")[0])
    axes.set_title(_title(table), fontsize=10)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(axis="y", alpha=0.3)
    return figure


def _column_ticks(axes: Any, columns: list[dict[str, Any]]) -> None:
    """Column labels under their bar groups, slanted when they would run into each other."""
    labels = [c["label"] for c in columns]
    slanted = len(labels) > 10 or sum(len(label) for label in labels) > 50
    axes.set_xticks(range(len(labels)), labels, rotation=35 if slanted else 0, ha="right" if slanted else "center")


def _first(row: Row, columns: list[dict[str, Any]]) -> int:
    """The first column with a value: where the row's legend entry is attached."""
    return next((i for i, c in enumerate(columns) if row.values.get(c["key"]) is not None), -1)


def _x_positions(table: dict[str, Any], spec: dict[str, Any]) -> dict[str | None, float]:
    """Each variant's x: the paper rows' ``spec["x"]`` (or the variant itself read as a number)."""
    key = spec.get("x", "variant")
    positions: dict[str | None, float] = {}
    for row in table["rows"]:
        value = row.get("variant") if key == "variant" else row.get(key)
        try:
            positions[row.get("variant")] = float(value)
        except (TypeError, ValueError):
            raise BenchError(f"table {table['table']}: row '{row['method']}' has no number '{key}' for the plot's "
                             f"x; fix results/paper/table_{table['table'].lower()}.json") from None
    return positions


def _lines(table: dict[str, Any], spec: dict[str, Any], rows: list[Row]) -> Figure:
    columns = _columns(table, spec)
    positions = _x_positions(table, spec)
    colours = _colours(rows)
    figure = Figure(figsize=(3.6 * len(columns) + 1.0, 3.6), layout="constrained")
    panels = figure.subplots(1, len(columns), squeeze=False)[0]
    series: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.variant in positions:
            series.setdefault((row.kind, row.series), []).append(row)
    for axes, column in zip(panels, columns):
        key = column["key"]
        for (kind, _), members in series.items():
            points = sorted(((positions[r.variant], r.values[key], r) for r in members if r.values.get(key) is not None),
                            key=lambda point: point[0])
            if not points:
                continue
            colour = colours[members[0].model or members[0].series]
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            axes.plot(xs, ys, "--" if kind == "paper" else "-", marker="o", color=colour,
                      alpha=0.6 if kind == "paper" else 1.0, label=_legend_name(members[0]))
            for x, y, row in points:
                error = _error(row, key)
                if error is not None:
                    axes.errorbar([x], [y], yerr=error, color=colour, capsize=2)
        axes.set_xticks(sorted(set(positions.values())))
        axes.set_xlabel(spec.get("x_label", ""))
        axes.set_title(column["label"] + (" (lower is better)" if column.get("better") == "lower" else ""), fontsize=9)
        axes.grid(alpha=0.3)
    panels[0].legend(fontsize=7)
    figure.suptitle(_title(table), fontsize=10)
    return figure


def _differences(table: dict[str, Any], pairs: list[tuple[Row, Row]]) -> Figure:
    columns = [c for c in table["columns"] if any(delta.values.get(c["key"]) is not None for _, delta in pairs)]
    colours = _colours([ours for ours, _ in pairs])
    width = 0.8 / len(pairs)
    figure = Figure(figsize=(min(32.0, max(6.4, len(columns) * (0.16 * len(pairs) + 0.45))), 4.0))
    axes = figure.subplots()
    for index, (ours, delta) in enumerate(pairs):
        colour = colours[ours.model or ours.series]
        for position, column in enumerate(columns):
            value = delta.values.get(column["key"])
            if value is None:
                continue
            axes.bar(position - 0.4 + width * (index + 0.5), value, width, yerr=_error(ours, column["key"]),
                     capsize=2, color=colour, edgecolor="black", linewidth=0.5,
                     label=ours.label if position == _first(delta, columns) else None)
    axes.axhline(0.0, color="black", linewidth=0.8)
    _column_ticks(axes, columns)
    axes.set_ylabel("ours - paper")
    axes.set_title(f"{_title(table)}: difference to the paper", fontsize=10)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(axis="y", alpha=0.3)
    return figure
