"""One-file experiments (``run --config``), the spec every record stores, and ``rerun`` reproducing a record."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from internvl_bench.cli import main
from internvl_bench.experiment import load_experiment
from internvl_bench.paper_tables import PAPER_DIR, TABLES, load_table
from internvl_bench.records import load_record

CONFIGS = PAPER_DIR.parent.parent / "configs"
TINY = {"name": "openclip:tiny-clip", "checkpoint": "random:0"}


def experiment(tmp_path: Path, xtd_root: Path, **engine) -> Path:
    """The demo's engine settings (CPU, fp32, no cache) with the tiny model on the generated XTD sample."""
    spec = {"engine": {"device": "cpu", "precision": "fp32", "batch_size": 4, "workers": 0, "cache_dir": None,
                       "output_dir": str(tmp_path / "runs"), **engine},
            "models": [TINY], "tasks": [{"name": "xtd", "data_root": str(xtd_root), "options": {"languages": ["en", "es"]}}]}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_config_runs_record_their_resolved_spec_and_match_the_command_line(tmp_path: Path, xtd_root: Path,
                                                                          run_args: list[str], capsys) -> None:
    assert main(["run", "--config", str(experiment(tmp_path, xtd_root))]) == 0
    assert "xtd/es [openclip:tiny-clip]" in capsys.readouterr().out
    record = load_record(tmp_path / "runs" / "openclip-tiny-clip-random-0__xtd__en.json")
    assert record.spec == {
        "model": "openclip:tiny-clip", "checkpoint": "random:0", "model_options": {}, "task": "xtd",
        "task_options": {"languages": "en,es", "preprocess": "squash"}, "data_root": str(xtd_root.resolve()),
        "engine": {"device": "cpu", "precision": "fp32", "batch_size": 4, "workers": 0, "cache_dir": None,
                   "output_dir": str((tmp_path / "runs").resolve()), "verify_batch_invariance": None,
                   "bootstrap_resamples": 1000, "bootstrap_seed": 0}}
    cli_runs = tmp_path / "cli"
    args = [*run_args[:run_args.index("--output-dir")], "--output-dir", str(cli_runs),
            *run_args[run_args.index("--output-dir") + 2:]]
    assert main(["run", "--task", "xtd", "--languages", "en,es", "--data-root", str(xtd_root), *args]) == 0
    from_cli = load_record(cli_runs / "openclip-tiny-clip-random-0__xtd__en.json")
    assert from_cli.metrics == record.metrics and from_cli.intervals == record.intervals
    assert from_cli.spec["task_options"] == record.spec["task_options"]  # the command line records a spec too
    assert from_cli.spec["engine"]["cache_dir"] == str((tmp_path / "cache").resolve())


def test_rerun_of_a_demo_like_record_reproduces_its_metrics(tmp_path: Path, xtd_root: Path, capsys) -> None:
    assert main(["run", "--config", str(experiment(tmp_path, xtd_root))]) == 0
    path = tmp_path / "runs" / "openclip-tiny-clip-random-0__xtd__es.json"
    capsys.readouterr()
    assert main(["rerun", str(path), "--output-dir", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert f"rerun of {path}: 7 of 7 metrics reproduced; records: {tmp_path / 'again'}" in out
    original, again = load_record(path), load_record(tmp_path / "again" / path.name)
    assert again.metrics == original.metrics and again.intervals == original.intervals
    assert {k: v for k, v in again.spec.items() if k != "engine"} == {k: v for k, v in original.spec.items() if k != "engine"}
    # a record whose number no longer comes out: exit 1, the metric named
    data = json.loads(path.read_text(encoding="utf-8"))
    data["metrics"]["i2t_R@1"] += 1.0
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["rerun", str(path), "--output-dir", str(tmp_path / "again")]) == 1
    assert "moved    i2t_R@1:" in capsys.readouterr().out
    assert main(["rerun", str(path), "--output-dir", str(tmp_path / "again"), "--tolerance", "1.5"]) == 0


def test_rerun_of_a_demo_record_reproduces_it(tmp_path: Path, capsys) -> None:
    from internvl_bench.demo import run_demo

    run_demo(tmp_path / "demo", scale=0.1, only=["xtd"], log=lambda _: None)
    path = tmp_path / "demo" / "runs" / "internvl-g-demo__xtd__ko.json"
    assert main(["rerun", str(path), "--output-dir", str(tmp_path / "again")]) == 0
    assert "7 of 7 metrics reproduced" in capsys.readouterr().out
    assert load_record(tmp_path / "again" / path.name).intervals == load_record(path).intervals
    assert (tmp_path / "demo" / "tables" / "table_a.png").stat().st_size > 5000  # the demo draws its figures


def test_rerun_of_a_record_without_spec_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"task": "xtd", "variant": "en", "model": "m", "metrics": {"x": 1.0}, "n_samples": 1,
                                "options": {}, "provenance": {}}), encoding="utf-8")
    assert main(["rerun", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: the record has no 'spec'") and "\n" not in err


def test_efficiency_is_a_task_of_experiment_files(tmp_path: Path, capsys) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({
        "engine": {"device": "cpu", "precision": "fp32", "batch_size": 2, "output_dir": str(tmp_path / "runs")},
        "models": ["internvl-c-tiny"],
        "tasks": [{"name": "efficiency", "options": {"resolutions": [64], "warmup": 0, "iters": 1}}]}), encoding="utf-8")
    assert main(["run", "--config", str(path)]) == 0
    record = load_record(tmp_path / "runs" / "internvl-c-tiny__efficiency__64.json")
    assert record.spec["task_options"] == {"resolutions": "64", "attention": "auto", "random_weights": False,
                                           "warmup": 0, "iters": 1, "peak_tflops": None}
    capsys.readouterr()
    assert main(["rerun", str(tmp_path / "runs" / record.file_name()), "--output-dir", str(tmp_path / "again")]) == 0
    untimed = len(record.metrics) - len(record.details["timed_metrics"])
    assert f"{untimed} of {untimed} metrics reproduced" in capsys.readouterr().out  # timings shown, not judged


@pytest.mark.parametrize("text,message", [
    ("models: [internvl-g]\ntasks: [{name: xtd, options: {langs: en}}]\n",
     "tasks[0].options: unknown key 'langs'; allowed: languages, preprocess"),
    ("models: [internvl-g]\ntasks: [{name: xtd, options: {languages: 3.5}}]\n", None),
    ("engine: {batch_size: big}\nmodels: [internvl-g]\ntasks: [xtd]\n", "engine.batch_size: 'big' is not an integer"),
    ("engine: {precision: fp8}\nmodels: [internvl-g]\ntasks: [xtd]\n", "engine.precision: 'fp8'; choose"),
    ("engine: {batch: 8}\nmodels: [internvl-g]\ntasks: [xtd]\n", "engine: unknown key 'batch'"),
    ("models: [internvl-chat-tiny]\ntasks: [xtd]\n", "task 'xtd' evaluates contrastive models, but 'internvl-chat-tiny'"),
    ("models: [no-such-model]\ntasks: [xtd]\n", "unknown model 'no-such-model'"),
    ("models: [internvl-g]\ntasks: [no_such_task]\n", "unknown task 'no_such_task'"),
    ("models: [internvl-g]\n", "tasks: expected a non-empty list"),
    ("models: [internvl-g\n", "not valid YAML at line 2"),
    ("runs: [{models: [internvl-g], tasks: [xtd], extra: 1}]\n", "runs[0]: unknown key 'extra'"),
])
def test_a_malformed_experiment_file_is_one_line_naming_the_file_and_key(tmp_path: Path, capsys, text: str,
                                                                        message: str | None) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    if message is None:  # a number where a comma-separated string is expected is fine: it becomes "3.5"
        assert load_experiment(path)[0]["task_options"]["languages"] == "3.5"
        return
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}") and message in err and "\n" not in err


def test_a_flag_beside_config_is_refused(tmp_path: Path, xtd_root: Path, capsys) -> None:
    assert main(["run", "--config", str(experiment(tmp_path, xtd_root)), "--batch-size", "8"]) == 2
    assert "--batch-size belongs in the file" in capsys.readouterr().err
    assert main(["run", "--model", "internvl-g"]) == 2
    assert "run needs --task and --model, or --config FILE.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("letter", TABLES)
def test_each_paper_table_has_a_config_running_its_reproducible_rows(letter: str) -> None:
    specs = load_experiment(CONFIGS / f"table_{letter.lower()}.yaml")
    table = load_table(letter)
    ran = {(s["model"], s["checkpoint"]) for s in specs}
    assert {(r["model"], r.get("checkpoint")) for r in table["rows"] if r.get("model")} <= ran
    tasks = {s["task"] for s in specs}
    assert tasks == {c.get("task") or table.get("task") for c in table["columns"]}
    assert all(s["engine"]["device"] == "cuda" for s in specs)
