"""Shared plumbing of the differential drivers (run with the project's venv).

Each ``diff_<scorer>.py`` builds inputs from the project's case files plus seeded random cases, writes
them in the official tool's file formats, runs ``side_<scorer>.py`` with the side interpreter (which
imports the unmodified official sources), scores the same inputs with ``internvl_bench.metrics``, and
prints one JSON summary line per comparison.

Environment (defaults in brackets):
  OFFICIAL_SCORERS  folder holding the official sources, laid out as in README.md [/tmp/official_scorers/src]
  SIDE_PYTHON       Python 3 with scikit-learn, numpy and tqdm, for the official code [/tmp/offvenv/bin/python]
  PY2               a Python 2.7 interpreter, for GT-Vision-Lab/VQA master [/root/.pyenv/versions/2.7.18/bin/python2]
  DIFF_WORK         scratch folder for the generated files [/tmp/official_scorers/work]
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the checkout: PROJECT_ROOT, else the one holding this folder (tests/metrics/data/official_differential),
#: else the working directory
PROJECT = Path(os.environ.get("PROJECT_ROOT") or (HERE.parents[3] if (HERE.parents[3] / "internvl_bench").is_dir()
                                                  else Path.cwd()))
CASES = PROJECT / "tests" / "metrics" / "data"
OFFICIAL = Path(os.environ.get("OFFICIAL_SCORERS", "/tmp/official_scorers/src"))
SIDE_PYTHON = os.environ.get("SIDE_PYTHON", "/tmp/offvenv/bin/python")
PY2 = os.environ.get("PY2", "/root/.pyenv/versions/2.7.18/bin/python2")
WORK = Path(os.environ.get("DIFF_WORK", "/tmp/official_scorers/work"))

if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))


def case_file(name: str) -> dict:
    return json.loads((CASES / name).read_text(encoding="utf-8"))


def workdir(name: str) -> Path:
    path = WORK / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_side(script: str, *args: str, python: str | None = None) -> None:
    """Run ``side_<x>.py`` (next to this file) with the side interpreter; it writes its results to disk."""
    command = [python or SIDE_PYTHON, str(HERE / script), str(OFFICIAL), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{script} failed with status {done.returncode}")


def dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=True))


def load(path: Path):
    return json.loads(path.read_text())


class Tally:
    """Max absolute difference per metric, mismatches kept with their context."""

    def __init__(self, scorer: str, source: str):
        self.scorer, self.source = scorer, source
        self.max_diff: dict[str, float] = {}
        self.compared: dict[str, int] = {}
        self.mismatches: list[dict] = []
        self.notes: list[str] = []

    def number(self, metric: str, ours: float | None, theirs: float | None, context, tol: float = 0.0) -> None:
        """Compare two floats (NaN / None = not produced); a difference above ``tol`` is a mismatch."""
        self.compared[metric] = self.compared.get(metric, 0) + 1
        missing_ours = ours is None or (isinstance(ours, float) and math.isnan(ours))
        missing_theirs = theirs is None or (isinstance(theirs, float) and math.isnan(theirs))
        if missing_ours or missing_theirs:
            if missing_ours != missing_theirs:
                self.mismatches.append({"metric": metric, "ours": ours, "official": theirs, "case": context})
            return
        diff = abs(float(ours) - float(theirs))
        self.max_diff[metric] = max(self.max_diff.get(metric, 0.0), diff)
        if diff > tol:
            self.mismatches.append({"metric": metric, "ours": ours, "official": theirs, "diff": diff, "case": context})

    def same(self, metric: str, ours, theirs, context) -> None:
        """Compare two discrete values (a parse label, a bool, a count)."""
        self.compared[metric] = self.compared.get(metric, 0) + 1
        self.max_diff.setdefault(metric, 0.0)
        if ours != theirs:
            self.mismatches.append({"metric": metric, "ours": ours, "official": theirs, "case": context})

    def summary(self, **extra) -> dict:
        return {"scorer": self.scorer, "official": self.source, "compared": self.compared,
                "max_abs_diff": self.max_diff, "n_mismatches": len(self.mismatches),
                "mismatches": self.mismatches[:25], "notes": self.notes, **extra}


def report(*tallies: Tally, **extra) -> None:
    for tally in tallies:
        print(json.dumps(tally.summary(**extra), ensure_ascii=False, default=str))
