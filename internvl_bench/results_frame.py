"""``internvl-bench results``: every record as one flat table, the thing people load into a notebook.

One row per (model, checkpoint, task, variant, metric), with the number, its 95% bootstrap interval
(``ci_low``, ``ci_high``; empty without one), ``n_samples``, ``precision``, ``options_hash`` (the first
12 hex digits of the sha256 of the record's options as sorted JSON: rows with equal hashes ran the same
protocol), the ``git_commit`` that produced it and its ``created`` time (UTC). A NaN metric (``acc5`` of a
two-class dataset) stays a row with an empty value.

    internvl-bench results [--runs DIR] [--format csv|parquet|json|md] [--out FILE]

Without ``--format`` the format follows ``--out``'s suffix (csv otherwise); without ``--out`` the table
is printed (parquet needs ``--out``). ``pandas.read_csv(FILE, parse_dates=["created"])``,
``pandas.read_parquet(FILE)`` and ``pandas.read_json(FILE)`` read it back.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from internvl_bench.errors import BenchError
from internvl_bench.records import DEFAULT_RUNS_DIR, ResultRecord, load_records, write_atomic

FORMATS = ("csv", "parquet", "json", "md")
COLUMNS = ("model", "checkpoint", "task", "task_version", "variant", "metric", "value", "ci_low", "ci_high",
           "n_samples", "precision", "options_hash", "git_commit", "created")
KEY = ["model", "checkpoint", "task", "variant", "metric"]


def options_hash(options: dict[str, Any]) -> str:
    """The identity of a protocol: equal options, equal hash."""
    text = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _rows(record: ResultRecord) -> list[dict[str, Any]]:
    shared = {
        "model": record.model, "checkpoint": record.checkpoint, "task": record.task,
        "task_version": record.task_version, "variant": record.variant, "n_samples": record.n_samples,
        "precision": record.options.get("precision"), "options_hash": options_hash(record.options),
        "git_commit": (record.provenance.get("git") or {}).get("commit"), "created": record.created,
    }
    rows = []
    for metric, value in record.metrics.items():
        low, high = record.intervals.get(metric, (None, None))
        rows.append({**shared, "metric": metric, "value": value, "ci_low": low, "ci_high": high})
    return rows


def results_frame(records: list[ResultRecord]) -> pd.DataFrame:
    """The records flattened to one row per metric, sorted by model, checkpoint, task, variant, metric."""
    frame = pd.DataFrame([row for record in records for row in _rows(record)], columns=list(COLUMNS))
    for column in ("value", "ci_low", "ci_high"):
        frame[column] = frame[column].astype("float64")
    frame["n_samples"] = frame["n_samples"].astype("int64")
    frame["created"] = pd.to_datetime(frame["created"], utc=True, format="ISO8601")
    return frame.sort_values(KEY, na_position="first", ignore_index=True)


def write_results(frame: pd.DataFrame, fmt: str, out: Path | None) -> str | None:
    """``frame`` as ``fmt`` into ``out`` (atomically), or returned as text when ``out`` is None."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown results format '{fmt}'; choose {', '.join(FORMATS)}")
    if fmt == "parquet":
        if out is None:
            raise BenchError("--format parquet is binary: give --out FILE.parquet")
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, out)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return None
    if fmt == "csv":
        text = frame.to_csv(index=False)
    elif fmt == "json":
        text = frame.to_json(orient="records", date_format="iso", indent=2) + "\n"
    else:
        text = frame.to_markdown(index=False, tablefmt="github") + "\n"
    if out is None:
        return text
    write_atomic(out, text)
    return None


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    suffix = args.out.suffix.lstrip(".").lower() if args.out else ""
    return suffix if suffix in FORMATS else "csv"


def cmd_results(args: argparse.Namespace) -> int:
    frame = results_frame(load_records(args.runs))
    text = write_results(frame, _format(args), args.out)
    if text is None:
        print(f"wrote {args.out} ({len(frame)} rows)")
    else:
        print(text, end="")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    results = sub.add_parser("results", help="every record flattened to one row per metric (csv, parquet, json, md)")
    results.add_argument("--runs", type=Path, default=DEFAULT_RUNS_DIR, help="folder of result records")
    results.add_argument("--format", choices=FORMATS, help="default: from --out's suffix, else csv")
    results.add_argument("--out", type=Path, help="write the table there instead of printing it")
    results.set_defaults(func=cmd_results)
