"""Paper tables beside our numbers (``tables``) and the CI regression gate (``regress``).

The paper's numbers live once, as data, in ``results/paper/table_<x>.json``: columns say which
record (task, variant, metric) a cell comes from, rows carry the paper's values and, when we can
reproduce the row, the registry ``model`` (and ``checkpoint``) whose records fill our row. For every
such row the rendered table shows the paper's row, ours, and the difference; models we ran that
the paper does not list get rows of their own.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from internvl_bench.errors import BenchError
from internvl_bench.records import DEFAULT_RUNS_DIR, ResultRecord, load_records, write_atomic

PAPER_DIR = Path(__file__).resolve().parent.parent / "results" / "paper"
#: the supplementary's Tables A-G, and the main text's captioning table
TABLES = (*"ABCDEFG", "caption")


@dataclass
class Row:
    label: str
    values: dict[str, float | None]
    kind: str  # "paper", "ours" or "delta"


def load_table(name: str) -> dict[str, Any]:
    key = name if name in TABLES else name.upper()
    path = PAPER_DIR / f"table_{key.lower()}.json"
    if key not in TABLES or not path.is_file():
        raise BenchError(f"unknown table '{name}'; choose from {', '.join(TABLES)} or 'all'")
    return json.loads(path.read_text(encoding="utf-8"))


def _lookup(records: list[ResultRecord], model: str, checkpoint: str | None, task: str, variant: str) -> ResultRecord | None:
    matches = [
        r for r in records
        if r.model == model and r.task == task and r.variant == variant and (checkpoint is None or r.checkpoint == checkpoint)
    ]
    return max(matches, key=lambda r: r.created) if matches else None


def our_values(table: dict[str, Any], records: list[ResultRecord], model: str, checkpoint: str | None, row: dict[str, Any]) -> dict[str, float | None]:
    """Our value for each column of ``row`` (None where no record exists), aggregates included."""
    values: dict[str, float | None] = {}
    for column in table["columns"]:
        if "aggregate" in column:
            continue
        task = column.get("task") or row.get("task") or table.get("task")
        # a column may combine one metric over several variants (POPE: the mean F1 of its three splits)
        variants = column.get("variants") or [column.get("variant") or row.get("variant")]
        parts = []
        for variant in variants:
            record = _lookup(records, model, checkpoint, task, variant) if task and variant else None
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


def build_rows(table: dict[str, Any], records: list[ResultRecord]) -> list[Row]:
    rows: list[Row] = []
    covered: set[tuple[str, str | None]] = set()
    keys = [c["key"] for c in table["columns"]]
    for paper in table["rows"]:
        suffix = f" [{paper['section']}]" if paper.get("section") else ""
        suffix += f" ({paper['variant']})" if paper.get("variant") and not paper.get("section") else ""
        rows.append(Row(paper["method"] + suffix, {k: paper["values"].get(k) for k in keys}, "paper"))
        if not paper.get("model"):
            continue
        covered.add((paper["model"], paper.get("variant")))
        ours = our_values(table, records, paper["model"], paper.get("checkpoint"), paper)
        if any(v is not None for v in ours.values()):
            rows.append(Row(f"{paper['model']} (this run){suffix}", ours, "ours"))
            delta = {
                k: None if ours[k] is None or paper["values"].get(k) is None else ours[k] - paper["values"][k]
                for k in keys
            }
            rows.append(Row("  difference", delta, "delta"))
    row_variants = list(dict.fromkeys(r.get("variant") for r in table["rows"])) or [None]
    tasks = {c.get("task") or table.get("task") for c in table["columns"]} | {r.get("task") for r in table["rows"]}
    for model, checkpoint in sorted({(r.model, r.checkpoint) for r in records if r.task in tasks}, key=str):
        for variant in row_variants:
            if (model, variant) in covered:
                continue
            ours = our_values(table, records, model, checkpoint, {"variant": variant})
            if any(v is not None for v in ours.values()):
                label = model + (f"@{Path(checkpoint).name}" if checkpoint else "") + (f" ({variant})" if variant else "")
                rows.append(Row(f"{label} (this run)", ours, "ours"))
    return rows


def _latex_escape(text: str) -> str:
    for char in "_%&#":
        text = text.replace(char, "\\" + char)
    return text


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}" if kind == "delta" else f"{value:.1f}"


def render(table: dict[str, Any], records: list[ResultRecord], fmt: str) -> str:
    rows = build_rows(table, records)
    header = ["method"] + [c["label"] for c in table["columns"]]
    body = [[r.label] + [_cell(r.values.get(c["key"]), r.kind) for c in table["columns"]] for r in rows]
    name = f"Table {table['table']}: " if len(table["table"]) == 1 else ""
    caption = f"{name}{table['title']} -- {table.get('metric_note', '')}"
    if fmt == "md":
        lines = [f"**{caption}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        source = table.get("source", "the InternVL supplementary")
        lines += ["", f"Paper rows are quoted from {source}; '(this run)' rows come from result records."]
        if table.get("paper_rows_note"):
            lines.append(f"Paper rows: {table['paper_rows_note']}")
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule"]
        lines.append(" & ".join(_latex_escape(h) for h in header) + r" \\")
        lines.append(r"\midrule")
        for row, cells in zip(rows, body):
            text = " & ".join(_latex_escape(c) for c in cells) + r" \\"
            lines.append(r"\rowcolor{gray!10} " + text if row.kind == "ours" else text)
        lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_latex_escape(caption)}}}", r"\end{table}"]
        return "\n".join(lines) + "\n"
    raise BenchError(f"unknown format '{fmt}'; choose md or latex")


def cmd_tables(args: argparse.Namespace) -> int:
    letters = list(TABLES) if args.table.lower() == "all" else [args.table]
    tables = [load_table(letter) for letter in letters]
    records = load_records(args.runs)
    for letter, table in zip(letters, tables):
        text = render(table, records, args.format)
        if args.out_dir:
            path = Path(args.out_dir) / f"table_{letter.lower()}.{'md' if args.format == 'md' else 'tex'}"
            write_atomic(path, text)
            print(f"wrote {path}")
        else:
            print(text)
    return 0


# -- regression gate ---------------------------------------------------------------------------

def baseline_entries(records: list[ResultRecord]) -> list[dict[str, Any]]:
    return [
        {"model": r.model, "checkpoint": r.checkpoint, "task": r.task, "variant": r.variant, "metric": m, "value": v}
        for r in records for m, v in r.metrics.items() if not math.isnan(v)
    ]


def check_regressions(baseline: dict[str, Any], records: list[ResultRecord], tolerance: float | None) -> list[str]:
    """Every baseline number that is missing or moved beyond tolerance, one line each."""
    default = tolerance if tolerance is not None else float(baseline.get("tolerance", 0.0))
    problems = []
    for entry in baseline["entries"]:
        where = f"{entry['model']} {entry['task']}/{entry['variant']} {entry['metric']}"
        record = _lookup(records, entry["model"], entry.get("checkpoint"), entry["task"], entry["variant"])
        value = record.metrics.get(entry["metric"]) if record else None
        if value is None or math.isnan(value):
            problems.append(f"missing  {where}: baseline {entry['value']:.4f}, no result record")
            continue
        allowed = entry.get("tolerance", default) if tolerance is None else tolerance
        if abs(value - entry["value"]) > allowed:
            problems.append(f"moved    {where}: {entry['value']:.4f} -> {value:.4f} ({value - entry['value']:+.4f}, tolerance {allowed})")
    return problems


def cmd_regress(args: argparse.Namespace) -> int:
    records = load_records(args.runs)
    if args.write_baseline:
        data = {"tolerance": args.tolerance if args.tolerance is not None else 0.0, "entries": baseline_entries(records)}
        write_atomic(Path(args.write_baseline), json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.write_baseline} with {len(data['entries'])} numbers")
        return 0
    if not args.baseline:
        raise BenchError("regress needs --baseline FILE (or --write-baseline FILE to create one)")
    try:
        baseline = json.loads(Path(args.baseline).read_text(encoding="utf-8"))
        baseline["entries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"{args.baseline}: not a baseline file ({exc}); create one with --write-baseline") from None
    problems = check_regressions(baseline, records, args.tolerance)
    for line in problems:
        print(line)
    print(f"{len(baseline['entries']) - len(problems)} of {len(baseline['entries'])} numbers within tolerance")
    return 1 if problems else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tables = sub.add_parser("tables", help="render paper tables beside our results")
    tables.add_argument("--table", default="all", help="A..G, caption, or all")
    tables.add_argument("--format", choices=["md", "latex"], default="md")
    tables.add_argument("--runs", type=Path, default=DEFAULT_RUNS_DIR, help="folder of result records")
    tables.add_argument("--out-dir", type=Path, help="write files there instead of printing")
    tables.set_defaults(func=cmd_tables)

    regress = sub.add_parser("regress", help="fail when a number moved beyond tolerance (for CI)")
    regress.add_argument("--baseline", type=Path, help="leaderboard JSON to compare with")
    regress.add_argument("--tolerance", type=float, help="absolute tolerance (overrides the file's)")
    regress.add_argument("--runs", type=Path, default=DEFAULT_RUNS_DIR)
    regress.add_argument("--write-baseline", type=Path, help="write the current records as a baseline file")
    regress.set_defaults(func=cmd_regress)
