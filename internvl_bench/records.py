"""Result records: one JSON file per (model, task, variant), the unit tables and the gate read.

Schema (``schema_version`` 1)::

    {"schema_version": 1, "task": "xtd", "task_version": "1", "variant": "en", "model": "internvl-c",
     "metrics": {"i2t_R@10": 97.3, ...},            # flat floats; recalls and accuracies in percent
     "intervals": {"i2t_R@10": [96.2, 98.3], ...},  # 95% bootstrap interval per metric ({} when off)
     "n_samples": 1000,
     "options": {...},                              # every protocol choice of the run
     "details": {...},                              # facts of this variant (skipped items, sizes)
     "provenance": {...},                           # model id/revision/hash, data hashes, versions, git
     "spec": {...},                                 # the resolved run that produced it (``rerun`` input)
     "created": "2026-11-26T09:00:00+00:00"}

``intervals`` holds ``[low, high]`` of the percentile bootstrap over the scored units
(``internvl_bench.bootstrap``; the resample count and seed are ``options.bootstrap_resamples`` and
``options.bootstrap_seed``); records written before it existed load with ``{}``. NaN bounds are ``null``.

``spec`` is the exact run that wrote the record -- model, checkpoint, model options, task, every task option,
data root and engine settings, paths absolute (``internvl_bench.experiment``): ``internvl-bench rerun
RECORD.json`` runs it again. Records written before it existed load with ``{}``.

Chat tasks also write ``<record stem>.predictions.jsonl`` beside the record: one line per item with
``id``, ``prompt``, ``raw_output``, ``token_ids``, ``min_margin``, ``parsed``, ``target`` and ``score``.
Files are written atomically (temp file + rename), so a killed run never leaves half a record.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from internvl_bench.errors import BenchError

SCHEMA_VERSION = 1
DEFAULT_RUNS_DIR = Path("results/runs")


@dataclass
class ResultRecord:
    task: str
    variant: str
    model: str
    metrics: dict[str, float]
    n_samples: int
    options: dict[str, Any]
    provenance: dict[str, Any]
    task_version: str = "1"
    #: weights identity beside the architecture id: pretrained tag, hub id or file (None = default)
    checkpoint: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: metric -> [low, high], the bootstrap interval (see ``internvl_bench.bootstrap``); empty when off
    intervals: dict[str, list[float]] = field(default_factory=dict)
    #: the resolved run spec that produced the record (``internvl_bench.experiment``); empty for older records
    spec: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def file_name(self) -> str:
        model = self.model if self.checkpoint is None else f"{self.model}@{Path(self.checkpoint).name}"
        return f"{slug(model)}__{slug(self.task)}__{slug(self.variant)}.json"


def slug(text: str) -> str:
    """Make a name safe for a file name while keeping it readable ('openclip:ViT-B-32' -> 'openclip-ViT-B-32')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "_"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_record(record: ResultRecord, output_dir: Path = DEFAULT_RUNS_DIR) -> Path:
    """Write ``record`` as JSON under ``output_dir``; returns the file path."""
    path = Path(output_dir) / record.file_name()
    write_atomic(path, json.dumps(_json_safe(asdict(record)), indent=2, ensure_ascii=False, sort_keys=False) + "\n")
    return path


def beside(record: ResultRecord, suffix: str, output_dir: Path = DEFAULT_RUNS_DIR) -> Path:
    """``<record stem>.<suffix>`` next to the record (``predictions.jsonl``, ``submission.json``)."""
    return Path(output_dir) / f"{Path(record.file_name()).stem}.{suffix}"


def write_predictions(record: ResultRecord, rows: list[dict[str, Any]], output_dir: Path = DEFAULT_RUNS_DIR) -> Path:
    """One JSON object per line, one line per item, written atomically."""
    path = beside(record, "predictions.jsonl", output_dir)
    write_atomic(path, "".join(json.dumps(_json_safe(row), ensure_ascii=False) + "\n" for row in rows))
    return path


def write_artifact(record: ResultRecord, name: str, content: Any, output_dir: Path = DEFAULT_RUNS_DIR) -> Path:
    path = beside(record, name, output_dir)
    write_atomic(path, json.dumps(_json_safe(content), ensure_ascii=False) + "\n")
    return path


def _json_safe(value: Any) -> Any:
    """NaN / inf are not JSON: store them as null (e.g. acc5 on a 2-class dataset)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def load_record(path: Path) -> ResultRecord:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["metrics"] = {k: _float(v) for k, v in data["metrics"].items()}
        data["intervals"] = {k: [_float(low), _float(high)] for k, (low, high) in data.get("intervals", {}).items()}
        return ResultRecord(**data)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise BenchError(f"{path}: not a valid result record ({exc}); delete it or re-run the task") from exc


def _float(value: float | None) -> float:
    """A stored number; ``null`` (a NaN when written) reads back as NaN."""
    return math.nan if value is None else float(value)


def _is_artifact(path: Path) -> bool:
    """A file written beside a record that is not one: a JSON array (an EvalAI submission)."""
    with open(path, "rb") as handle:
        return handle.read(64).lstrip()[:1] == b"["


def load_records(runs_dir: Path = DEFAULT_RUNS_DIR) -> list[ResultRecord]:
    """Every record under ``runs_dir`` (recursively), sorted by model, task, variant."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise BenchError(f"{runs_dir}: no such results folder; run a task first or pass --runs DIR")
    records = [load_record(p) for p in sorted(runs_dir.rglob("*.json")) if not _is_artifact(p)]
    return sorted(records, key=lambda r: (r.model, r.task, r.variant))
