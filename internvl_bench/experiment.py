"""One-file experiments (``internvl-bench run --config FILE.yaml``) and exact re-runs (``rerun RECORD.json``).

An experiment file names models x tasks with their options and the engine settings (``configs/`` has one
per paper table)::

    engine:                      # RunConfig settings; each optional, the `run` command's defaults otherwise
      device: cuda               # precision (bf16|fp16|fp32), batch_size, workers, output_dir,
      precision: bf16            # cache_dir (null: no cache), bootstrap_resamples, bootstrap_seed,
      batch_size: 128            # verify_batch_invariance
    models:                      # a registry name, or {name, checkpoint, options: {model options}}
      - internvl-g
      - {name: "openclip:xlm-roberta-large-ViT-H-14", checkpoint: frozen_laion5b_s13b_b90k}
    tasks:                       # a task name, or {name, data_root, options: {task options}}
      - name: xtd
        data_root: /data/xtd
        options: {languages: [en, es, fr, zh, it, ko, ru, jp]}   # a list is joined with commas

Several grids in one file: ``runs: [{models: [...], tasks: [...], engine: {...}}, ...]`` (each block's
``engine`` is laid over the file's). Task options are the fields of the task's ``Options`` (``internvl-bench
run --task T --help``); ``efficiency`` (Table G) is a task here too, with the ``efficiency`` command's
options (``resolutions``, ``attention``, ``random_weights``, ``warmup``, ``iters``, ``peak_tflops``) and
the engine's ``device``, ``precision``, ``batch_size`` and ``output_dir``. Relative paths are relative to
the working directory, as on the command line. The whole file is checked -- every key, model, task and
option -- before anything runs; a mistake is one line naming the file and the key.

The spec
--------
Every record stores the exact run that wrote it in ``spec`` (``internvl_bench.runner.run_spec``)::

    {"model": ..., "checkpoint": ..., "model_options": {...}, "task": ..., "task_options": {every option},
     "data_root": "/abs/path", "engine": {"device", "precision", "batch_size", "workers", "cache_dir",
     "output_dir", "verify_batch_invariance", "bootstrap_resamples", "bootstrap_seed"}}

``internvl-bench rerun RECORD.json [--output-dir DIR] [--no-cache] [--tolerance X]`` runs that spec again
-- every variant it produced, into ``DIR`` (default ``results/reruns``) -- and compares the new record of
RECORD's variant with it metric by metric: exit status 1 when one moved by more than ``X`` (default 0).
Timings (``details["timed_metrics"]``) are shown, not judged.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml

from internvl_bench.errors import BenchError
from internvl_bench.records import ResultRecord, load_record, write_record
from internvl_bench.runner import RunConfig, run_task
from internvl_bench.task import TASKS
from model_zoo import model_kind
from model_zoo.base import PRECISIONS

DEFAULT_RERUN_DIR = Path("results/reruns")
EFFICIENCY = "efficiency"
#: the ``efficiency`` command's options and defaults (``internvl_bench.efficiency.add_parser``)
EFFICIENCY_OPTIONS: dict[str, Any] = {"resolutions": "224,336,448", "attention": "auto", "random_weights": False,
                                      "warmup": 3, "iters": 10, "peak_tflops": None}
#: engine key -> the type its value must have (None allowed where the key says so)
ENGINE_TYPES: dict[str, tuple[type, bool]] = {
    "device": (str, False), "precision": (str, False), "batch_size": (int, False), "workers": (int, False),
    "cache_dir": (str, True), "output_dir": (str, False), "verify_batch_invariance": (float, True),
    "bootstrap_resamples": (int, False), "bootstrap_seed": (int, False),
}
KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
SPEC_KEYS = ("model", "checkpoint", "model_options", "task", "task_options", "data_root", "engine")


def _check_keys(where: str, mapping: Any, allowed: set[str] | tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(mapping, dict):
        raise BenchError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise BenchError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(sorted(allowed))}")
    missing = [key for key in required if key not in mapping]
    if missing:
        raise BenchError(f"{where}: missing key '{missing[0]}'")
    return mapping


def _typed(where: str, value: Any, kind: type, nullable: bool) -> Any:
    """``value`` as ``kind``: ints pass for floats, numbers and lists of words for strings (joined by commas)."""
    if value is None:
        if nullable:
            return None
        raise BenchError(f"{where}: null is not allowed; give a {kind.__name__}")
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
            return ",".join(str(v) for v in value)
    raise BenchError(f"{where}: {value!r} is not {KIND_NAMES[kind]}")


def engine_settings(where: str, engine: Any) -> dict[str, Any]:
    """The engine mapping checked and typed; paths expanded (``~``)."""
    settings = {key: _typed(f"{where}.{key}", value, *ENGINE_TYPES[key])
                for key, value in _check_keys(where, engine, tuple(ENGINE_TYPES)).items()}
    if settings.get("precision") is not None and settings["precision"] not in PRECISIONS:
        raise BenchError(f"{where}.precision: '{settings['precision']}'; choose {', '.join(sorted(PRECISIONS))}")
    for key in ("cache_dir", "output_dir"):
        if settings.get(key) is not None:
            settings[key] = str(Path(settings[key]).expanduser())
    return settings


def task_options(where: str, task: str, options: Any) -> dict[str, Any]:
    """Every option of ``task``: the given ones checked and typed, the rest at their (paper) defaults."""
    if task == EFFICIENCY:
        defaults = dict(EFFICIENCY_OPTIONS)
        kinds = {"resolutions": (str, False), "attention": (str, False), "random_weights": (bool, False),
                 "warmup": (int, False), "iters": (int, False), "peak_tflops": (float, True)}
    else:
        fields = dataclasses.fields(TASKS.get(task).Options)
        defaults = {f.name: f.default for f in fields}
        kinds = {f.name: (type(f.default) if f.default is not None else str, True) for f in fields}
    given = _check_keys(where, options or {}, tuple(defaults))
    return {**defaults, **{key: _typed(f"{where}.{key}", value, *kinds[key]) for key, value in given.items()}}


def _known(where: str, look_up: Any, name: str) -> None:
    """A registry look-up whose 'unknown name' error names the file and key too."""
    try:
        look_up(name)
    except BenchError as exc:
        raise BenchError(f"{where}: {exc}") from None


def _check_pair(where: str, model: str, task: str) -> None:
    """A model the task can evaluate; known before anything loads."""
    kind = model_kind(model)
    wanted = "contrastive" if task == EFFICIENCY else TASKS.get(task).model_kind
    if kind != wanted:
        raise BenchError(f"{where}: task '{task}' evaluates {wanted} models, but '{model}' is a {kind} model; "
                         "put them in separate 'runs' blocks")


def _model(where: str, entry: Any) -> dict[str, Any]:
    entry = {"name": entry} if isinstance(entry, str) else _check_keys(where, entry, ("name", "checkpoint", "options"),
                                                                         ("name",))
    _known(f"{where}.name", model_kind, str(entry["name"]))
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise BenchError(f"{where}.options: expected a mapping of model options, got {type(options).__name__}")
    return {"model": str(entry["name"]), "checkpoint": None if entry.get("checkpoint") is None else str(entry["checkpoint"]),
            "model_options": {key: _typed(f"{where}.options.{key}", value, str, True) for key, value in options.items()}}


def _task(where: str, entry: Any) -> dict[str, Any]:
    entry = {"name": entry} if isinstance(entry, str) else _check_keys(where, entry, ("name", "data_root", "options"),
                                                                         ("name",))
    name = str(entry["name"])
    if name != EFFICIENCY:
        _known(f"{where}.name", TASKS.get, name)
    root = entry.get("data_root")
    return {"task": name, "task_options": task_options(f"{where}.options", name, entry.get("options")),
            "data_root": None if root is None else str(Path(_typed(f"{where}.data_root", root, str, False)).expanduser())}


def load_experiment(path: Path) -> list[dict[str, Any]]:
    """The file's runs as specs, one per (model, task), checked throughout; ``engine`` as written (defaults
    are the runner's)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BenchError(f"{path}: cannot read the experiment file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise BenchError(f"{path}: not valid YAML{at} ({getattr(exc, 'problem', None) or exc})") from None
    where = str(path)
    data = _check_keys(where, data, ("description", "engine", "models", "tasks", "runs"))
    engine = engine_settings(f"{where}: engine", data.get("engine") or {})
    if "runs" in data and ("models" in data or "tasks" in data):
        raise BenchError(f"{where}: give either 'runs' or 'models' + 'tasks', not both")
    blocks = data.get("runs") if "runs" in data else [{"models": data.get("models"), "tasks": data.get("tasks")}]
    if not isinstance(blocks, list) or not blocks:
        raise BenchError(f"{where}: runs: expected a list of {{models, tasks}} blocks")
    specs = []
    for b, block in enumerate(blocks):
        at = f"{where}: runs[{b}]" if "runs" in data else f"{where}:"
        block = _check_keys(at, block, ("models", "tasks", "engine"))
        block_engine = {**engine, **engine_settings(f"{at} engine", block.get("engine") or {})}
        for key in ("models", "tasks"):
            if not isinstance(block.get(key), list) or not block[key]:
                raise BenchError(f"{at} {key}: expected a non-empty list")
        models = [_model(f"{at} models[{i}]", entry) for i, entry in enumerate(block["models"])]
        tasks = [_task(f"{at} tasks[{i}]", entry) for i, entry in enumerate(block["tasks"])]
        for model in models:
            for task in tasks:
                _check_pair(f"{at} models x tasks", model["model"], task["task"])
                specs.append({**model, **task, "engine": dict(block_engine)})
    return specs


def run_config(spec: dict[str, Any]) -> RunConfig:
    """The spec's engine as the runner's settings: an absent key takes the runner's default, a null
    ``cache_dir`` turns the cache off."""
    engine = dict(spec["engine"])
    for key in ("output_dir", "cache_dir"):
        if engine.get(key) is not None:
            engine[key] = Path(engine[key])
    return RunConfig(**engine, data_root=None if spec["data_root"] is None else Path(spec["data_root"]),
                     model_options=dict(spec["model_options"]))


def execute(spec: dict[str, Any]) -> list[ResultRecord]:
    """Run one spec: ``run_task``, or the efficiency timings (their records get the spec written in)."""
    config = run_config(spec)
    if spec["task"] != EFFICIENCY:
        return run_task(spec["task"], spec["model"], config, checkpoint=spec["checkpoint"],
                        task_options=spec["task_options"])
    return _efficiency(spec, config)


def _efficiency(spec: dict[str, Any], config: RunConfig) -> list[ResultRecord]:
    from internvl_bench import efficiency

    if spec["model_options"]:
        raise BenchError(f"efficiency takes no model options; drop {', '.join(spec['model_options'])}")
    options = spec["task_options"]
    efficiency.run(argparse.Namespace(model=spec["model"], checkpoint=spec["checkpoint"], batch_size=config.batch_size,
                                      precision=config.precision, device=str(config.device),
                                      output_dir=config.output_dir, **options))
    resolved = {**spec, "engine": config.engine()}
    records = []
    for size in str(options["resolutions"]).split(","):
        stub = ResultRecord(task=EFFICIENCY, variant=size.strip(), model=spec["model"], metrics={}, n_samples=0,
                            options={}, provenance={}, checkpoint=spec["checkpoint"])
        record = load_record(Path(config.output_dir) / stub.file_name())
        record.spec = resolved
        write_record(record, config.output_dir)
        records.append(record)
    return records


def run_experiment(path: Path) -> list[ResultRecord]:
    """Every run of the file, in order; all of it is checked first."""
    records = []
    for spec in load_experiment(path):
        records += execute(spec)
    return records


def _stored_spec(path: Path, record: ResultRecord) -> dict[str, Any]:
    """The record's spec checked as an experiment file's run would be."""
    if not record.spec:
        raise BenchError(f"{path}: the record has no 'spec' (written before specs were recorded, or by "
                         "'internvl-bench efficiency' directly); run it again with its 'options' by hand")
    spec = copy.deepcopy(_check_keys(f"{path}: spec", record.spec, SPEC_KEYS, SPEC_KEYS))
    _known(f"{path}: spec.model", model_kind, spec["model"])
    if spec["task"] != EFFICIENCY:
        _known(f"{path}: spec.task", TASKS.get, spec["task"])
    spec["engine"] = engine_settings(f"{path}: spec.engine", spec["engine"])
    spec["task_options"] = task_options(f"{path}: spec.task_options", spec["task"], spec["task_options"])
    _check_pair(f"{path}: spec", spec["model"], spec["task"])
    return spec


def _same(a: float, b: float, tolerance: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tolerance


def rerun(path: Path, output_dir: Path | None = None, no_cache: bool = False,
          tolerance: float = 0.0) -> tuple[ResultRecord, ResultRecord, list[str]]:
    """Run the spec that produced the record at ``path`` again; the original, the new record of its
    variant and one line per metric that moved beyond ``tolerance`` (timings excepted)."""
    original = load_record(path)
    spec = _stored_spec(path, original)
    spec["engine"]["output_dir"] = str(output_dir or DEFAULT_RERUN_DIR)
    if no_cache:
        spec["engine"]["cache_dir"] = None
    again = next((r for r in execute(spec) if r.variant == original.variant), None)
    if again is None:
        raise BenchError(f"{path}: the re-run produced no '{original.variant}' record; the task's variants changed")
    timed = set(original.details.get("timed_metrics", ()))
    moved = []
    for metric, value in original.metrics.items():
        new = again.metrics.get(metric, math.nan)
        if metric not in timed and not _same(value, new, tolerance):
            moved.append(f"moved    {metric}: {value:.4f} -> {new:.4f} ({new - value:+.4f})")
    return original, again, moved
