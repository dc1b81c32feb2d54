"""The CI regression gate, ``internvl-bench regress``: fail listing every number that moved.

Every record carries a 95% percentile-bootstrap interval per metric (``ResultRecord.intervals``; see
``internvl_bench.bootstrap`` and each task's docstring for what is resampled); the gate can use them:

- ``regress --write-baseline FILE`` stores each number with its record's interval (``"interval"``).
- ``regress --tolerance ci``: a number may move by its own interval's half-width -- the baseline
  entry's, else the current record's -- but at least ``--ci-floor`` (default 0.1); a number with
  neither interval gets the floor. A baseline without any interval compared with records without any
  is refused. ``--tolerance X`` is an absolute tolerance, as before.
- ``regress --baseline paper`` compares the records with the paper's numbers of every table row that
  names a registry ``model`` (and ``checkpoint``): plain columns, combined-variant columns (mean of
  their variants) and aggregate columns (sum / mean of other columns), computed as ``tables`` does.
  A number is *missing* when the model has records for that table but not this number; rows whose
  model has no record for the table are skipped, one line each. Default tolerance: 0.1 absolute.
- ``regress --junit FILE`` also writes JUnit XML: one ``<testcase>`` per compared number, with a
  ``<failure>`` carrying the printed line for a moved or missing one.
- Exit status 1 when a number moved or is missing, 0 otherwise.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from internvl_bench.errors import BenchError
from internvl_bench.paper_tables import (
    TABLES, Interval, column_task, column_variants, load_table, lookup, model_label, our_intervals, our_values,
    record_interval, table_tasks,
)
from internvl_bench.records import DEFAULT_RUNS_DIR, ResultRecord, load_records, write_atomic

#: ``--baseline paper`` without ``--tolerance``: the paper rounds to one decimal
PAPER_TOLERANCE = 0.1
DEFAULT_CI_FLOOR = 0.1


@dataclass(frozen=True)
class Expected:
    """One number of a baseline (a baseline file's entry or a paper cell) beside the records' value."""

    name: str  # e.g. "internvl-g xtd/en i2t_R@10"
    value: float
    current: float | None
    #: the interval stored with the baseline number, and the current record's
    baseline_interval: Interval | None = None
    record_interval: Interval | None = None
    #: the entry's own absolute tolerance (a baseline file may set one per entry; ``--tolerance`` overrides it)
    tolerance: float | None = None


@dataclass(frozen=True)
class Check:
    """The verdict on one number: ``allowed`` is the tolerance applied, ``basis`` how it was chosen."""

    expected: Expected
    source: str  # "baseline" or "paper"
    allowed: float
    basis: str = ""

    @property
    def missing(self) -> bool:
        return self.expected.current is None

    @property
    def failed(self) -> bool:
        return self.missing or abs(self.expected.current - self.expected.value) > self.allowed

    def line(self) -> str:
        """What ``regress`` prints for a moved or missing number."""
        e = self.expected
        if e.current is None:
            return f"missing  {e.name}: {self.source} {e.value:.4f}, no result record"
        return (f"moved    {e.name}: {e.value:.4f} -> {e.current:.4f} ({e.current - e.value:+.4f}, "
                f"tolerance {self.allowed:.4g}{self.basis})")


def baseline_entries(records: list[ResultRecord]) -> list[dict[str, Any]]:
    """The records' numbers as baseline entries, each with its interval when the record has one; timings
    (a record's ``details["timed_metrics"]``, e.g. Table G's) vary run to run and are left out."""
    entries = []
    for r in records:
        timed = set(r.details.get("timed_metrics", ()))
        for metric, value in r.metrics.items():
            if math.isnan(value) or metric in timed:
                continue
            entry = {"model": r.model, "checkpoint": r.checkpoint, "task": r.task, "variant": r.variant,
                     "metric": metric, "value": value}
            interval = record_interval(r, metric)
            if interval is not None:
                entry["interval"] = list(interval)
            entries.append(entry)
    return entries


def file_expectations(baseline: dict[str, Any], records: list[ResultRecord]) -> list[Expected]:
    """A baseline file's entries beside the newest matching record's values."""
    expected = []
    for entry in baseline["entries"]:
        record = lookup(records, entry["model"], entry.get("checkpoint"), entry["task"], entry["variant"])
        value = record.metrics.get(entry["metric"]) if record else None
        stored = entry.get("interval")
        label = model_label(entry["model"], entry.get("checkpoint"))
        expected.append(Expected(
            name=f"{label} {entry['task']}/{entry['variant']} {entry['metric']}",
            value=float(entry["value"]),
            current=None if value is None or math.isnan(value) else value,
            baseline_interval=None if stored is None or None in stored else (float(stored[0]), float(stored[1])),
            record_interval=record_interval(record, entry["metric"]) if record else None,
            tolerance=entry.get("tolerance"),
        ))
    return expected


def paper_expectations(records: list[ResultRecord]) -> tuple[list[Expected], list[str]]:
    """The paper's numbers of every row naming a registry model, beside ours (as ``tables`` computes
    them); and one line per (table, row) skipped because its model has no record for that table."""
    expected: list[Expected] = []
    skipped: list[str] = []
    for letter in TABLES:
        table = load_table(letter)
        tasks = table_tasks(table)
        for row in table["rows"]:
            if not row.get("model"):
                continue
            model, checkpoint = row["model"], row.get("checkpoint")
            label = model_label(model, checkpoint)
            numbers = [c for c in table["columns"] if row["values"].get(c["key"]) is not None]
            ran = any(r.model == model and r.task in tasks and (checkpoint is None or r.checkpoint == checkpoint)
                      for r in records)
            if not ran:
                if numbers:
                    skipped.append(f"skipped  Table {table['table']} {label}{_row_suffix(row)}: no record for this "
                                   f"table ({len(numbers)} paper numbers)")
                continue
            ours = our_values(table, records, model, checkpoint, row)
            intervals = our_intervals(table, records, model, checkpoint, row)
            for column in numbers:
                expected.append(Expected(
                    name=f"{label} {_paper_cell_name(table, row, column)}",
                    value=float(row["values"][column["key"]]),
                    current=ours[column["key"]],
                    record_interval=intervals[column["key"]],
                ))
    return expected, skipped


def _row_suffix(row: dict[str, Any]) -> str:
    return f" ({row['variant']})" if row.get("variant") else ""


def _paper_cell_name(table: dict[str, Any], row: dict[str, Any], column: dict[str, Any]) -> str:
    """``task/variant metric`` for a plain column; the combination or aggregate spelled out otherwise."""
    if "aggregate" in column:
        return (f"Table {table['table']}{_row_suffix(row)} {column['label']} "
                f"({column['aggregate']} of {len(column['over'])} columns)")
    task, variants = column_task(table, row, column), column_variants(row, column)
    if len(variants) > 1:
        return f"{task}/{'+'.join(v or '' for v in variants)} {column['metric']} ({column.get('combine', 'mean')})"
    return f"{task}/{variants[0]} {column['metric']}"


def judge(
    expected: list[Expected], source: str, tolerance: float | str, ci_floor: float = DEFAULT_CI_FLOOR
) -> list[Check]:
    """A ``Check`` per number: ``tolerance`` is absolute, or ``"ci"`` (see the module docstring)."""
    if tolerance != "ci":
        return [Check(e, source, float(tolerance if e.tolerance is None else e.tolerance)) for e in expected]
    checks = []
    for e in expected:
        interval = e.baseline_interval or e.record_interval
        if interval is None:
            checks.append(Check(e, source, ci_floor, " (ci floor: no interval)"))
        else:
            checks.append(Check(e, source, max((interval[1] - interval[0]) / 2, ci_floor), " (ci)"))
    return checks


def write_junit(path: Path, checks: list[Check], suite: str) -> None:
    """JUnit XML: one ``<testcase>`` per number, a ``<failure>`` with the printed line for each failed one."""
    failures = sum(c.failed for c in checks)
    root = ET.Element("testsuites", name="internvl-bench regress", tests=str(len(checks)), failures=str(failures))
    element = ET.SubElement(root, "testsuite", name=suite, tests=str(len(checks)), failures=str(failures))
    for check in checks:
        case = ET.SubElement(element, "testcase", classname=f"regress.{check.source}", name=check.expected.name)
        if check.failed:
            failure = ET.SubElement(case, "failure", message=check.line(), type="missing" if check.missing else "moved")
            failure.text = check.line()
    ET.indent(root)
    write_atomic(path, '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


def _read_baseline(path: Path) -> dict[str, Any]:
    try:
        baseline = json.loads(Path(path).read_text(encoding="utf-8"))
        baseline["entries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"{path}: not a baseline file ({exc}); create one with --write-baseline") from None
    tolerance = baseline.get("tolerance", 0.0)
    if tolerance != "ci" and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))):
        raise BenchError(f"{path}: 'tolerance' is {tolerance!r}; it must be a number or \"ci\"")
    return baseline


def _expectations(
    args: argparse.Namespace, records: list[ResultRecord]
) -> tuple[list[Expected], list[str], str, float | str]:
    """The numbers to compare, the skipped paper rows, the source's name and the tolerance to apply."""
    if str(args.baseline) == "paper":
        expected, skipped = paper_expectations(records)
        return expected, skipped, "paper", PAPER_TOLERANCE if args.tolerance is None else args.tolerance
    baseline = _read_baseline(args.baseline)
    expected = file_expectations(baseline, records)
    if args.tolerance is None:
        return expected, [], "baseline", baseline.get("tolerance", 0.0)
    # the command line's tolerance overrides the entries' own
    return [dataclasses.replace(e, tolerance=None) for e in expected], [], "baseline", args.tolerance


def _require_intervals(expected: list[Expected], args: argparse.Namespace) -> None:
    """``--tolerance ci`` needs an interval somewhere: refuse a comparison that has none at all."""
    if not expected or any(e.baseline_interval or e.record_interval for e in expected):
        return
    paper = str(args.baseline) == "paper"
    where = f"the records under {args.runs}" if paper else f"neither {args.baseline} nor the records under {args.runs}"
    rewrite = "" if paper else " and rewrite the baseline with --write-baseline"
    raise BenchError(f"--tolerance ci: {where} have intervals; re-run the tasks (intervals are on by default, "
                     f"--bootstrap-resamples N){rewrite}, or give an absolute --tolerance")


def cmd_regress(args: argparse.Namespace) -> int:
    records = load_records(args.runs)
    if args.write_baseline:
        data: dict[str, Any] = {"tolerance": args.tolerance if args.tolerance is not None else 0.0,
                                "entries": baseline_entries(records)}
        write_atomic(Path(args.write_baseline), json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.write_baseline} with {len(data['entries'])} numbers")
        return 0
    if not args.baseline:
        raise BenchError("regress needs --baseline FILE or --baseline paper (or --write-baseline FILE to create one)")
    expected, skipped, source, tolerance = _expectations(args, records)
    if tolerance == "ci":
        _require_intervals(expected, args)
    checks = judge(expected, source, tolerance, args.ci_floor)
    for line in skipped + [c.line() for c in checks if c.failed]:
        print(line)
    print(f"{sum(not c.failed for c in checks)} of {len(checks)} numbers within tolerance"
          + (f"; {len(skipped)} paper rows skipped (no records for their table)" if skipped else ""))
    if args.junit:
        write_junit(args.junit, checks, "paper" if source == "paper" else f"baseline {args.baseline}")
        print(f"wrote {args.junit}")
    return 1 if any(c.failed for c in checks) else 0


def _tolerance(text: str) -> float | str:
    """``--tolerance``: an absolute number, or ``ci``."""
    if text == "ci":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is neither a number nor 'ci'") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"'{text}': a tolerance is >= 0")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    regress = sub.add_parser("regress", help="fail when a number moved beyond tolerance (for CI)")
    regress.add_argument("--baseline", type=Path,
                         help="leaderboard JSON to compare with, or 'paper' (the paper's tables)")
    regress.add_argument("--tolerance", type=_tolerance,
                         help="absolute tolerance (overrides the file's; paper: 0.1), or 'ci': each number's "
                              "interval half-width")
    regress.add_argument("--ci-floor", type=float, default=DEFAULT_CI_FLOOR,
                         help=f"--tolerance ci: the smallest tolerance (default {DEFAULT_CI_FLOOR})")
    regress.add_argument("--runs", type=Path, default=DEFAULT_RUNS_DIR)
    regress.add_argument("--write-baseline", type=Path, help="write the current records as a baseline file")
    regress.add_argument("--junit", type=Path, help="also write a JUnit XML report, one testcase per number")
    regress.set_defaults(func=cmd_regress)
