"""A paper table beside our rows as GitHub Markdown or LaTeX, laid out by ``tabulate``.

The LaTeX is a ``table`` float around a ``tabular`` with booktabs rules (``\\toprule``, ``\\midrule``
between the header and the body and between groups of rows of different variants, ``\\bottomrule``):
it compiles with ``\\usepackage{booktabs}`` alone. Bold cells (``internvl_bench.paper_tables``) are
``**x**`` / ``\\textbf{x}``; with ``ci`` our single-record cells carry their 95% bootstrap interval,
``56.4 [54.1, 58.7]`` (LaTeX: the interval in ``\\scriptsize``). A column may give a ``latex_label``
(LaTeX markup) beside its plain ``label``.
"""
from __future__ import annotations

from typing import Any

from tabulate import SEPARATING_LINE, Line, TableFormat, tabulate

from internvl_bench.errors import BenchError
from internvl_bench.paper_tables import DECIMALS, Row, build_rows
from internvl_bench.records import ResultRecord

FORMATS = ("md", "latex")
#: LaTeX's special characters and the non-ASCII ones the tables use, as text-mode markup
LATEX_TEXT = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
              "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "→": r"$\rightarrow$",
              "†": r"\textdagger{}", "×": r"$\times$"}
#: tables wider than this many number columns are set smaller so that they fit a page's width
WIDE_TABLE = 10


def _booktabs_begin(colwidths: list[int], colaligns: list[str]) -> str:
    return "\\begin{tabular}{l" + "c" * (len(colwidths) - 1) + "}\n\\toprule"


def _latex_row(cells: list[str], colwidths: list[int], colaligns: list[str]) -> str:
    return "&".join(cells) + r"\\"


#: tabulate's ``latex_booktabs`` rules without its escaping: cells arrive as LaTeX already
BOOKTABS = TableFormat(
    lineabove=_booktabs_begin, linebelowheader=Line(r"\midrule", "", "", ""), linebetweenrows=None,
    linebelow=Line("\\bottomrule\n\\end{tabular}", "", "", ""), headerrow=_latex_row, datarow=_latex_row,
    padding=1, with_header_hide=None,
)


def latex_escape(text: str) -> str:
    return "".join(LATEX_TEXT.get(char, char) for char in text)


def _number(value: float, kind: str, fmt: str) -> str:
    text = f"{value:+.{DECIMALS}f}" if kind == "delta" else f"{value:.{DECIMALS}f}"
    return "$-$" + text[1:] if fmt == "latex" and text.startswith("-") else text


def _cells(row: Row, keys: list[str], fmt: str, ci: bool) -> list[str]:
    """A row's cells in ``fmt``: bold where marked, our values followed by their interval when ``ci`` asks."""
    cells = []
    for key in keys:
        value = row.values.get(key)
        if value is None:
            cells.append("-")
            continue
        text = _number(value, row.kind, fmt)
        if key in row.bold:
            text = rf"\textbf{{{text}}}" if fmt == "latex" else f"**{text}**"
        interval = row.intervals.get(key) if ci else None
        if interval is not None:
            bounds = f"[{_number(interval[0], 'ours', fmt)}, {_number(interval[1], 'ours', fmt)}]"
            text += rf" {{\scriptsize {bounds}}}" if fmt == "latex" else f" {bounds}"
        cells.append(text)
    return cells


def caption(table: dict[str, Any], ci: bool) -> str:
    name = f"Table {table['table']}: " if len(table["table"]) == 1 else ""
    text = f"{name}{table['title']} -- {table.get('metric_note', '')}"
    return text + ("; [low, high]: 95% bootstrap interval of our number" if ci else "")


def render(table: dict[str, Any], records: list[ResultRecord], fmt: str, ci: bool = False) -> str:
    """The table in ``fmt`` (md or latex); ``ci`` adds our cells' bootstrap intervals."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown format '{fmt}'; choose md or latex")
    rows = build_rows(table, records)
    keys = [c["key"] for c in table["columns"]]
    return _markdown(table, rows, keys, ci) if fmt == "md" else _latex(table, rows, keys, ci)


def _markdown(table: dict[str, Any], rows: list[Row], keys: list[str], ci: bool) -> str:
    header = ["method"] + [c["label"] for c in table["columns"]]
    body = [[cell.replace("|", r"\|") for cell in [r.label.strip(), *_cells(r, keys, "md", ci)]] for r in rows]
    grid = tabulate(body, header, tablefmt="pipe", colalign=("left", *["right"] * len(keys)), disable_numparse=True)
    source = table.get("source", "the InternVL supplementary")
    lines = [f"**{caption(table, ci)}**", "", grid, "",
             f"Paper rows are quoted from {source}; '(this run)' rows come from result records. "
             "Bold: the paper's best per column; ours when it beats every paper row."]
    if table.get("paper_rows_note"):
        lines.append(f"Paper rows: {table['paper_rows_note']}")
    return "\n".join(lines) + "\n"


def _latex(table: dict[str, Any], rows: list[Row], keys: list[str], ci: bool) -> str:
    header = ["method"] + [c.get("latex_label") or latex_escape(c["label"]) for c in table["columns"]]
    body: list[list[str]] = []
    for previous, row in zip([None, *rows], rows):
        if previous is not None and previous.variant != row.variant:
            body.append([SEPARATING_LINE])
        body.append([latex_escape(row.label.strip()), *_cells(row, keys, "latex", ci)])
    grid = tabulate(body, header, tablefmt=BOOKTABS, colalign=["left"] * (len(keys) + 1), disable_numparse=True)
    small = [r"\scriptsize", r"\setlength{\tabcolsep}{2pt}"] if len(keys) > WIDE_TABLE else []
    lines = [r"\begin{table}[t]", r"\centering", *small, grid, rf"\caption{{{latex_escape(caption(table, ci))}}}",
             r"\end{table}"]
    return "\n".join(lines) + "\n"
